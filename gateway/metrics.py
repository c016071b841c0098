"""Prometheus metrics of one gateway, served at ``GET /metrics`` on the HTTP ports.

netops_calls_total{transport,method,outcome}   calls by outcome (``ok`` or the error code)
netops_call_duration_seconds{transport,method}  latency histogram
netops_calls_in_flight{transport}               calls being answered now
netops_outbound_in_flight                       networking operations running now
netops_refused_total{transport,reason}          requests refused before reaching an operation

With ``--workers N`` every worker writes its figures to files in one directory (prometheus_client's
multi-process mode, ``PROMETHEUS_MULTIPROC_DIR``, set by the supervisor) and any worker's ``/metrics``
answers with the sum over all of them: one scrape, every worker's calls.
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from gateway.core import SYSTEM_NAMES
from gateway.observe import Caller

__all__ = ["CONTENT_TYPE", "Metrics"]

CONTENT_TYPE = CONTENT_TYPE_LATEST
MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
# From 0.5 ms (an introspection call) to the 10 s default operation timeout.
# System methods as callers name them, in both naming styles (system.listMethods, system_listMethods, rpc_discover).
_SYSTEM = SYSTEM_NAMES | {name.replace(".", "_") for name in SYSTEM_NAMES}
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    """An observer that keeps the gateway's metrics in its own registry (not the process-global one)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.calls = Counter(
            "netops_calls", "Calls answered, by outcome", ["transport", "method", "outcome"], registry=self.registry
        )
        self.duration = Histogram(
            "netops_call_duration_seconds",
            "Time to answer a call",
            ["transport", "method"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "netops_calls_in_flight",
            "Calls being answered",
            ["transport"],
            registry=self.registry,
            multiprocess_mode="livesum",  # with --workers: the sum over the workers alive
        )
        self.outbound = Gauge(
            "netops_outbound_in_flight",
            "Networking operations running",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.refusals = Counter(
            "netops_refused",
            "Requests refused before reaching an operation",
            ["transport", "reason"],
            registry=self.registry,
        )

        # Each label set's children, looked up once: prometheus_client's labels() costs microseconds a call,
        # and the sets are few (the registry's names and "unknown", by transport and outcome).
        self._methods: dict[tuple[str, str], _Method] = {}
        self._refusals: dict[tuple[str, str], Any] = {}

    def _method(self, transport: str, method: str) -> _Method:
        found = self._methods.get((transport, method))
        if found is None:
            outbound = self.outbound if method not in _SYSTEM and method != "unknown" else None
            found = _Method(self, transport, method, outbound)
            self._methods[transport, method] = found
        return found

    def started(self, caller: Caller, method: str) -> None:
        """Count a call in flight."""
        entry = self._method(caller.transport, method)
        entry.in_flight.inc()
        if entry.outbound is not None:
            entry.outbound.inc()

    def finished(self, caller: Caller, method: str, outcome: str, seconds: float) -> None:
        """Count the outcome and the latency."""
        entry = self._method(caller.transport, method)
        entry.in_flight.dec()
        if entry.outbound is not None:
            entry.outbound.dec()
        counter = entry.outcomes.get(outcome)
        if counter is None:
            counter = entry.outcomes[outcome] = self.calls.labels(caller.transport, method, outcome)
        counter.inc()
        entry.duration.observe(seconds)

    def refused(self, caller: Caller, reason: str) -> None:
        """Count a refusal."""
        key = (caller.transport, reason)
        counter = self._refusals.get(key)
        if counter is None:
            counter = self._refusals[key] = self.refusals.labels(*key)
        counter.inc()

    def exposition(self) -> bytes:
        """The Prometheus text format (with --workers: summed over every worker's files)."""
        if os.environ.get(MULTIPROCESS_DIR):
            combined = CollectorRegistry()
            multiprocess.MultiProcessCollector(combined)
            return generate_latest(combined)
        return generate_latest(self.registry)


class _Method:
    """The metrics one (transport, method) pair touches on every call, resolved once."""

    __slots__ = ("duration", "in_flight", "outbound", "outcomes")

    def __init__(self, metrics: Metrics, transport: str, method: str, outbound: Any) -> None:
        self.in_flight = metrics.in_flight.labels(transport)
        self.duration = metrics.duration.labels(transport, method)
        self.outbound = outbound  # the unlabelled gauge, for operations that go out to the network
        self.outcomes: dict[str, Any] = {}
