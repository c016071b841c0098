"""Prometheus metrics of one gateway, served at ``GET /metrics`` on the HTTP ports.

netops_calls_total{transport,method,outcome}   calls by outcome (``ok`` or the error code)
netops_call_duration_seconds{transport,method}  latency histogram
netops_calls_in_flight{transport}               calls being answered now
netops_outbound_in_flight                       networking operations running now
netops_refused_total{transport,reason}          requests refused before reaching an operation

A single process counts without a lock: each thread adds to tallies of its own, and a scrape sums them
(prometheus_client's instruments take a lock per update, five a call: about half of what the core costs
an introspection call). With ``--workers N`` every worker writes its figures to files in one directory
(prometheus_client's multi-process mode, ``PROMETHEUS_MULTIPROC_DIR``, set by the supervisor) and any
worker's ``/metrics`` answers with the sum over all of them: one scrape, every worker's calls.
"""

from __future__ import annotations

import bisect
import os
import threading
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from gateway.core import SYSTEM_NAMES
from gateway.observe import Caller

__all__ = ["CONTENT_TYPE", "Metrics"]

CONTENT_TYPE = CONTENT_TYPE_LATEST
MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
# From 0.5 ms (an introspection call) to the 10 s default operation timeout.
# System methods as callers name them, in both naming styles (system.listMethods, system_listMethods, rpc_discover).
_SYSTEM = SYSTEM_NAMES | {name.replace(".", "_") for name in SYSTEM_NAMES}
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_FIRST = BUCKETS[0]


# The families, as (name, help): one text for both ways of counting.
CALLS = ("netops_calls", "Calls answered, by outcome")
DURATION = ("netops_call_duration_seconds", "Time to answer a call")
IN_FLIGHT = ("netops_calls_in_flight", "Calls being answered")
OUTBOUND = ("netops_outbound_in_flight", "Networking operations running")
REFUSED = ("netops_refused", "Requests refused before reaching an operation")


