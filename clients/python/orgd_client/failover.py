"""Several orgd addresses behind one Client: calls go to one daemon and move
to the next when it goes away (``Client(addresses=[...])``)."""
from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Callable, List, Optional, Sequence, Tuple, Union

from .errors import OrgdError, StatusCode

if TYPE_CHECKING:
    from .client import Client

Address = Union[str, Tuple[str, int]]
"""A Unix socket path, or a TCP (host, port)."""


def describe(address: Address) -> str:
    """An address as orgd's other clients print it: ``unix:PATH`` or ``tcp:HOST:PORT``."""
    if isinstance(address, str):
        return f"unix:{address}"
    host, port = address
    return f"tcp:{host}:{port}"


def _shutting_down(message: str) -> bool:
    # A daemon draining refuses new calls so (PROTOCOL.md, "Several
    # addresses"): the call did not run.
    return message.startswith("the server is shutting down")


class Failover:
    """Which address calls use now, and its connection.

    The first address that accepts a connection is used until its connection
    is lost; the next call then connects again from the address after it, in
    the order given, wrapping round. A call no daemon ran (the connection was
    found closed before it was sent, or the daemon refused it while shutting
    down) goes to the next address at once. A call already sent on a
    connection that drops fails UNAVAILABLE and is not sent again, reads too:
    the client cannot tell a read from a write, and the caller knows whether
    a retry is safe (a create with an idempotency key is)."""

    def __init__(self, addresses: Sequence[Address], connect: Callable[[Address], Client]) -> None:
        if not addresses:
            raise ValueError("addresses is empty")
        self.addresses: List[Address] = list(addresses)
        self._connect = connect
        self._lock = threading.Lock()  # one connect at a time; other calls wait for it
        self._current: Optional[Tuple[int, Client]] = None
        self._next = 0
        self._closed = False

    def connection(self) -> Tuple[int, Client]:
        """The open connection, connecting first when there is none (or it was lost)."""
        with self._lock:
            if self._closed:
                raise OrgdError(StatusCode.UNAVAILABLE, "the client was closed")
            if self._current is not None:
                if self._current[1].is_open():
                    return self._current
                self._forget_locked(self._current)
            failures: List[str] = []
            count = len(self.addresses)
            for offset in range(count):
                index = (self._next + offset) % count
                try:
                    self._current = (index, self._connect(self.addresses[index]))
                    return self._current
                except OrgdError as error:
                    failures.append(f"{describe(self.addresses[index])}: {error.message}")
            raise OrgdError(StatusCode.UNAVAILABLE,
                            f"cannot connect to orgd at any of its {count} addresses ({'; '.join(failures)})")

    def lost(self, current: Tuple[int, Client]) -> None:
        """Gives up ``current`` if it is still in use: the next call connects
        again, from the address after its one."""
        with self._lock:
            if self._current is current:
                self._forget_locked(current)

    def _forget_locked(self, current: Tuple[int, Client]) -> None:
        self._current = None
        self._next = (current[0] + 1) % len(self.addresses)
        current[1].close()

    def call_raw(self, *arguments: Any, **options: Any) -> Any:
        """``Client.call_raw`` on the connection in use, moving on as the class says."""
        unsent: List[str] = []
        while True:
            try:
                current = self.connection()
            except OrgdError as error:
                if unsent:
                    raise OrgdError(StatusCode.UNAVAILABLE, f"{error.message}; before that: {'; '.join(unsent)}") from error
                raise
            where = describe(self.addresses[current[0]])
            try:
                response = current[1].call_raw(*arguments, **options)
            except OrgdError as error:
                if error.code != StatusCode.UNAVAILABLE:
                    raise
                if error.not_sent:
                    self.lost(current)
                    unsent.append(f"{where}: {error.message}")
                    if len(unsent) < len(self.addresses):
                        continue
                    raise OrgdError(StatusCode.UNAVAILABLE, f"no orgd took the call: {'; '.join(unsent)}") from error
                self.lost(current)
                raise OrgdError(StatusCode.UNAVAILABLE,
                                f"{error.message} (orgd at {where}; the call may have run and is not sent again; "
                                "the next call goes to the next address)") from error
            if response.status.code == StatusCode.UNAVAILABLE and _shutting_down(response.status.message):
                self.lost(current)
                unsent.append(f"{where}: {response.status.message}")
                if len(unsent) < len(self.addresses):
                    continue
            return response

    def close(self) -> None:
        with self._lock:
            self._closed = True
            current, self._current = self._current, None
        if current is not None:
            current[1].close()
