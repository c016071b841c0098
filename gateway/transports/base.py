"""What every transport adapter shares: the listener life cycle and the last-resort error mapping."""

from __future__ import annotations

import logging
import secrets
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from gateway.core import Gateway
from gateway.errors import INTERNAL, GatewayError

__all__ = ["Transport", "guarded", "internal_error"]

log = logging.getLogger("gateway.transports")


def internal_error(exc: BaseException, where: str) -> GatewayError:
    """Log an unexpected exception in full; return the generic error a caller may see."""
    incident = secrets.token_hex(4)
    log.error("internal error in %s (incident %s)", where, incident, exc_info=exc)
    return GatewayError(INTERNAL, f"internal error (incident {incident})")


def guarded(func: Callable[[], Any], where: str) -> Any:
    """Run ``func``; any exception other than GatewayError becomes ``internal`` (logged, never shown)."""
    try:
        return func()
    except GatewayError:
        raise
    except Exception as exc:
        raise internal_error(exc, where) from None


class Transport(ABC):
    """One RPC protocol listening on one port: bind, serve on a thread, stop."""

    name: str = ""

    def __init__(self, gateway: Gateway, host: str, port: int) -> None:
        self.gateway = gateway
        self.host = host
        self.requested_port = port
        self._thread: threading.Thread | None = None

    @property
    @abstractmethod
    def port(self) -> int:
        """The port actually bound (differs from the requested one when that was 0)."""

    @abstractmethod
    def bind(self) -> None:
        """Open the listening socket; raises OSError (e.g. address in use) before anything runs."""

    @abstractmethod
    def _serve(self) -> None:
        """Serve until stopped (runs on the transport's thread)."""

    @abstractmethod
    def stop(self) -> None:
        """Stop accepting, close the listener; in-flight calls end at their own timeout."""

    @property
    @abstractmethod
    def endpoint(self) -> str:
        """How a client reaches this transport."""

    def start(self) -> None:
        """Serve on a daemon thread."""
        self._thread = threading.Thread(target=self._serve, name=f"{self.name}-server", daemon=True)
        self._thread.start()

    def serving(self) -> bool:
        """True while the serving thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def join(self, timeout: float) -> None:
        """Wait for the serving thread to end."""
        if self._thread is not None:
            self._thread.join(timeout)
