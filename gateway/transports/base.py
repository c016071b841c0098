"""What every transport codec shares: the last-resort error mapping, and JSON read and written one way."""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable
from typing import Any

import orjson

from gateway.errors import INTERNAL, GatewayError

__all__ = ["dump_json", "guarded", "internal_error", "load_json"]

log = logging.getLogger("gateway.transports")


def internal_error(exc: BaseException, where: str) -> GatewayError:
    """Log an unexpected exception in full; return the generic error a caller may see."""
    incident = secrets.token_hex(4)
    # where may hold a caller's method name: repr() keeps its newlines from forging log lines
    log.error("internal error in %r (incident %s)", where, incident, exc_info=exc)
    return GatewayError(INTERNAL, f"internal error (incident {incident})")


def guarded(func: Callable[[], Any], where: str) -> Any:
    """Run ``func``; any exception other than GatewayError becomes ``internal`` (logged, never shown)."""
    try:
        return func()
    except GatewayError:
        raise
    except Exception as exc:
        raise internal_error(exc, where) from None


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def load_json(body: bytes) -> Any:
    """Parse a JSON document; NaN and Infinity are refused (ValueError, or RecursionError when too deep)."""
    return json.loads(body, parse_constant=_reject_constant)


def dump_json(value: Any) -> bytes:
    """Compact UTF-8 JSON of plain data, encoded once: orjson writes bytes with no intermediate str."""
    try:
        return orjson.dumps(value)
    except TypeError:  # a lone surrogate a caller sent (an id, say): JSON can escape it, UTF-8 cannot
        return json.dumps(value, allow_nan=False, separators=(",", ":")).encode()