class Metrics:
    """An observer that keeps the gateway's metrics in its own registry (not the process-global one)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.shared = bool(os.environ.get(MULTIPROCESS_DIR))
        sink: _Tallies | _Instruments = _Instruments(self.registry) if self.shared else _Tallies()
        if isinstance(sink, _Tallies):
            self.registry.register(sink)
        # Bound once: the core calls these on every call.
        self.started = sink.started
        self.finished = sink.finished
        self.answered = sink.answered
        self.refused = sink.refused

    def exposition(self) -> bytes:
        """The Prometheus text format (with --workers: summed over every worker's files)."""
        if self.shared:
            combined = CollectorRegistry()
            multiprocess.MultiProcessCollector(combined)
            return generate_latest(combined)
        return generate_latest(self.registry)


def _outbound(method: str) -> bool:
    """Whether a call of ``method`` is a networking operation (counted in ``netops_outbound_in_flight``)."""
    return method not in _SYSTEM and method != "unknown"


class _Series:
    """One thread's figures for one (transport, method): only that thread writes them."""

    __slots__ = ("buckets", "failed", "in_flight", "ok", "outbound", "sum")

    def __init__(self, method: str) -> None:
        self.buckets = [0] * (len(BUCKETS) + 1)  # per bucket, not cumulative; the last is +Inf
        self.sum = 0.0
        self.ok = 0  # nearly every outcome: a count of its own costs a third of a dict's get and set
        self.failed: dict[str, int] = {}  # by error code
        self.in_flight = 0
        self.outbound = _outbound(method)


class _Tallies(Collector):
    """Lock-free counting for a single process: per-thread tallies, summed when scraped.

    A thread only ever adds to its own tables, so no update is lost and none waits;
    a scrape reads every thread's tables (copying each dict first, which the GIL
    makes atomic) and may be a call behind, as any scrape may be.
    """

    def __init__(self) -> None:
        self._local = threading.local()
        self._lock = threading.Lock()  # only for adding a thread's tables to the list
        self._series: list[dict[str, dict[str, _Series]]] = []  # per thread: transport -> method -> series
        self._refusals: list[dict[tuple[str, str], int]] = []

    def _tables(self) -> tuple[dict[str, dict[str, _Series]], dict[tuple[str, str], int]]:
        try:
            return self._local.series, self._local.refusals
        except AttributeError:
            tables: tuple[dict[str, dict[str, _Series]], dict[tuple[str, str], int]] = ({}, {})
            with self._lock:  # a thread's tables outlive it: its calls stay counted
                self._series.append(tables[0])
                self._refusals.append(tables[1])
            self._local.series, self._local.refusals = tables
            return tables

    def _one(self, transport: str, method: str) -> _Series:
        """This thread's series of (transport, method), made on its first call."""
        table = self._tables()[0].setdefault(transport, {})
        series = table.get(method)
        if series is None:
            series = table[method] = _Series(method)
        return series

    # started and finished look their series up inline, not through _one: two function calls fewer on every
    # call, a tenth of what the core costs an introspection call (counted with callgrind). Two lookups by
    # string (whose hashes strings keep) cost less than making and hashing a (transport, method) key.
    def started(self, caller: Caller, method: str) -> None:
        """Count a call in flight."""
        try:
            series = self._local.series[caller.transport][method]
        except (AttributeError, KeyError):  # this thread's first call, or its first of this method
            series = self._one(caller.transport, method)
        series.in_flight += 1

    def finished(self, caller: Caller, method: str, outcome: str, seconds: float) -> None:
        """Count the call out of flight, its outcome and its latency."""
        self._one(caller.transport, method).in_flight -= 1
        self.answered(caller, method, outcome, seconds)

    def answered(self, caller: Caller, method: str, outcome: str, seconds: float) -> None:
        """Count the outcome and the latency."""
        try:
            series = self._local.series[caller.transport][method]
        except (AttributeError, KeyError):
            series = self._one(caller.transport, method)
        if outcome == "ok":
            series.ok += 1
        else:
            series.failed[outcome] = series.failed.get(outcome, 0) + 1
        # le: a bound counts what equals it. An instant call ends within the first: no search for it.
        series.buckets[0 if seconds <= _FIRST else bisect.bisect_left(BUCKETS, seconds)] += 1
        series.sum += seconds

    def refused(self, caller: Caller, reason: str) -> None:
        """Count a refusal."""
        table = self._tables()[1]
        key = (caller.transport, reason)
        table[key] = table.get(key, 0) + 1

    def collect(self) -> Iterator[Metric]:
        """Every thread's tallies, summed, as prometheus_client's families."""
        with self._lock:
            series_tables, refusal_tables = list(self._series), list(self._refusals)
        calls: dict[tuple[str, str, str], int] = {}
        buckets: dict[tuple[str, str], list[int]] = {}
        sums: dict[tuple[str, str], float] = {}
        in_flight: dict[str, int] = {}
        outbound = 0
        for table in series_tables:
            labelled = [
                ((transport, method), series)
                for transport, by_method in table.copy().items()
                for method, series in by_method.copy().items()
            ]
            for key, series in labelled:
                outcomes = series.failed.copy()
                if series.ok:
                    outcomes["ok"] = series.ok
                for outcome, count in outcomes.items():
                    calls[(*key, outcome)] = calls.get((*key, outcome), 0) + count
                total = buckets.setdefault(key, [0] * len(series.buckets))
                for i, count in enumerate(series.buckets):
                    total[i] += count
                sums[key] = sums.get(key, 0.0) + series.sum
                in_flight[key[0]] = in_flight.get(key[0], 0) + series.in_flight
                if series.outbound:
                    outbound += series.in_flight
        refusals: dict[tuple[str, str], int] = {}
        for refusal_table in refusal_tables:
            for key, count in refusal_table.copy().items():
                refusals[key] = refusals.get(key, 0) + count

        family = CounterMetricFamily(*CALLS, labels=["transport", "method", "outcome"])
        for labels, count in sorted(calls.items()):
            family.add_metric(labels, count)
        yield family
        histogram = HistogramMetricFamily(*DURATION, labels=["transport", "method"])
        bounds = [floatToGoString(bound) for bound in (*BUCKETS, float("inf"))]
        for key, counts in sorted(buckets.items()):
            running, cumulative = 0, []
            for bound, count in zip(bounds, counts, strict=True):
                running += count
                cumulative.append((bound, running))
            histogram.add_metric(key, cumulative, sums[key])
        yield histogram
        gauge = GaugeMetricFamily(*IN_FLIGHT, labels=["transport"])
        for transport, count in sorted(in_flight.items()):
            gauge.add_metric([transport], count)
        yield gauge
        yield GaugeMetricFamily(*OUTBOUND, value=outbound)
        family = CounterMetricFamily(*REFUSED, labels=["transport", "reason"])
        for key, count in sorted(refusals.items()):
            family.add_metric(key, count)
        yield family


class _Instruments:
    """prometheus_client's own instruments, for --workers: each update goes to this worker's files."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.calls = Counter(*CALLS, ["transport", "method", "outcome"], registry=registry)
        self.duration = Histogram(*DURATION, ["transport", "method"], buckets=BUCKETS, registry=registry)
        # livesum: the sum over the workers alive
        self.in_flight = Gauge(*IN_FLIGHT, ["transport"], registry=registry, multiprocess_mode="livesum")
        self.outbound = Gauge(*OUTBOUND, registry=registry, multiprocess_mode="livesum")
        self.refusals = Counter(*REFUSED, ["transport", "reason"], registry=registry)

        # Each label set's children, looked up once: prometheus_client's labels() costs microseconds a call,
        # and the sets are few (the registry's names and "unknown", by transport and outcome).
        self._methods: dict[tuple[str, str], _Method] = {}
        self._refusals: dict[tuple[str, str], Any] = {}

    def _method(self, transport: str, method: str) -> _Method:
        found = self._methods.get((transport, method))
        if found is None:
            found = _Method(self, transport, method, self.outbound if _outbound(method) else None)
            self._methods[transport, method] = found
        return found

    def started(self, caller: Caller, method: str) -> None:
        """Count a call in flight."""
        entry = self._method(caller.transport, method)
        entry.in_flight.inc()
        if entry.outbound is not None:
            entry.outbound.inc()

    def finished(self, caller: Caller, method: str, outcome: str, seconds: float) -> None:
        """Count the call out of flight, its outcome and its latency."""
        entry = self._method(caller.transport, method)
        entry.in_flight.dec()
        if entry.outbound is not None:
            entry.outbound.dec()
        self.answered(caller, method, outcome, seconds)

    def answered(self, caller: Caller, method: str, outcome: str, seconds: float) -> None:
        """Count the outcome and the latency."""
        entry = self._method(caller.transport, method)
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


class _Method:
    """The metrics one (transport, method) pair touches on every call, resolved once."""

    __slots__ = ("duration", "in_flight", "outbound", "outcomes")

    def __init__(self, instruments: _Instruments, transport: str, method: str, outbound: Any) -> None:
        self.in_flight = instruments.in_flight.labels(transport)
        self.duration = instruments.duration.labels(transport, method)
        self.outbound = outbound  # the unlabelled gauge, for operations that go out to the network
        self.outcomes: dict[str, Any] = {}
