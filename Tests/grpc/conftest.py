"""A real orgd with --grpc-listen, stubs generated from proto/ by grpcio-tools
at test time (into a temporary directory, never committed), and a superadmin
token made with orgctl over the daemon's Unix socket."""
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(os.environ.get("ORGD_BIN_DIR", ROOT / ".build" / "debug"))


def generate_stubs(out):
    """protoc (grpcio-tools) over proto/orgd/v1 and the health proto. The health
    proto is generated as grpc_health.v1 (its package stays grpc.health.v1),
    as grpcio-health-checking ships it: a top-level `grpc` package of
    generated code would be shadowed by grpcio's own. google.rpc comes from
    googleapis-common-protos (grpcio-status reads the details with it)."""
    import grpc_tools
    from grpc_tools import protoc

    source = pathlib.Path(out) / "src"
    shutil.copytree(ROOT / "proto" / "orgd", source / "orgd")
    (source / "grpc_health" / "v1").mkdir(parents=True)
    shutil.copy(ROOT / "proto" / "grpc" / "health" / "v1" / "health.proto", source / "grpc_health" / "v1" / "health.proto")
    files = sorted(str(p.relative_to(source)) for p in source.rglob("*.proto"))
    well_known = pathlib.Path(grpc_tools.__file__).parent / "_proto"
    code = protoc.main(["grpc_tools.protoc", f"-I{source}", f"-I{well_known}",
                        f"--python_out={out}", f"--grpc_python_out={out}", *files])
    assert code == 0, f"grpc_tools.protoc failed ({code})"
    sys.path.insert(0, str(out))


@pytest.fixture(scope="session")
def stubs():
    out = tempfile.mkdtemp(prefix="orgd-grpc-stubs-")
    generate_stubs(out)
    yield out
    shutil.rmtree(out, ignore_errors=True)


class Daemon:
    """orgd on a Unix socket and gRPC on 127.0.0.1, port 0."""

    def __init__(self, extra_arguments=()):
        self.directory = tempfile.mkdtemp(prefix="orgd-grpc-")
        self.socket = os.path.join(self.directory, "s")
        self.process = subprocess.Popen(
            [str(BIN / "orgd"), "--database", os.path.join(self.directory, "orgd.sqlite"), "--socket", self.socket,
             "--grpc-listen", "127.0.0.1:0", "--log-level", "warning", *extra_arguments],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        self.port = None
        deadline = time.time() + 60
        while self.port is None and time.time() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            if line.startswith("orgd listening on grpc:"):
                self.port = int(line.rsplit(":", 1)[1])
        if self.port is None:
            self.process.kill()
            self.process.wait()
            raise RuntimeError("orgd did not start: " + self.process.stderr.read())
        self.target = f"127.0.0.1:{self.port}"

    def orgctl(self, *arguments):
        result = subprocess.run([str(BIN / "orgctl"), *arguments, "--socket", self.socket, "--json"],
                                capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def token(self, role="superadmin", may_act_as=False):
        arguments = ["service-account", "create", "--name", f"py-{role}-{time.time_ns()}", "--role", role]
        if may_act_as:
            arguments.append("--may-act-as")
        account = self.orgctl(*arguments)
        return self.orgctl("token", "create", "--service-account", account["id"])["secret"]

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process.stdout.close()
        self.process.stderr.close()
        shutil.rmtree(self.directory, ignore_errors=True)


@pytest.fixture
def daemon():
    running = Daemon()
    try:
        yield running
    finally:
        running.stop()
