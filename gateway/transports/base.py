"""What every transport codec shares: the last-resort error mapping."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from typing import Any

from gateway.errors import INTERNAL, GatewayError

__all__ = ["guarded", "internal_error"]

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
