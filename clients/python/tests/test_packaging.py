"""The client as `pip install clients/python` installs it, in one process with
the stock gRPC packages (issue 17 item 5): grpcio, grpcio-health-checking
(grpcio's `grpc.health.v1`) and grpcio-status with googleapis-common-protos
(`google.rpc`). The generated code lives inside orgd_client; the schemas it
restates from others are in a descriptor pool of its own (orgd_client/_pool.py)."""
import importlib.metadata
import importlib.util
import pathlib
import subprocess
import sys

import pytest
from google.rpc import error_details_pb2
from grpc.health.v1 import health_pb2

import orgd_client
from orgd_client import Client, OrgdError, StatusCode

GRPC_SIDE = "import grpc; from grpc.health.v1 import health_pb2; from grpc_status import rpc_status; " \
            "from google.rpc import status_pb2, error_details_pb2"


def test_it_is_installed_with_its_type_marker_and_no_top_level_generated_code():
    assert importlib.metadata.version("orgd-client")
    assert (pathlib.Path(orgd_client.__file__).parent / "py.typed").is_file()
    for name in ("orgd", "ttrpc"):
        assert importlib.util.find_spec(name) is None, name
    assert "orgd_client" not in health_pb2.__file__  # grpcio-health-checking's, not ours


@pytest.mark.parametrize("first", ["orgd_client", "grpc"])
def test_either_is_imported_first(first):
    code = f"import orgd_client; {GRPC_SIDE}" if first == "orgd_client" else f"{GRPC_SIDE}; import orgd_client"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_the_client_calls_beside_them(daemon):
    with Client(unix_path=daemon.socket, timeout=5) as client:
        assert client.health.check().status == health_pb2.HealthCheckResponse.SERVING
        # grpcio-health-checking's messages on the client's ttrpc call: the same wire.
        answer = client.call("grpc.health.v1.Health", "Check", health_pb2.HealthCheckRequest(),
                             health_pb2.HealthCheckResponse)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(OrgdError) as missing:
            client.organizations.create_organization(type="ORGANIZATION_TYPE_DEPARTMENT")
        assert missing.value.code == StatusCode.INVALID_ARGUMENT
        assert missing.value.field_violations == [("name", "required")]
    # googleapis-common-protos' BadRequest still works in the default pool.
    assert error_details_pb2.BadRequest(field_violations=[{"field": "name"}]).field_violations[0].field == "name"
