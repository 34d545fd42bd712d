"""Status codes and the exception every failed call raises."""
import enum


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
    def of(cls, value):
        try:
            return cls(value)
        except ValueError:
            return cls.UNKNOWN


class OrgdError(Exception):
    """A call that did not succeed: the status code, orgd's message, and the
    request fields it concerns (from google.rpc.BadRequest details)."""

    def __init__(self, code, message, field_violations=()):
        self.code = StatusCode.of(int(code))
        self.message = message
        self.field_violations = list(field_violations)
        super().__init__(f"{self.code.name}: {message}")

    @classmethod
    def from_status(cls, status):
        from google.rpc import error_details_pb2

        violations = []
        for detail in status.details:
            bad_request = error_details_pb2.BadRequest()
            if detail.Is(bad_request.DESCRIPTOR) and detail.Unpack(bad_request):
                violations += [(v.field, v.description) for v in bad_request.field_violations]
        return cls(status.code, status.message, violations)
