"""One connection to orgd, shared by any number of threads."""
from __future__ import annotations

import base64
import re
import socket
import ssl
import threading
from concurrent.futures import Future, TimeoutError as FutureTimeout
from typing import TYPE_CHECKING, Any, Callable, Dict, Optional, Sequence, Tuple, Type, TypeVar, Union

from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.message import Message

from . import wire
from ._gen.grpc.health.v1 import health_pb2
from ._gen.orgd.v1 import (audit_pb2, change_pb2, consent_pb2, invitation_pb2, membership_pb2, organization_pb2,
                           token_pb2)
from ._gen.ttrpc import ttrpc_pb2
from .errors import OrgdError, StatusCode
from .failover import Address, Failover

_SERVICES: Dict[str, ServiceDescriptor] = {
    "organizations": organization_pb2.DESCRIPTOR.services_by_name["OrganizationService"],
    "memberships": membership_pb2.DESCRIPTOR.services_by_name["MembershipService"],
    "invitations": invitation_pb2.DESCRIPTOR.services_by_name["InvitationService"],
    "consents": consent_pb2.DESCRIPTOR.services_by_name["ConsentService"],
    "tokens": token_pb2.DESCRIPTOR.services_by_name["TokenService"],
    "audit": audit_pb2.DESCRIPTOR.services_by_name["AuditService"],
    "changes": change_pb2.DESCRIPTOR.services_by_name["ChangeService"],
    "health": health_pb2.DESCRIPTOR.services_by_name["Health"],
}

CONSISTENCY_TOKEN_KEY = "orgd-consistency-token"

Metadata = Sequence[Tuple[str, str]]
"""Call metadata: (key, value) pairs, sent besides the client's own."""

M = TypeVar("M", bound=Message)


def _token_revision(token: str) -> Optional[int]:
    """The revision in a consistency token (base64url of 8 bytes big-endian and
    a 32-byte signature), only to keep the newer of two; None if malformed."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (ValueError, TypeError):
        return None
    return int.from_bytes(raw[:8], "big") if len(raw) == 40 else None


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class ServiceStub:
    """One method per RPC of a service, built from the generated descriptor:
    ``stub.create_organization(request)`` or ``stub.create_organization(name=...)``.
    Each returns the response message or raises OrgdError."""

    def __init__(self, client: Client, descriptor: ServiceDescriptor) -> None:
        self._client = client
        self.name: str = descriptor.full_name
        for method in descriptor.methods:
            setattr(self, _snake(method.name), self._bind(method))

    if TYPE_CHECKING:
        # The methods are made at run time, one per RPC of the descriptor.
        def __getattr__(self, name: str) -> Callable[..., Message]: ...

    def _bind(self, method: MethodDescriptor) -> Callable[..., Message]:
        request_class = message_factory.GetMessageClass(method.input_type)
        response_class = message_factory.GetMessageClass(method.output_type)

        def call(request: Optional[Message] = None, *, timeout: Optional[float] = None, metadata: Metadata = (),
                 idempotency_key: Optional[str] = None, consistency_token: Optional[str] = None,
                 **fields: Any) -> Message:
            if request is None:
                request = request_class(**fields)
            elif fields:
                raise TypeError("pass a request message or fields, not both")
            return self._client.call(self.name, method.name, request, response_class,
                                     timeout=timeout, metadata=metadata, idempotency_key=idempotency_key,
                                     consistency_token=consistency_token)

        call.__name__ = _snake(method.name)
        call.__doc__ = f"{self.name}/{method.name}({method.input_type.name}) -> {method.output_type.name}"
        return call


def tls_context(ca: Optional[str] = None, cert: Optional[str] = None, key: Optional[str] = None) -> ssl.SSLContext:
    """An ``ssl.SSLContext`` for ``Client(tls=...)``: trusts the CA file ``ca``
    (else the system's CAs) and, for orgd with ``--tls-client-ca``, presents the
    client certificate ``cert`` with its key ``key`` (PEM files)."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert is not None:
        context.load_cert_chain(cert, key)
    return context


class _PlainTransport:
    def __init__(self, sock: socket.socket) -> None:
        self._socket = sock

    def sendall(self, data: bytes) -> None:
        self._socket.sendall(data)

    def recv(self, count: int) -> bytes:
        return self._socket.recv(count)


class _TLSTransport:
    """TLS through ``ssl.SSLObject`` and memory BIOs rather than an
    ``SSLSocket``: the reader thread reads while other threads write, and an
    OpenSSL connection must not be used from two threads at once. Every use of
    the TLS object holds ``_lock``; raw socket reads happen outside it."""

    def __init__(self, sock: socket.socket, context: ssl.SSLContext, server_hostname: str) -> None:
        self._socket = sock
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._incoming, self._outgoing, server_hostname=server_hostname)
        self._lock = threading.Lock()
        while True:
            try:
                self._tls.do_handshake()
                self._flush()
                return
            except ssl.SSLWantReadError:
                self._flush()
                data = self._socket.recv(1 << 16)
                if not data:
                    raise ConnectionError("the server closed the connection during the TLS handshake")
                self._incoming.write(data)

    def _flush(self) -> None:
        pending = self._outgoing.read()
        if pending:
            self._socket.sendall(pending)

    def sendall(self, data: bytes) -> None:
        with self._lock:
            self._tls.write(data)
            self._flush()

    def recv(self, count: int) -> bytes:
        while True:
            with self._lock:
                try:
                    data = self._tls.read(count)
                    self._flush()
                    return data
                except ssl.SSLWantReadError:
                    pass
                except ssl.SSLZeroReturnError:
                    return b""
            data = self._socket.recv(1 << 16)
            if not data:
                return b""
            with self._lock:
                self._incoming.write(data)


