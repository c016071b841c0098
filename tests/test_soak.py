"""A soak run: ``python server.py`` under a minute of mixed load on all five transports.

Twenty client threads of :mod:`gateway.client` (four a transport, each on its
own connection, each reconnecting now and then) mix cheap calls, multicalls, lookups the test name
server answers 0.3 s late, and calls that fail in known ways.  Every call must
be answered, with a result or its expected error; the gateway's resident
memory and thread count are sampled from /proc each second and must end flat.
The figures go to ``test-artifacts/soak.json``.  ``NETOPS_SOAK_SECONDS``
shortens the run on a laptop (the default, 60 s, is what CI runs).
"""

from __future__ import annotations

import json
import os
import random
import statistics
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from gateway.client import connect
from gateway.config import TRANSPORTS, Settings
from gateway.errors import GatewayError
from gateway.names import DNS_THREADS
from tests.test_server import ALL_FREE, ServerProcess
from tests.test_server import gateway_flags as gateway_flags  # the fixture, shared

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
SECONDS = float(os.environ.get("NETOPS_SOAK_SECONDS", "60"))
CLIENTS_PER_TRANSPORT = 4
MULTICALL_WORKERS = Settings().multicall_workers


def proc_status(pid: int) -> tuple[float, int]:
    """Resident memory (MB) and thread count of a process."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["Threads"])


def workload() -> list[tuple[str, tuple, str | None]]:
    """(method, arguments, expected error code or None) — the mix each client draws from."""
    return [
        ("system.listMethods", (), None),
        ("resolve", ("www.example.test",), None),
        ("mx_lookup", ("example.test",), None),
        ("resolve", ("slow.example.test",), None),  # answered 0.3 s late by the test name server
        ("resolve", ("nope.example.test",), "not_found"),
        ("fetch_url", ("http://127.0.0.1:1/",), "connection_failed"),  # nothing listens on port 1
        ("tcp_connect", ("127.0.0.1", 1), None),  # a refused connection is a result
        ("resolve", ("www.example.test", "ipv5"), "invalid_argument"),
        ("multicall", (), None),
    ]


@pytest.mark.timeout(SECONDS + 120)
def test_soak(gateway_flags):
    server = ServerProcess(*gateway_flags, *ALL_FREE, "--access-log", "false")
    with server:
        server.wait_ready(len(TRANSPORTS))
        pid = server.proc.pid
        start_rss, start_threads = proc_status(pid)
        mix = workload()
        stop = threading.Event()
        started, answered = Counter(), Counter()
        unexpected: list[str] = []
        latencies: dict[str, list[float]] = {t: [] for t in TRANSPORTS}
        lock = threading.Lock()

        def one(client, method: str, args: tuple) -> None:
            if method == "multicall":
                calls = [("resolve", ["www.example.test"])] * 9 + [("resolve", ["nope.example.test"])]
                results = client.multicall(calls)
                codes = [r.code if isinstance(r, GatewayError) else None for r in results]
                if codes != [None] * 9 + ["not_found"]:
                    raise AssertionError(f"multicall answered {codes}")
            else:
                client.call(method, *args)

        def run(transport: str, seed: int) -> None:
            rng = random.Random(seed)
            address = f"{transport}://127.0.0.1:{server.port(transport)}"
            client = connect(address, timeout=30)
            try:
                while not stop.is_set():
                    method, args, expected = rng.choice(mix)
                    with lock:
                        started[transport] += 1
                    begin = time.perf_counter()
                    try:
                        one(client, method, args)
                        outcome, detail = None, ""
                    except GatewayError as exc:
                        outcome, detail = exc.code, exc.message
                    except Exception as exc:  # anything but a coded error is unexpected
                        outcome, detail = f"{type(exc).__name__}", str(exc)
                    with lock:
                        answered[transport] += 1
                        latencies[transport].append(time.perf_counter() - begin)
                        if outcome != expected:
                            got = f"{outcome} ({detail})" if detail else outcome
                            unexpected.append(f"{transport} {method}{args}: expected {expected}, got {got}")
                    if rng.random() < 0.02:  # reconnect now and then: connection set-up and tear-down too
                        client.close()
                        client = connect(address, timeout=30)
            finally:
                client.close()

        threads = [
            threading.Thread(target=run, args=(t, i * 10 + n), name=f"soak-{t}-{n}")
            for i, t in enumerate(TRANSPORTS)
            for n in range(CLIENTS_PER_TRANSPORT)
        ]
        samples: list[tuple[float, float, int]] = []
        begin = time.monotonic()
        for t in threads:
            t.start()
        while time.monotonic() - begin < SECONDS:
            samples.append((time.monotonic() - begin, *proc_status(pid)))
            time.sleep(1)
        stop.set()
        for t in threads:
            t.join(30)
        assert not any(t.is_alive() for t in threads), "a client never got its last answer"
        time.sleep(3)  # the connections close once their clients have gone
        rest_rss, rest_threads = proc_status(pid)
        server.proc.terminate()
        server.proc.wait(15)
        server_log = server.proc.stderr.read()[-4000:] if server.proc.stderr else ""

    # Thirds of the run: the first fills the pools (multicall, DNS, Pyro5 workers); memory must not grow after.
    middle = [s for s in samples if SECONDS / 3 <= s[0] < 2 * SECONDS / 3]
    last = [s for s in samples if s[0] >= 2 * SECONDS / 3]
    warm = middle + last
    figures = {
        "seconds": SECONDS,
        "clients": len(threads),
        "calls": sum(answered.values()),
        "calls_per_transport": dict(answered),
        "calls_per_second": round(sum(answered.values()) / SECONDS, 1),
        "p50_ms": {t: round(statistics.median(v) * 1000, 2) for t, v in latencies.items() if v},
        "unexpected_errors": len(unexpected),
        "rss_mb": {
            "start": round(start_rss, 1),
            "warm": round(warm[0][1], 1),
            "peak": round(max(s[1] for s in samples), 1),
            "end_of_load": round(warm[-1][1], 1),
            "at_rest": round(rest_rss, 1),
        },
        "threads": {
            "start": start_threads,
            "warm": warm[0][2],
            "peak": max(s[2] for s in samples),
            "end_of_load": warm[-1][2],
            "at_rest": rest_threads,
        },
    }
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "soak.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))
    assert unexpected == [], (unexpected[:10], server_log)
    assert started == answered  # every call answered
    assert all(answered[t] > 0 for t in TRANSPORTS)
    # Memory flat: the last third of the run no higher than the middle third (10 % + 5 MB of slack).
    assert max(s[1] for s in last) <= max(s[1] for s in middle) * 1.1 + 5, figures
    # Threads bounded: the multicall pool fills lazily up to its size, DNS queries take one thread, and
    # grpcio's call pool starts a worker per gRPC call running at once; connections themselves take none.
    # The slack per client covers the gRPC workers.
    pools = MULTICALL_WORKERS + DNS_THREADS
    assert figures["threads"]["peak"] <= start_threads + pools + 3 * len(threads), figures
    assert rest_threads <= start_threads + pools + len(threads), figures
