"""Admission: how much each client may ask of the gateway, and how much the gateway does at once.

- a token bucket per client: ``rate`` calls per second on average, ``burst`` at once;
- a cap on one client's calls in flight;
- a cap on networking operations in flight across all clients.

A call over any of them is refused with ``rate_limited`` before it does any
work. A client is its token's name once authentication exists, its IP
address until then. The elements of a multicall each cost a token; the
multicall holds the client's in-flight slot for all of them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from gateway.errors import RATE_LIMITED, GatewayError

__all__ = ["Admission"]

MAX_TRACKED_CLIENTS = 10_000  # buckets kept; idle full ones are dropped past this


class Admission:
    """Thread-safe admission control; every limit of 0 is off."""

    def __init__(
        self,
        rate: float = 0.0,
        burst: int = 0,
        per_client: int = 0,
        outbound: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self.burst = float(burst or max(1.0, rate))
        self.per_client = per_client
        self.outbound = outbound
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # client -> (tokens, when)
        self._in_flight: dict[str, int] = {}
        self._outbound_in_flight = 0

    def _take_token(self, client: str) -> bool:
        now = self._clock()
        tokens, when = self._buckets.get(client, (self.burst, now))
        tokens = min(self.burst, tokens + (now - when) * self.rate)
        if tokens < 1:
            self._buckets[client] = (tokens, now)
            return False
        self._buckets[client] = (tokens - 1, now)
        if len(self._buckets) > MAX_TRACKED_CLIENTS:
            self._forget_idle(now)
        return True

    def _forget_idle(self, now: float) -> None:
        for client, (tokens, when) in list(self._buckets.items()):
            if tokens + (now - when) * self.rate >= self.burst and not self._in_flight.get(client):
                del self._buckets[client]

    @contextmanager
    def admit(self, client: str, *, outbound: bool, element: bool = False) -> Iterator[None]:
        """Hold a place for one call, or raise ``rate_limited`` saying which limit it met."""
        with self._lock:
            if self.rate and not self._take_token(client):
                raise GatewayError(
                    RATE_LIMITED, f"more than {self.rate:g} calls a second from {client or 'this client'}"
                )
            holds_slot = bool(self.per_client) and not element
            if holds_slot and self._in_flight.get(client, 0) >= self.per_client:
                raise GatewayError(
                    RATE_LIMITED, f"{client or 'this client'} already has {self.per_client} calls in flight"
                )
            takes_outbound = bool(self.outbound) and outbound
            if takes_outbound and self._outbound_in_flight >= self.outbound:
                raise GatewayError(RATE_LIMITED, f"the gateway is running its limit of {self.outbound} operations")
            if holds_slot:
                self._in_flight[client] = self._in_flight.get(client, 0) + 1
            if takes_outbound:
                self._outbound_in_flight += 1
        try:
            yield
        finally:
            with self._lock:
                if holds_slot:
                    left = self._in_flight[client] - 1
                    if left:
                        self._in_flight[client] = left
                    else:
                        del self._in_flight[client]
                if takes_outbound:
                    self._outbound_in_flight -= 1
