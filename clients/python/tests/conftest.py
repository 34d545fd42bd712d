import json
import os
import pathlib
import subprocess
import tempfile
import time

import pytest

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[2]


@pytest.fixture(scope="session")
def vectors():
    return json.loads((ROOT / "testdata" / "ttrpc-vectors.json").read_text())["vectors"]


class Daemon:
    """A real orgd in a temporary directory, on a Unix socket and TCP port 0."""

    def __init__(self, extra_arguments=()):
        self.directory = tempfile.mkdtemp(prefix="orgd-py-")
        binary = pathlib.Path(os.environ.get("ORGD_BIN_DIR", ROOT / ".build" / "debug")) / "orgd"
        self.socket = os.path.join(self.directory, "s")
        self.process = subprocess.Popen(
            [str(binary), "--database", os.path.join(self.directory, "orgd.sqlite"), "--socket", self.socket,
             "--listen", "127.0.0.1:0", "--log-level", "warning", *extra_arguments],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.port = None
        deadline = time.time() + 30
        while self.port is None and time.time() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            if line.startswith(("orgd listening on tcp:", "orgd listening on tls:")):
                self.port = int(line.rsplit(":", 1)[1])
        if self.port is None:
            self.process.kill()
            self.process.wait()
            raise RuntimeError("orgd did not start: " + self.process.stderr.read())

    def stop(self):
        """Stops the daemon and waits for it; killed if it does not drain in 30 s."""
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def daemon():
    running = Daemon()
    try:
        yield running
    finally:
        # pytest runs this after a failing test too.
        running.stop()
