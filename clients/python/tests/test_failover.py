"""A client given several daemons' addresses (issue 15 item 7): two real
daemons, each on its own database, so the data tells which one answered."""
import os
import socket
import tempfile
import threading

import pytest

from conftest import Daemon
from orgd_client import Client, OrgdError, StatusCode

HOSPITAL_TEAM = "ORGANIZATION_TYPE_HOSPITAL_TEAM"


@pytest.fixture
def two_daemons():
    first, second = Daemon(), Daemon()
    try:
        yield first, second
    finally:
        first.stop()
        second.stop()


def names(daemon):
    with Client(unix_path=daemon.socket, timeout=30) as client:
        return [o.name for o in client.organizations.list_organizations().organizations]


def test_one_stopped_the_next_calls_go_to_the_other(two_daemons):
    first, second = two_daemons
    with Client(addresses=[first.socket, second.socket], timeout=30) as client:
        client.organizations.create_organization(name="Before", type=HOSPITAL_TEAM)
        assert names(first) == ["Before"] and names(second) == []
        first.stop()
        client.organizations.create_organization(name="After", type=HOSPITAL_TEAM)
        assert [o.name for o in client.organizations.list_organizations().organizations] == ["After"]
        assert names(second) == ["After"]


def test_all_down_is_unavailable_naming_each_address(two_daemons):
    first, second = two_daemons
    addresses = [first.socket, ("127.0.0.1", second.port)]
    with Client(addresses=addresses, timeout=30) as client:
        client.health.check()
        first.stop()
        second.stop()
        with pytest.raises(OrgdError) as call:
            client.health.check()
    assert call.value.code == StatusCode.UNAVAILABLE
    assert f"unix:{first.socket}" in call.value.message and f"tcp:127.0.0.1:{second.port}" in call.value.message
    with pytest.raises(OrgdError) as connect:
        Client(addresses=addresses)
    assert connect.value.code == StatusCode.UNAVAILABLE
    assert f"unix:{first.socket}" in connect.value.message and f"tcp:127.0.0.1:{second.port}" in connect.value.message


class HangUpServer:
    """Takes a connection, reads a request and hangs up without answering:
    a daemon that dies with a call in flight."""

    def __init__(self):
        self.directory = tempfile.mkdtemp(prefix="orgd-py-hangup-")
        self.path = os.path.join(self.directory, "h")
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.path)
        self.listener.listen()
        self.requests = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            with connection:
                if connection.recv(1 << 16):
                    self.requests += 1

    def close(self):
        self.listener.close()
        os.unlink(self.path)
        os.rmdir(self.directory)


def test_a_call_in_flight_is_not_sent_again(daemon):
    hang_up = HangUpServer()
    try:
        with Client(addresses=[hang_up.path, daemon.socket], timeout=30) as client:
            with pytest.raises(OrgdError) as error:
                client.organizations.create_organization(name="Once", type=HOSPITAL_TEAM)
            assert error.value.code == StatusCode.UNAVAILABLE
            assert "not sent again" in error.value.message
            assert hang_up.requests == 1
            assert names(daemon) == []
            # The next call goes to the next address.
            assert list(client.organizations.list_organizations().organizations) == []
            assert hang_up.requests == 1
    finally:
        hang_up.close()


def test_addresses_or_one_address():
    with pytest.raises(ValueError):
        Client(unix_path="x", addresses=["y"])
    with pytest.raises(ValueError):
        Client(addresses=[])
