"""Who is calling, and the hook through which calls are counted and logged.

The core reports each call's start and end to its observers (an instant call's
once, at its end); metrics and the access log are observers (see
:mod:`gateway.metrics`, :mod:`gateway.accesslog`), so the core itself stays
free of I/O and of any monitoring library.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Protocol

__all__ = ["NO_CALLER", "Caller", "Observer"]


@dataclass(frozen=True)
class Caller:
    """Where a call came from: the transport, the client's address (``ip:port``) and its token's name."""

    transport: str = ""
    client: str = ""
    typed: bool = False  # the transport needs a fixed type for every result (Thrift): untyped methods are hidden
    principal: str = ""  # the name of the token the caller presented and the gateway accepted
    rejected: bool = False  # the caller presented a token the gateway does not accept

    @functools.cached_property  # asked on every call, and a caller lives as long as its connection
    def identity(self) -> str:
        """Whom limits count against: the token's name, else the client's IP address (its port changes)."""
        if self.principal:
            return "token:" + self.principal
        return self.client.rsplit(":", 1)[0] if self.client else ""


NO_CALLER = Caller()


class Observer(Protocol):
    """Receives every call's start and end, and every request refused before it reached the core."""

    def started(self, caller: Caller, method: str) -> None:
        """A call has begun."""

    def finished(self, caller: Caller, method: str, outcome: str, seconds: float) -> None:
        """A call has ended; ``outcome`` is ``ok`` or the error code."""

    def answered(self, caller: Caller, method: str, outcome: str, seconds: float) -> None:
        """An instant call (no I/O: it never waits) has begun and ended, told once, in place of ``started``
        and ``finished``: it is never in flight long enough for anyone to see it."""

    def refused(self, caller: Caller, reason: str) -> None:
        """A request was refused before it reached an operation (too large, unparsable, …)."""
