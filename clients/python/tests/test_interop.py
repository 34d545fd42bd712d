"""The Python client against a real orgd."""
import os
import pathlib
import subprocess
import sys
import threading

import pytest

from orgd_client import Client, OrgdError, StatusCode

EXAMPLE = pathlib.Path(__file__).resolve().parents[1] / "examples" / "example.py"


def test_create_get_and_list_over_unix(daemon):
    with Client(unix_path=daemon.socket, timeout=5) as client:
        created = client.organizations.create_organization(
            name="Python Practice", type="ORGANIZATION_TYPE_GP_PRACTICE",
            identifier={"system": "https://ods.example", "value": "P1"})
        assert created.name == "Python Practice" and created.version == 1 and created.active
        read = client.organizations.get_organization(id=created.id)
        assert read.organization == created and read.staff_count == 0
        listed = client.organizations.list_organizations(name_prefix="python")
        assert [o.id for o in listed.organizations] == [created.id]
        again = client.organizations.create_organization(
            name="Python Practice", type="ORGANIZATION_TYPE_GP_PRACTICE", idempotency_key="py-1")
        assert client.organizations.create_organization(
            name="Python Practice", type="ORGANIZATION_TYPE_GP_PRACTICE", idempotency_key="py-1") == again


def test_writes_answer_with_a_consistency_token_that_reads_take(daemon):
    with Client(unix_path=daemon.socket, timeout=5) as client:
        assert client.consistency_token is None
        first = client.organizations.create_organization(name="Token One", type="ORGANIZATION_TYPE_DEPARTMENT")
        one = client.consistency_token
        assert one
        client.organizations.list_organizations()
        assert client.consistency_token == one, "a read carries no token"
        client.organizations.create_organization(name="Token Two", type="ORGANIZATION_TYPE_DEPARTMENT")
        two = client.consistency_token
        assert two != one
        changes = client.changes.list_changes().changes
        revisions = [c.revision for c in changes if c.kind == "organization" and c.id == first.id]
        assert revisions and max(c.revision for c in changes) > revisions[0]
        assert client.organizations.get_organization(id=first.id, consistency_token=one).organization.name == "Token One"
        with pytest.raises(OrgdError) as refused:
            client.organizations.get_organization(id=first.id, consistency_token="garbled")
        assert refused.value.code == StatusCode.INVALID_ARGUMENT
        assert "orgd-consistency-token" in refused.value.message


def test_errors_carry_the_status_code_and_the_field(daemon):
    with Client(unix_path=daemon.socket, timeout=5) as client:
        with pytest.raises(OrgdError) as missing:
            client.organizations.create_organization(type="ORGANIZATION_TYPE_DEPARTMENT")
        assert missing.value.code == StatusCode.INVALID_ARGUMENT
        assert missing.value.field_violations == [("name", "required")]
        from orgd_client._gen.grpc.health.v1 import health_pb2

        with pytest.raises(OrgdError) as unknown:
            client.call("orgd.v1.OrganizationService", "Nope", health_pb2.HealthCheckRequest(), health_pb2.HealthCheckResponse)
        assert unknown.value.code == StatusCode.UNIMPLEMENTED and unknown.value.message == "method Nope"
        response = client.call_raw("orgd.v1.OrganizationService", "Nope")
        assert response.status.code == StatusCode.UNIMPLEMENTED and response.status.message == "method Nope"
        with pytest.raises(OrgdError) as not_found:
            client.organizations.get_organization(id="00000000-0000-0000-0000-000000000000")
        assert not_found.value.code == StatusCode.NOT_FOUND


def test_tcp_needs_a_token(daemon):
    with Client(address=("127.0.0.1", daemon.port), timeout=5) as anonymous:
        with pytest.raises(OrgdError) as refused:
            anonymous.organizations.list_organizations()
        assert refused.value.code == StatusCode.UNAUTHENTICATED
        assert anonymous.health.check().status == 1  # SERVING: health needs no token
    with Client(unix_path=daemon.socket, timeout=5) as local:
        account = local.tokens.create_service_account(name="py-admin", system_role="SYSTEM_ROLE_ADMIN")
        issued = local.tokens.create_token(service_account_id=account.id)
    with Client(address=("127.0.0.1", daemon.port), token=issued.secret, timeout=5) as authorised:
        authorised.organizations.list_organizations()
        with Client(unix_path=daemon.socket) as local:
            local.tokens.revoke_token(id=issued.token.id)
        with pytest.raises(OrgdError) as revoked:
            authorised.organizations.list_organizations()
        assert revoked.value.code == StatusCode.UNAUTHENTICATED


def test_many_threads_share_one_connection(daemon):
    results, errors = [], []
    with Client(unix_path=daemon.socket, timeout=10) as client:
        def worker(index):
            try:
                created = client.organizations.create_organization(
                    name=f"Threaded {index}", type="ORGANIZATION_TYPE_DEPARTMENT")
                results.append((index, created.name))
            except Exception as error:  # noqa: BLE001
                errors.append(error)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(50)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors
        assert sorted(results) == sorted((i, f"Threaded {i}") for i in range(50))
        assert len(client.organizations.list_organizations(page_size=100).organizations) == 50


def test_every_rpc_has_a_method(daemon):
    with Client(unix_path=daemon.socket) as client:
        for stub, name in [(client.consents, "check_access"), (client.invitations, "accept_invitation"),
                           (client.memberships, "list_my_organizations"), (client.organizations, "export_organization_fhir")]:
            assert callable(getattr(stub, name))


def test_the_example_creates_and_lists(daemon):
    result = subprocess.run([sys.executable, str(EXAMPLE), "--socket", daemon.socket, "Example Clinic"],
                            capture_output=True, text=True, timeout=60, env={**os.environ})
    assert result.returncode == 0, result.stderr
    assert "Example Clinic" in result.stdout.splitlines()[-1]
