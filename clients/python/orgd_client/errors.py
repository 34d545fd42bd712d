"""Status codes and the exception every failed call raises."""
from __future__ import annotations

import enum
from typing import Any, Iterable, List, Tuple


class StatusCode(enum.IntEnum):
    """gRPC status codes, as carried in google.rpc.Status."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16

    @classmethod
    def of(cls, value: int) -> StatusCode:
        try:
            return cls(value)
        except ValueError:
            return cls.UNKNOWN


class OrgdError(Exception):
    """A call that did not succeed: the status code, orgd's message, and the
    request fields it concerns, as (field, description) pairs (from
    google.rpc.BadRequest details)."""

    not_sent: bool = False
    """True when the call never left this process, so no daemon ran it."""

    def __init__(self, code: int, message: str, field_violations: Iterable[Tuple[str, str]] = ()) -> None:
        self.code: StatusCode = StatusCode.of(int(code))
        self.message: str = message
        self.field_violations: List[Tuple[str, str]] = list(field_violations)
        super().__init__(f"{self.code.name}: {message}")

    @classmethod
    def from_status(cls, status: Any) -> OrgdError:
        """From a google.rpc.Status (a ttrpc.Response's ``status``)."""
        from ._gen.google.rpc import error_details_pb2

        violations: List[Tuple[str, str]] = []
        for detail in status.details:
            bad_request = error_details_pb2.BadRequest()
            if detail.Is(bad_request.DESCRIPTOR) and detail.Unpack(bad_request):
                violations += [(v.field, v.description) for v in bad_request.field_violations]
        return cls(status.code, status.message, violations)
