"""Admission: how much each client may ask of the gateway, and how much the gateway does at once.

- a token bucket per client: ``rate`` calls per second on average, ``burst`` at once;
- a cap on one client's calls in flight;
- a cap on networking operations in flight across all clients;
- a budget of result bytes held at once across all clients (:class:`ResultBudget`).

A call over any of them is refused with ``rate_limited`` before it does any
work. A client is its token's name once authentication exists, its IP
address until then. The elements of a multicall each cost a token; the
multicall holds the client's in-flight slot for all of them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from contextvars import ContextVar

from gateway.errors import RATE_LIMITED, GatewayError

__all__ = ["Admission", "Hold", "Place", "ResultBudget"]

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
        # A call that takes no outbound place (introspection) can be held back only by a rate or a per-client cap.
        self.limits_local_calls = bool(rate or per_client)
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

    def admit(self, client: str, *, outbound: bool, element: bool = False) -> AbstractContextManager[None]:
        """Take a place for one call, given back when the returned context ends; or raise ``rate_limited``
        saying which limit it met."""
        return self.take(client, outbound, element) or _NO_PLACE

    def take(self, client: str, outbound: bool, element: bool = False) -> Place | None:
        """:meth:`admit` for the core's path: the place to give back, or None when no limit applies to the call
        (introspection, by default), which takes no lock and has nothing to give back."""
        holds_slot = bool(self.per_client) and not element
        takes_outbound = bool(self.outbound) and outbound
        if not (self.rate or holds_slot or takes_outbound):
            return None
        with self._lock:
            if self.rate and not self._take_token(client):
                raise GatewayError(
                    RATE_LIMITED, f"more than {self.rate:g} calls a second from {client or 'this client'}"
                )
            if holds_slot and self._in_flight.get(client, 0) >= self.per_client:
                raise GatewayError(
                    RATE_LIMITED, f"{client or 'this client'} already has {self.per_client} calls in flight"
                )
            if takes_outbound and self._outbound_in_flight >= self.outbound:
                raise GatewayError(RATE_LIMITED, f"the gateway is running its limit of {self.outbound} operations")
            if holds_slot:
                self._in_flight[client] = self._in_flight.get(client, 0) + 1
            if takes_outbound:
                self._outbound_in_flight += 1
        return Place(self, client, holds_slot, takes_outbound)

    def _give_back(self, client: str, holds_slot: bool, takes_outbound: bool) -> None:
        with self._lock:
            if holds_slot:
                left = self._in_flight[client] - 1
                if left:
                    self._in_flight[client] = left
                else:
                    del self._in_flight[client]
            if takes_outbound:
                self._outbound_in_flight -= 1


class Place:
    """A call's place in :class:`Admission`, given back when its ``with`` block ends (a class, not a
    generator: this is on every call's path)."""

    __slots__ = ("admission", "client", "holds_slot", "takes_outbound")

    def __init__(self, admission: Admission, client: str, holds_slot: bool, takes_outbound: bool) -> None:
        self.admission = admission
        self.client = client
        self.holds_slot = holds_slot
        self.takes_outbound = takes_outbound

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        self.give_back()

    def give_back(self) -> None:
        """Give the place back (once: the core's ``finally``, or the ``with`` block's end)."""
        self.admission._give_back(self.client, self.holds_slot, self.takes_outbound)


_NO_PLACE = nullcontext()


class ResultBudget:
    """Bytes of results the gateway holds at once, across every caller (``max_result_bytes``).

    An operation that may return a large result (fetch_url's body) holds its cap before it reads a byte,
    then what it really kept; the hold lasts until the answer has been encoded (the connection layer opens
    a *scope* around each request, and holds made inside it, on a multicall's threads too, end with it).
    A call that would go over the budget is refused with ``rate_limited`` at once: memory stays bounded
    however many large calls arrive, and everyone else is served.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0
        self._lock = threading.Lock()

    def hold(self, size: int) -> Hold:
        """Hold ``size`` bytes until the current scope ends, or raise ``rate_limited``."""
        with self._lock:
            if self.limit and self.held and self.held + size > self.limit:
                raise GatewayError(
                    RATE_LIMITED,
                    f"the gateway is holding {self.held // 1024 // 1024} MiB of results (its budget is "
                    f"{self.limit // 1024 // 1024} MiB); try again shortly or ask for less (max_bytes)",
                )
            self.held += size
        held = Hold(self, size)
        scope = _holds.get()
        if scope is not None:  # the gateway runs every operation in a scope: outside one, the caller releases
            scope.append(held)
        return held

    @contextmanager
    def scope(self) -> Iterator[None]:
        """Release every hold made inside (in this context, or in a multicall it ran) when the block ends;
        an inner scope defers to the outer one."""
        if _holds.get() is not None:
            yield
            return
        holds: list[Hold] = []
        token = _holds.set(holds)
        try:
            yield
        finally:
            _holds.reset(token)
            for held in holds:
                held.release()

    @staticmethod
    def current() -> list[Hold] | None:
        """The open scope's holds (for a multicall to carry to its threads), or None."""
        return _holds.get()

    @staticmethod
    @contextmanager
    def joined(holds: list[Hold] | None) -> Iterator[None]:
        """Make the holds of this thread's block count in ``holds`` (another thread's scope)."""
        token = _holds.set(holds)
        try:
            yield
        finally:
            _holds.reset(token)


class Hold:
    """Bytes held in a :class:`ResultBudget`: resized to what was really kept, released once."""

    __slots__ = ("budget", "size")

    def __init__(self, budget: ResultBudget, size: int) -> None:
        self.budget = budget
        self.size = size

    def resize(self, size: int) -> None:
        """Hold ``size`` bytes instead (less, once the result's real size is known)."""
        with self.budget._lock:
            self.budget.held += size - self.size
            self.size = size

    def release(self) -> None:
        """Give the bytes back (idempotent)."""
        self.resize(0)


# The open scope's holds: a context variable, so that a coroutine run on the DNS loop for a call (which runs in a
# copy of the calling thread's context) holds in the call's scope too.
_holds: ContextVar[list[Hold] | None] = ContextVar("holds", default=None)