class Client:
    """A connection to orgd that multiplexes concurrent calls.

    Connect with ``unix_path`` or ``address=(host, port)``. ``token`` is sent
    as ``authorization: Bearer``; ``act_as`` as ``orgd-act-as``. ``timeout`` (in
    seconds) is the default deadline for each call. ``tls`` (TCP only) is an
    ``ssl.SSLContext`` (see ``tls_context``) or True for the system's CAs;
    ``server_hostname`` is the name orgd's certificate must carry (default:
    the address's host).

    ``addresses`` instead gives several daemons, each a Unix socket path or a
    ``(host, port)``: the client connects to the first that answers and, when
    it goes away, sends later calls to the next (see ``failover.Failover``:
    a call already sent when a connection drops is not sent again).
    """

    organizations: ServiceStub
    memberships: ServiceStub
    invitations: ServiceStub
    consents: ServiceStub
    tokens: ServiceStub
    audit: ServiceStub
    changes: ServiceStub
    health: ServiceStub

    def __init__(self, unix_path: Optional[str] = None, address: Optional[Tuple[str, int]] = None,
                 token: Optional[str] = None, act_as: Optional[str] = None, timeout: Optional[float] = None,
                 max_frame: int = wire.DEFAULT_MAX_FRAME, connect_timeout: float = 10.0,
                 tls: Union[ssl.SSLContext, bool, None] = None, server_hostname: Optional[str] = None,
                 addresses: Optional[Sequence[Address]] = None) -> None:
        self._newest: Optional[Tuple[int, str]] = None
        self._newest_lock = threading.Lock()
        self._failover: Optional[Failover] = None
        if addresses is not None:
            if unix_path is not None or address is not None:
                raise ValueError("give addresses, or one of unix_path and address")
            options: Dict[str, Any] = dict(token=token, act_as=act_as, timeout=timeout, max_frame=max_frame,
                                           connect_timeout=connect_timeout, tls=tls, server_hostname=server_hostname)

            def connect(target: Address) -> Client:
                if isinstance(target, str):
                    return Client(unix_path=target, **options)
                host, port = target
                return Client(address=(host, port), **options)

            self._failover = Failover(addresses, connect)
            self._failover.connection()
            self._add_stubs()
            return
        if (unix_path is None) == (address is None):
            raise ValueError("give exactly one of unix_path and address")
        if tls and unix_path is not None:
            raise ValueError("TLS is for TCP: give address")
        try:
            if unix_path is not None:
                self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self._socket.settimeout(connect_timeout)
                self._socket.connect(unix_path)
            else:
                self._socket = socket.create_connection(address, timeout=connect_timeout)
                self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError as error:
            raise OrgdError(StatusCode.UNAVAILABLE, f"cannot connect to orgd: {error}") from error
        self._transport: Union[_PlainTransport, _TLSTransport]
        if tls:
            context = tls if isinstance(tls, ssl.SSLContext) else tls_context()
            try:
                self._transport = _TLSTransport(self._socket, context, server_hostname or address[0])
            except (OSError, ssl.SSLError) as error:
                self._socket.close()
                raise OrgdError(StatusCode.UNAVAILABLE, f"TLS handshake with orgd failed: {error}") from error
        else:
            self._transport = _PlainTransport(self._socket)
        self._socket.settimeout(None)
        self._token = token
        self._act_as = act_as
        self._timeout = timeout
        self._max_frame = max_frame
        self._lock = threading.Lock()
        self._pending: Dict[int, Future[Any]] = {}
        self._next_stream = 1
        self._closed: Optional[OrgdError] = None
        self._reader = threading.Thread(target=self._read_loop, name="orgd-client-reader", daemon=True)
        self._reader.start()
        self._add_stubs()

    def _add_stubs(self) -> None:
        for attribute, descriptor in _SERVICES.items():
            setattr(self, attribute, ServiceStub(self, descriptor))

    # -- calls --

    @property
    def consistency_token(self) -> Optional[str]:
        """The consistency token of the newest write answered through this
        client (None before the first). Pass it as ``consistency_token`` to a
        later call — on any client of any daemon over the same database — and
        that call is answered from a state at least as fresh as those writes."""
        with self._newest_lock:
            return self._newest[1] if self._newest else None

    def _note(self, response: Any) -> None:
        for entry in response.metadata:
            if entry.key != CONSISTENCY_TOKEN_KEY:
                continue
            revision = _token_revision(entry.value)
            if revision is None:
                continue
            with self._newest_lock:
                if self._newest is None or self._newest[0] < revision:
                    self._newest = (revision, entry.value)

    def call(self, service: str, method: str, request: Message, response_class: Type[M],
             timeout: Optional[float] = None, metadata: Metadata = (), idempotency_key: Optional[str] = None,
             consistency_token: Optional[str] = None) -> M:
        """Calls a method with a request message; returns the response message
        or raises OrgdError. ``consistency_token`` (from a write's answer, see
        ``consistency_token``) asks for a state at least that fresh."""
        response = self.call_raw(service, method, request.SerializeToString(), timeout=timeout,
                                 metadata=metadata, idempotency_key=idempotency_key,
                                 consistency_token=consistency_token)
        if response.status.code != 0:
            raise OrgdError.from_status(response.status)
        result = response_class()
        result.ParseFromString(response.payload)
        return result

    def call_raw(self, service: str, method: str, payload: bytes = b"", timeout: Optional[float] = None,
                 metadata: Metadata = (), idempotency_key: Optional[str] = None,
                 consistency_token: Optional[str] = None) -> Any:
        """Calls a method with payload bytes; returns the ttrpc.Response
        envelope whatever its status (its ``metadata`` holds a write's
        consistency token)."""
        if self._failover is not None:
            response = self._failover.call_raw(service, method, payload, timeout=timeout, metadata=metadata,
                                               idempotency_key=idempotency_key, consistency_token=consistency_token)
            self._note(response)
            return response
        response = self._call_raw(service, method, payload, timeout, metadata, idempotency_key, consistency_token)
        self._note(response)
        return response

    def _call_raw(self, service: str, method: str, payload: bytes, timeout: Optional[float], metadata: Metadata,
                  idempotency_key: Optional[str], consistency_token: Optional[str]) -> Any:
        timeout = self._timeout if timeout is None else timeout
        entries = list(metadata)
        if consistency_token:
            entries.append((CONSISTENCY_TOKEN_KEY, consistency_token))
        if self._token:
            entries.append(("authorization", f"Bearer {self._token}"))
        if self._act_as:
            entries.append(("orgd-act-as", self._act_as))
        if idempotency_key:
            entries.append(("idempotency-key", idempotency_key))
        timeout_nano = max(1, int(timeout * 1e9)) if timeout else 0
        future: Future[Any] = Future()
        with self._lock:
            if self._closed is not None:
                raise _not_sent(OrgdError(self._closed.code, self._closed.message))
            stream_id = self._next_stream
            self._next_stream += 2
            self._pending[stream_id] = future
            frame = wire.encode_request(stream_id, service, method, payload, timeout_nano, entries)
            try:
                self._transport.sendall(frame)
            except OSError as error:
                del self._pending[stream_id]
                raise _not_sent(OrgdError(StatusCode.UNAVAILABLE, f"cannot send to orgd: {error}")) from error
        try:
            # Leave the server time to answer DEADLINE_EXCEEDED itself.
            return future.result(None if not timeout else timeout + 0.25)
        except FutureTimeout:
            with self._lock:
                self._pending.pop(stream_id, None)
            raise OrgdError(StatusCode.DEADLINE_EXCEEDED, "no answer before the deadline") from None

    # -- the reader --

    def _read_exact(self, count: int) -> bytes:
        chunks = []
        while count:
            chunk = self._transport.recv(min(count, 1 << 20))
            if not chunk:
                raise EOFError
            chunks.append(chunk)
            count -= len(chunk)
        return b"".join(chunks)

    def _read_loop(self) -> None:
        try:
            while True:
                length, stream_id, frame_type, _ = wire.decode_header(self._read_exact(wire.HEADER_SIZE))
                if length > self._max_frame:
                    remaining = length
                    while remaining:
                        remaining -= len(self._read_exact(min(remaining, 1 << 20)))
                    self._complete(stream_id, error=OrgdError(
                        StatusCode.RESOURCE_EXHAUSTED, f"the response ({length} bytes) is larger than this client accepts"))
                    continue
                data = self._read_exact(length)
                if frame_type != wire.TYPE_RESPONSE:
                    continue
                response = ttrpc_pb2.Response()
                try:
                    response.ParseFromString(data)
                except Exception:
                    self._complete(stream_id, error=OrgdError(StatusCode.INTERNAL, "undecodable response envelope"))
                    continue
                self._complete(stream_id, response=response)
        except EOFError:
            self._fail_all(OrgdError(StatusCode.UNAVAILABLE, "the connection to orgd closed"))
        except OSError as error:  # ssl.SSLError too, e.g. a TLS alert from the server
            self._fail_all(OrgdError(StatusCode.UNAVAILABLE, f"the connection to orgd closed: {error}"))

    def _complete(self, stream_id: int, response: Any = None, error: Optional[OrgdError] = None) -> None:
        with self._lock:
            future = self._pending.pop(stream_id, None)
        if future is None:
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(response)

    def _fail_all(self, error: OrgdError) -> None:
        with self._lock:
            if self._closed is None:
                self._closed = error
            pending, self._pending = self._pending, {}
        for future in pending.values():
            future.set_exception(error)

    def is_open(self) -> bool:
        """Whether calls can still go out: false once the connection has
        closed (orgd went away, or ``close``)."""
        if self._failover is not None:
            return True
        with self._lock:
            return self._closed is None

    def close(self) -> None:
        """Closes the connection; calls still waiting fail with UNAVAILABLE."""
        if self._failover is not None:
            self._failover.close()
            return
        try:
            self._socket.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._socket.close()
        self._reader.join(timeout=5)
        self._fail_all(OrgdError(StatusCode.UNAVAILABLE, "the client was closed"))

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _not_sent(error: OrgdError) -> OrgdError:
    """Marks ``error`` as a call that never left this process (the connection
    had closed, or the write failed), so no daemon ran it: with several
    addresses it goes to the next."""
    error.not_sent = True
    return error
