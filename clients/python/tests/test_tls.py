"""The Python client over TLS and mutual TLS, against a real orgd with
certificates made for the test by openssl."""
import os
import subprocess
import tempfile
import threading

import pytest

from conftest import Daemon
from orgd_client import Client, OrgdError, StatusCode, tls_context

OPENSSL = "/usr/bin/openssl"


def _openssl(*arguments):
    subprocess.run([OPENSSL, *arguments], check=True, capture_output=True)


@pytest.fixture(scope="module")
def certificates():
    """A CA; a server certificate for the name localhost; a client certificate
    from the CA; and one from a CA orgd does not trust."""
    if not os.access(OPENSSL, os.X_OK):
        pytest.fail("openssl is needed (scripts/install-deps --test)")
    directory = tempfile.mkdtemp(prefix="orgd-py-tls-")
    path = lambda name: os.path.join(directory, name)  # noqa: E731
    for ca in ("ca", "other-ca"):
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                 "-keyout", path(ca + ".key"), "-out", path(ca + ".pem"), "-days", "2", "-subj", "/CN=" + ca)
    for name, ca, extensions in (
            ("server", "ca", "subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\n"),
            ("client", "ca", "extendedKeyUsage=clientAuth\n"),
            ("stranger", "other-ca", "extendedKeyUsage=clientAuth\n")):
        with open(path(name + ".ext"), "w") as file:
            file.write(extensions)
        _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                 "-keyout", path(name + ".key"), "-out", path(name + ".csr"), "-subj", "/CN=" + name)
        _openssl("x509", "-req", "-in", path(name + ".csr"), "-CA", path(ca + ".pem"), "-CAkey", path(ca + ".key"),
                 "-CAcreateserial", "-out", path(name + ".pem"), "-days", "2", "-extfile", path(name + ".ext"))
    return path


def _admin_token(daemon):
    with Client(unix_path=daemon.socket, timeout=5) as local:
        user = local.memberships.create_user(email="tls@py.example", given_name="T", family_name="L",
                                             system_role="SYSTEM_ROLE_ADMIN")
        return local.tokens.create_token(user_id=user.id).secret


def test_full_calls_over_tls_from_many_threads(certificates):
    daemon = Daemon(["--tls-cert", certificates("server.pem"), "--tls-key", certificates("server.key")])
    try:
        token = _admin_token(daemon)
        context = tls_context(ca=certificates("ca.pem"))
        with Client(address=("localhost", daemon.port), token=token, tls=context, timeout=10) as client:
            assert client.health.check().status == 1
            created = client.organizations.create_organization(name="TLS Ward", type="ORGANIZATION_TYPE_HOSPITAL_TEAM")
            assert client.organizations.get_organization(id=created.id).organization.name == "TLS Ward"
            # One connection, many threads: reads and writes cross on the TLS object.
            errors = []

            def work(index):
                try:
                    for round in range(10):
                        name = f"T{index}-{round}"
                        made = client.organizations.create_organization(name=name, type="ORGANIZATION_TYPE_DEPARTMENT")
                        assert client.organizations.get_organization(id=made.id).organization.name == name
                except Exception as error:  # noqa: BLE001 - collected and reported below
                    errors.append(error)

            threads = [threading.Thread(target=work, args=(index,)) for index in range(20)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert errors == []
        # By address, naming the host the certificate is for.
        with Client(address=("127.0.0.1", daemon.port), token=token, tls=context, server_hostname="localhost") as client:
            assert client.health.check().status == 1
        # Refused: the system's CAs, a name the certificate lacks, plain TCP.
        with pytest.raises(OrgdError) as untrusted:
            Client(address=("localhost", daemon.port), token=token, tls=True)
        assert untrusted.value.code == StatusCode.UNAVAILABLE and "certificate" in untrusted.value.message.lower()
        with pytest.raises(OrgdError) as wrong_name:
            Client(address=("127.0.0.1", daemon.port), token=token, tls=context)
        assert wrong_name.value.code == StatusCode.UNAVAILABLE
        with pytest.raises(OrgdError) as plain:
            with Client(address=("127.0.0.1", daemon.port), token=token, timeout=5) as client:
                client.health.check()
        assert plain.value.code == StatusCode.UNAVAILABLE
    finally:
        daemon.stop()


def test_mutual_tls(certificates):
    daemon = Daemon(["--tls-cert", certificates("server.pem"), "--tls-key", certificates("server.key"),
                     "--tls-client-ca", certificates("ca.pem")])
    try:
        token = _admin_token(daemon)
        mine = tls_context(ca=certificates("ca.pem"), cert=certificates("client.pem"), key=certificates("client.key"))
        with Client(address=("localhost", daemon.port), token=token, tls=mine, timeout=5) as client:
            assert client.organizations.create_organization(name="mTLS", type="ORGANIZATION_TYPE_GP_PRACTICE").name == "mTLS"
        for context in (tls_context(ca=certificates("ca.pem")),
                        tls_context(ca=certificates("ca.pem"), cert=certificates("stranger.pem"), key=certificates("stranger.key"))):
            with pytest.raises(OrgdError) as refused:
                # TLS 1.3: the server checks the client's certificate after the
                # client's side of the handshake; the refusal arrives as an alert.
                with Client(address=("localhost", daemon.port), token=token, tls=context, timeout=5) as client:
                    client.health.check()
            assert refused.value.code == StatusCode.UNAVAILABLE
    finally:
        daemon.stop()
