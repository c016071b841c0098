"""The gateway's one error type and its stable codes.

Every failure that reaches a caller is a :class:`GatewayError` with a
transport-neutral ``code``; each transport translates it at its edge using
:data:`NUMERIC` (XML-RPC faultCode, JSON-RPC error code) or its own table::

    Exception
     └── GatewayError(code, message)
           code ∈ invalid_argument   bad type, range, unknown parameter, bad scheme, batch too big
                  method_not_found   no operation of that name on this transport
                  not_found          the name or domain does not exist (NXDOMAIN)
                  timeout            the whole operation exceeded its time
                  connection_failed  refused, reset, TLS handshake failed, no nameserver answered
                  forbidden_target   the target policy refused the destination
                  too_many_redirects more redirects than allowed
                  too_large          a request larger than the gateway accepts
                  unauthenticated    no or wrong credentials
                  rate_limited       the caller exceeded its allowance
                  internal           a bug: logged in full on the server, generic to the caller

Messages name the caller's input and never carry tracebacks or server paths.
"""

from __future__ import annotations

__all__ = ["CODES", "NUMERIC", "GatewayError", "code_for_number"]

INVALID_ARGUMENT = "invalid_argument"
METHOD_NOT_FOUND = "method_not_found"
NOT_FOUND = "not_found"
TIMEOUT = "timeout"
CONNECTION_FAILED = "connection_failed"
FORBIDDEN_TARGET = "forbidden_target"
TOO_MANY_REDIRECTS = "too_many_redirects"
TOO_LARGE = "too_large"
UNAUTHENTICATED = "unauthenticated"
RATE_LIMITED = "rate_limited"
INTERNAL = "internal"

# One numeric table shared by XML-RPC and JSON-RPC. -32602 and -32601 are the
# JSON-RPC 2.0 codes for "invalid params" and "method not found"; the rest sit in
# the range JSON-RPC reserves for implementation-defined server errors.
NUMERIC: dict[str, int] = {
    INVALID_ARGUMENT: -32602,
    METHOD_NOT_FOUND: -32601,
    INTERNAL: -32000,
    NOT_FOUND: -32001,
    TIMEOUT: -32002,
    CONNECTION_FAILED: -32003,
    FORBIDDEN_TARGET: -32004,
    TOO_MANY_REDIRECTS: -32005,
    TOO_LARGE: -32006,
    UNAUTHENTICATED: -32007,
    RATE_LIMITED: -32008,
}
CODES: tuple[str, ...] = tuple(NUMERIC)

# The gRPC status of each code (the code itself travels beside it, in the trailing metadata netops-code).
GRPC_STATUS: dict[str, str] = {
    INVALID_ARGUMENT: "INVALID_ARGUMENT",
    METHOD_NOT_FOUND: "UNIMPLEMENTED",
    INTERNAL: "INTERNAL",
    NOT_FOUND: "NOT_FOUND",
    TIMEOUT: "DEADLINE_EXCEEDED",
    CONNECTION_FAILED: "UNAVAILABLE",
    FORBIDDEN_TARGET: "PERMISSION_DENIED",
    TOO_MANY_REDIRECTS: "FAILED_PRECONDITION",
    TOO_LARGE: "RESOURCE_EXHAUSTED",
    UNAUTHENTICATED: "UNAUTHENTICATED",
    RATE_LIMITED: "RESOURCE_EXHAUSTED",
}

# Wire-level codes of JSON-RPC 2.0 (and the XML-RPC fault interop spec) for
# payloads that never reach an operation.
PARSE_ERROR = -32700
INVALID_REQUEST = -32600

_BY_NUMBER = {number: code for code, number in NUMERIC.items()}


def code_for_number(number: int) -> str:
    """Return the stable code for a numeric fault code (``internal`` if unknown)."""
    return _BY_NUMBER.get(number, INTERNAL)


class GatewayError(Exception):
    """A failure with a stable ``code`` and a message safe to show a remote caller."""

    def __init__(self, code: str, message: str) -> None:
        if code not in NUMERIC:
            raise ValueError(f"unknown error code {code!r}")
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message

    @property
    def number(self) -> int:
        """The numeric code shared by XML-RPC and JSON-RPC."""
        return NUMERIC[self.code]

    def __reduce__(self) -> tuple[type[GatewayError], tuple[str, str]]:
        return (GatewayError, (self.code, self.message))
