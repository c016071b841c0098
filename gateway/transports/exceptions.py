"""Builtin exception classes for the transports that raise exceptions (RPyC, Pyro5).

A client of those transports needs no gateway code to catch or read an error:
the class is a builtin one and the message starts with the stable code,
``not_found: no such domain: …``.  This table is the only place the choice is made.
"""

from __future__ import annotations

from gateway.errors import GatewayError

__all__ = ["EXCEPTIONS", "is_native", "native_exception"]

EXCEPTIONS: dict[str, type[Exception]] = {
    "invalid_argument": ValueError,
    "method_not_found": AttributeError,
    "not_found": LookupError,
    "timeout": TimeoutError,
    "connection_failed": ConnectionError,
    "forbidden_target": PermissionError,
    "too_many_redirects": RuntimeError,
    "too_large": ValueError,
    "unauthenticated": PermissionError,
    "rate_limited": RuntimeError,
    "internal": RuntimeError,
}


def native_exception(error: GatewayError) -> Exception:
    """The builtin exception that carries ``error`` to an exception-raising transport."""
    return EXCEPTIONS[error.code](str(error))


def is_native(exc: BaseException) -> bool:
    """True for an exception made by :func:`native_exception` (class from the table, message led by its code)."""
    code = str(exc).partition(":")[0]
    return EXCEPTIONS.get(code) is type(exc)
