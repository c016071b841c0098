"""Metrics: the lock-free tallies of a single process count exactly what prometheus_client's instruments would."""

from __future__ import annotations

import threading

from prometheus_client import CollectorRegistry, generate_latest

from gateway.metrics import BUCKETS, Metrics, _Instruments
from gateway.observe import Caller

JSONRPC, THRIFT = Caller("jsonrpc", "127.0.0.1:1"), Caller("thrift", "127.0.0.1:2")


def record(observer, caller: Caller, method: str, outcome: str, seconds: float) -> None:
    observer.started(caller, method)
    observer.finished(caller, method, outcome, seconds)


def exposition(registry: CollectorRegistry) -> list[str]:
    """The text format's lines, sorted (series come in another order), without prometheus_client's ``*_created``
    series (the tallies keep none)."""
    return sorted(line for line in generate_latest(registry).decode().splitlines() if "_created" not in line)


def test_tallies_expose_what_prometheus_client_s_instruments_would():
    metrics, registry = Metrics(), CollectorRegistry()
    instruments = _Instruments(registry)
    calls = [
        (JSONRPC, "resolve", "ok", 0.0005),  # exactly on a bound: counted in that bucket (le)
        (JSONRPC, "resolve", "not_found", 0.003),
        (THRIFT, "system.listMethods", "ok", 0.0001),
        (THRIFT, "unknown", "method_not_found", 0.0002),
        (JSONRPC, "fetch_url", "ok", 45.0),  # past the last bound: +Inf only
    ]
    for observer in (metrics, instruments):
        for call in calls:
            record(observer, *call)
        observer.answered(THRIFT, "system.methodHelp", "ok", 0.0001)  # an instant call: never in flight
        observer.answered(THRIFT, "system.methodHelp", "invalid_argument", 0.0007)
        observer.started(JSONRPC, "fetch_url")  # one still in flight, going out to the network
        observer.refused(THRIFT, "too_large")
    assert exposition(metrics.registry) == exposition(registry)
    text = "\n".join(exposition(metrics.registry))
    assert 'netops_call_duration_seconds_bucket{le="0.0005",method="resolve",transport="jsonrpc"} 1.0' in text
    assert "netops_outbound_in_flight 1.0" in text


def test_no_count_is_lost_when_threads_record_at_once():
    metrics, threads, per_thread = Metrics(), 8, 5_000
    scraped: list[bytes] = []

    def work() -> None:
        for i in range(per_thread):
            record(metrics, JSONRPC, "resolve", "ok", BUCKETS[i % len(BUCKETS)])
            if i % 1000 == 0:
                scraped.append(metrics.exposition())  # scraping while others write neither fails nor blocks

    runners = [threading.Thread(target=work) for _ in range(threads)]
    for runner in runners:
        runner.start()
    for runner in runners:
        runner.join()
    text = metrics.exposition().decode()
    total = threads * per_thread
    assert f'netops_calls_total{{method="resolve",outcome="ok",transport="jsonrpc"}} {float(total)}' in text
    assert f'netops_call_duration_seconds_count{{method="resolve",transport="jsonrpc"}} {float(total)}' in text
    assert 'netops_calls_in_flight{transport="jsonrpc"} 0.0' in text
    assert len(scraped) == threads * 5
