"""``netops bench``: every transport on the same work, the gateway against each bare library, in one run.

Workloads (``--workloads``, all by default):

- ``latency``: one client, one persistent connection, N sequential ``system.listMethods`` calls;
- ``throughput``: C client processes, each with its own connection, for D seconds;
- ``batch``: 100 calls as one multicall against 100 single calls;
- ``payload``: a small result against a ``fetch_url`` of a 256 KiB local page;
- ``memory``: four concurrent ``fetch_url`` calls of a 10 MiB page: the gateway's peak RSS over its RSS at
  rest, per call in flight;
- ``network``: 100 ``mx_lookup`` calls against a DNS server that answers after 50 ms,
  sequentially, from C clients, and as one multicall; and the multicall's DNS queries sent through dnspython
  alone, with no gateway around them (:mod:`gateway.bench.dns_alone`): the floor the multicall stands on;
- ``load``: 200 connections spread over every transport at once;
- ``idle``: 10,000 idle connections (2,000 a transport) held by another process: the gateway's threads
  and RSS, and the p50 of a call on each transport against its p50 with no idle connection;
- ``workers``: throughput with ``--workers 2`` against one process;
- ``wire``: per transport, bytes on the wire and round trips of a small call, a 256 KiB ``fetch_url`` and a
  multicall of 10; the set-up cost of a connection (plain, and with TLS and a token); the latency projected
  at 1, 20 and 100 ms RTT, one projection checked through a delaying relay; RPyC's access patterns;
- ``instructions``: per transport, the instructions a call costs the gateway and the bare library, counted
  by valgrind's callgrind (:mod:`gateway.bench.instructions`): the one figure this machine's noise cannot
  move. Left out, and said so, when valgrind is not installed.

With py-spy installed (``pip install .[bench]``) the throughput runs are profiled, gateway and bare library
alike, and the report shows where each one's time goes.

Latency and throughput run against the bare library servers too (:mod:`gateway.bench.bare`)
and a raw TCP echo, and the server's CPU time per call is read from ``/proc``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import functools
import json
import os
import platform
import secrets
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

from gateway import __version__
from gateway.bench import instructions, profile, wire
from gateway.bench.bare import SERVERS as BARE_SERVERS
from gateway.bench.dns_alone import mx_domains
from gateway.bench.engine import (
    IDLE_CONNECTIONS,
    Server,
    Stats,
    autogroup,
    call_factory,
    cpu_by_kind,
    latencies,
    latency,
    median_latency_round,
    median_round,
    start_bare,
    start_gateway,
    throughput,
)
from gateway.bench.fixtures import LARGE_BYTES, SlowDNS, WebPage
from gateway.bench.report import write_reports
from gateway.client import connect, tls_context
from gateway.config import TRANSPORTS
from gateway.errors import GatewayError

__all__ = ["main", "run"]

WORKLOADS = (
    "latency", "throughput", "batch", "payload", "memory", "network", "wire", "load", "idle", "workers", "instructions"
)  # fmt: skip
QUICK_WORKLOADS = ("latency", "throughput", "network")  # network: only its multicall part in a quick run
# A library that can also be served from the gateway's event loop (gateway.bench.bare): its latency there is the
# floor of an event-loop server doing that library's work, which tells the loop's cost from the gateway's.
ON_THE_LOOP = {"thrift": "thrift-asyncio", "grpc": "grpc-asyncio"}
# Multicalls of slow mx_lookups timed per round. One takes 0.3 s and swings by a tenth of a second from one to
# the next; pyro's median of 3 read 0.29-0.37 s over eight committed runs, against a 0.35 s target, so the
# verdict was the draw. 15 (5 rounds) cost 10 s a transport, with the same queries through dnspython alone.
MULTICALLS_PER_ROUND = 3
MiB = 1024 * 1024


class Progress:
    """Progress on standard error: a bar redrawn in place on a terminal, a line a step otherwise (a log)."""

    def __init__(self, total: int, enabled: bool = True) -> None:
        self.total, self.done, self.enabled = max(total, 1), 0, enabled
        self.bar = sys.stderr.isatty()

    def step(self, label: str) -> None:
        """Advance by one step, naming what runs next."""
        self.done += 1
        if not self.enabled:
            return
        if self.bar:
            filled = int(30 * self.done / self.total)
            sys.stderr.write(f"\r[{'#' * filled}{'.' * (30 - filled)}] {self.done}/{self.total} {label:<40}")
        else:
            sys.stderr.write(f"[{self.done}/{self.total}] {label}\n")
        sys.stderr.flush()

    def close(self) -> None:
        """End the bar's line."""
        if self.enabled and self.bar:
            sys.stderr.write("\n")


def _stats(stats: Stats) -> dict[str, Any]:
    figures: dict[str, Any] = {
        "calls": stats.calls,
        "errors": stats.errors,
        "seconds": round(stats.seconds, 4),
        "calls_per_s": round(stats.rate, 1),
        "p50_us": round(stats.p50_us, 1),
        "p99_us": round(stats.p99_us, 1),
        "server_cpu_per_call_us": round(stats.cpu_per_call_us, 1),
    }
    if stats.scheduling is not None:
        figures["scheduling"] = dataclasses.asdict(stats.scheduling)
    return figures


def _latency(
    server: Server, transport: str, port: int, count: int, method: str = "system.listMethods", args: tuple = ()
) -> Stats:
    call, close = call_factory(transport, port, method, args)
    try:
        return latency(server, call, count)
    finally:
        close()


def machine() -> dict[str, Any]:
    """What the run ran on."""
    model = ""
    try:
        with open("/proc/cpuinfo") as fh:
            model = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), "")
    except OSError:
        pass
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
        "gateway": __version__,
        "autogroup": autogroup(),
    }


def run(options: argparse.Namespace, progress: Progress | None = None) -> dict[str, Any]:
    """Run the chosen workloads; return every figure as plain data."""
    transports = options.transports
    workloads = options.workloads
    steps = (
        len(transports)
        * (
            (("latency" in workloads) + ("throughput" in workloads)) * options.rounds
            + sum(w in workloads for w in ("batch", "payload", "memory", "network"))
            + 2 * ("workers" in workloads)  # one gateway process, then two
        )
        + 3
        + ("idle" in workloads)
        + ("wire" in workloads)
        + ("instructions" in workloads)
    )
    progress = progress or Progress(steps)
    dns, web = SlowDNS(0.05), WebPage()
    result: dict[str, Any] = {
        "machine": machine(),
        "when": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "options": {
            k: v
            for k, v in vars(options).items()
            if k in ("calls", "clients", "duration", "rounds", "transports", "workloads", "quick", "profile")
        },
        "transports": {t: {} for t in transports},
        "command": getattr(options, "command_line", "netops bench").strip(),
    }
    progress.step("starting the gateway")
    gateway = start_gateway(dns.address)
    try:
        time.sleep(0.5)
        result["at_rest"] = {"rss_mb": round(gateway.rss_bytes() / MiB, 1), "threads": gateway.threads()}
        for transport in transports:
            row = result["transports"][transport]
            port = gateway.ports[transport]
            # A transport whose library has no bare server in gateway.bench.bare is measured alone.
            compared = {"latency", "throughput"} & set(workloads) and transport in BARE_SERVERS
            bare = start_bare(transport) if compared else None
            sides = {"": gateway, "bare_": bare} if bare is not None else {"": gateway}
            fresh = {  # each further round's processes
                "": functools.partial(start_gateway, dns.address),
                "bare_": functools.partial(start_bare, transport),
            }
            try:
                if bare is not None and "latency" in workloads and transport in ON_THE_LOOP:
                    # The library on the gateway's event loop, in the same turns: the loop's share of the latency.
                    fresh["loop_"] = functools.partial(start_bare, transport, server=ON_THE_LOOP[transport])
                    sides["loop_"] = fresh["loop_"]()
                if {"latency", "throughput"} & set(workloads):
                    row.update(_compare(sides, fresh, transport, workloads, options, progress.step, options.profile))
            finally:
                for prefix in ("bare_", "loop_"):
                    if prefix in sides:
                        sides[prefix].stop()
            if "batch" in workloads:
                progress.step(f"{transport}: batching")
                row["batch"] = _batch(transport, port)
            if "payload" in workloads:
                progress.step(f"{transport}: payload")
                row["payload"] = {
                    "small": _stats(_latency(gateway, transport, port, max(20, options.calls // 10))),
                    "large": _stats(
                        _latency(
                            gateway,
                            transport,
                            port,
                            max(20, options.calls // 10),
                            "fetch_url",
                            (web.url, "GET", {}, 262144),
                        )
                    ),
                }
            if "memory" in workloads:
                progress.step(f"{transport}: 10 MiB results in flight")
                row["memory"] = _memory(gateway, transport, port, web.large_url)
            if "network" in workloads:
                progress.step(f"{transport}: network work")
                row["network"] = _network(
                    transport, port, options.clients, full=not options.quick,
                    rounds=MULTICALLS_PER_ROUND * options.rounds, watched=(gateway, dns),
                )  # fmt: skip
        if "latency" in workloads or "throughput" in workloads:
            progress.step("raw TCP echo, threaded and on asyncio (the floors)")
            for name, key in (("echo", "echo"), ("echo-asyncio", "echo_asyncio")):
                result[key] = _floor(name, workloads, options)
        if "wire" in workloads:
            progress.step("bytes and round trips on the wire")
            result["wire"] = _wire(gateway, dns.address, transports, web.url)
        if "load" in workloads:
            progress.step("200 connections at once")
            result["load"] = _load(gateway, transports, 200)
        if "idle" in workloads:
            progress.step(f"{IDLE_CONNECTIONS:,} idle connections")
            result["idle"] = _idle(gateway, transports, IDLE_CONNECTIONS, options.calls)
    finally:
        gateway.stop()
    if "workers" in workloads:
        result["workers"] = {}
        for count in (1, 2):
            server = start_gateway(dns.address, workers=count)
            try:
                for transport in transports:
                    progress.step(f"{transport}: {count} worker(s)")
                    stats = throughput(server, transport, server.ports[transport], options.clients, options.duration)
                    result["workers"].setdefault(transport, {})[str(count)] = _stats(stats)
            finally:
                server.stop()
    if "instructions" in workloads:
        progress.step("instructions per call, under callgrind")
        if instructions.available():
            result["instructions"] = instructions.workload(transports, dns.address, bare=list(BARE_SERVERS))
        else:
            result["instructions"] = {"skipped": "valgrind is not installed"}
    dns.close()
    web.close()
    progress.close()
    return result


def _compare(
    first: dict[str, Server],
    starters: Mapping[str, Callable[[], Server]],
    transport: str,
    workloads: Sequence[str],
    options: argparse.Namespace,
    step: Callable[[str], None] | None = None,
    profiled: bool = False,
) -> dict[str, Any]:
    """Latency and throughput of each side (``""`` the gateway, ``"bare_"`` the library; ``"loop_"`` the library
    on the gateway's event loop, latency only) in ``options.rounds``
    rounds, on fresh processes after the first (:func:`_round_sides`): the figures by prefix + ``latency``,
    ``throughput`` and, for the first throughput round when ``profiled``, ``profile``."""
    latency_runs: dict[str, list[Stats]] = {prefix: [] for prefix in first}
    throughput_runs: dict[str, list[Stats]] = {prefix: [] for prefix in first}
    found: dict[str, profile.Profile] = {}
    for round_ in range(options.rounds):
        with _round_sides(first, starters, round_) as current:
            if "latency" in workloads:
                if step:
                    also = ", and it on the gateway's loop," if "loop_" in current else ""
                    step(f"{transport}: latency, round {round_ + 1}, gateway and bare library{also} in turn")
                for prefix, stats in _latency_round(current, transport, options).items():
                    latency_runs[prefix].append(stats)
            if "throughput" in workloads:
                if step:
                    step(f"{transport}: throughput, round {round_ + 1}, gateway and bare library")
                # Who goes first alternates by round, as in the latency turns: neither side always has the slot
                # right after the latency turns and the start of the round's fresh processes.
                order = [(prefix, server) for prefix, server in current.items() if prefix != "loop_"]  # latency only
                for prefix, server in order if round_ % 2 == 0 else reversed(order):
                    recording = profiled and round_ == 0
                    stats, where = _throughput_round(server, transport, options, recording)
                    throughput_runs[prefix].append(stats)
                    if where is not None:
                        found[prefix] = where
    out: dict[str, Any] = {}
    for prefix in first:
        if "latency" in workloads:
            out[prefix + "latency"] = _latency_figures(latency_runs[prefix])
        if "throughput" in workloads and throughput_runs[prefix]:
            out[prefix + "throughput"] = _throughput_figures(throughput_runs[prefix])
            if prefix in found:
                out[prefix + "profile"] = found[prefix].summary()
    return out


@contextmanager
def _round_sides(
    first: dict[str, Server], starters: Mapping[str, Callable[[], Server]], round_: int
) -> Iterator[dict[str, Server]]:
    """The servers of one round of latency and throughput: the running ones in the first, fresh processes
    from ``starters`` in each further one, stopped after it.

    A server process can keep a speed of its own for a while: bare thriftpy2 answered at 48 us a call
    through every round of one run and at 32-34 us in five fresh processes out of six after it (the
    gateway the same: 37 us, once 50). On one process per side, that luck was the verdict; on a process
    per round, median rounds pass over one slow process, and the spread by round shows it."""
    if round_ == 0:
        yield first
        return
    fresh: dict[str, Server] = {}
    try:
        for prefix in first:
            fresh[prefix] = starters[prefix]()
        yield fresh
    finally:
        for server in fresh.values():
            server.stop()


def _latency_round(sides: dict[str, Server], transport: str, options: argparse.Namespace) -> dict[str, Stats]:
    """One round of sequential calls, the gateway and the bare library taking turns every few dozen calls
    (engine.latencies): each side's Stats."""
    clients = {prefix: call_factory(transport, server.ports[transport]) for prefix, server in sides.items()}
    try:
        calls = {prefix: (sides[prefix], call) for prefix, (call, _) in clients.items()}
        return latencies(calls, max(1, options.calls // options.rounds))
    finally:
        for _, close in clients.values():
            close()


def _latency_figures(runs: list[Stats]) -> dict[str, Any]:
    """A side's rounds of sequential calls as its median round (each round's own p50 kept too, for the spread
    of the ratio)."""
    figures: dict[str, Any] = _stats(median_latency_round(runs))
    figures["rounds"] = [{"p50_us": round(r.p50_us, 1)} for r in runs]
    return figures


def _throughput_round(
    server: Server, transport: str, options: argparse.Namespace, recording: bool
) -> tuple[Stats, profile.Profile | None]:
    """One round of throughput against ``server``, profiled when ``recording`` (py-spy from the clock's start)."""
    found: list[profile.Profile | None] = []

    def start() -> None:
        if recording:
            found.append(profile.record(server.proc.pid, options.duration))

    port = server.ports[transport]
    stats = throughput(server, transport, port, options.clients, options.duration, on_start=start)
    return stats, (found[0] if found else None)


def _throughput_figures(runs: list[Stats]) -> dict[str, Any]:
    """A side's throughput rounds as its median round. A library can swing between two speeds from one round
    to the next (bare Pyro5 measured 3,000 and 7,000 calls/s in rounds of one process), and one round would
    make its ratio a coin toss; every round is kept."""
    figures: dict[str, Any] = _stats(median_round(runs))
    figures["rounds"] = [
        {"calls_per_s": round(r.rate, 1), "server_cpu_per_call_us": round(r.cpu_per_call_us, 1)} for r in runs
    ]
    return figures


def _wire(gateway: Server, nameserver: str, transports: Sequence[str], page_url: str) -> dict[str, Any]:
    """The wire comparison, with a second gateway serving TLS and requiring a token for the set-up cost."""
    token = secrets.token_urlsafe(24)
    with tempfile.TemporaryDirectory(prefix="netops-bench-") as scratch:
        cert, key = wire.self_signed(Path(scratch))
        tokens = Path(scratch) / "tokens"
        tokens.write_text(f"bench:{token}\n")
        flags = [f"--tls-cert={cert}", f"--tls-key={key}", f"--token-file={tokens}"]
        secured = start_gateway(nameserver, transports=transports, extra=flags)
        try:
            ports = {t: gateway.ports[t] for t in transports}
            return wire.wire_workload(ports, secured.ports, tls_context(str(cert)), token, page_url)
        finally:
            secured.stop()


def _batch(transport: str, port: int, rounds: int = 5) -> dict[str, Any]:
    """100 resolve calls of an IP literal (an operation every multicall can hold, Thrift's typed one too)."""
    calls = [("resolve", ["127.0.0.1"])] * 100
    with connect(f"{transport}://127.0.0.1:{port}") as client:
        client.multicall(calls)
        began = time.perf_counter()
        for _ in range(rounds):
            client.multicall(calls)
        batched = time.perf_counter() - began
        began = time.perf_counter()
        for _ in range(rounds * 100):
            client.resolve("127.0.0.1")
        single = time.perf_counter() - began
    return {
        "multicall_calls_per_s": round(rounds * 100 / batched, 1),
        "single_calls_per_s": round(rounds * 100 / single, 1),
    }


def _network(
    transport: str,
    port: int,
    clients: int,
    lookups: int = 100,
    full: bool = True,
    rounds: int = 1,
    watched: tuple[Server, SlowDNS] | None = None,
) -> dict[str, Any]:
    """100 mx_lookups: one after another, shared among ``clients`` processes, and as one multicall; with
    ``watched`` (the gateway and its DNS server), the gateway's CPU and the DNS queries of a multicall too,
    and the same queries through dnspython alone (``alone_*``): what its time goes to beyond the answers' own
    delay."""
    url = f"{transport}://127.0.0.1:{port}"
    names = mx_domains(lookups)
    calls = [("mx_lookup", [name]) for name in names]
    out: dict[str, Any] = {}  # only what was measured: a quick run leaves out the sequential and concurrent parts
    with connect(url) as client:
        if full:
            began = time.perf_counter()
            for name in names:
                client.mx_lookup(name)
            out["sequential_s"] = round(time.perf_counter() - began, 3)
        # One multicall first, not measured: the gateway's multicall threads start with its first multicall.
        # Then the median of ``rounds``, as for throughput (one multicall swings by a tenth of a second).
        failed = sum(isinstance(a, GatewayError) for a in client.multicall(calls))
        seconds = []
        cpu, asked = (watched[0].cpu_seconds(), watched[1].asked) if watched else (0.0, 0)
        ran = watched[0].run_and_wait_ns() if watched else {}
        for _ in range(rounds):
            began = time.perf_counter()
            answers = client.multicall(calls)
            seconds.append(round(time.perf_counter() - began, 3))
            failed += sum(isinstance(a, GatewayError) for a in answers)
        if watched:
            out["multicall_cpu_s"] = round((watched[0].cpu_seconds() - cpu) / rounds, 3)
            kinds = watched[0].thread_kinds()
            out["multicall_cpu_by_thread"] = cpu_by_kind(ran, watched[0].run_and_wait_ns(), kinds, rounds)
            out["multicall_queries"] = round((watched[1].asked - asked) / rounds)
            # Right after them, the floor: the same queries through dnspython alone, no gateway around them.
            out.update({f"alone_{k}": v for k, v in _dns_alone(watched[1], rounds, lookups).items()})
        out["multicall_s"] = statistics.median_low(seconds)
        out["multicall_rounds_s"] = seconds
        out["multicall_errors"] = failed
    if not full:
        return out
    errors: list[int] = []

    def share(part: list[str]) -> None:
        with connect(url) as own:
            for name in part:
                try:
                    own.mx_lookup(name)
                except GatewayError:
                    errors.append(1)

    threads = [threading.Thread(target=share, args=(names[i::clients],)) for i in range(clients)]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out["concurrent_s"] = round(time.perf_counter() - began, 3)
    out["concurrent_errors"] = len(errors)
    return out


def _dns_alone(dns: SlowDNS, rounds: int, lookups: int) -> dict[str, Any]:
    """A multicall's DNS queries through dnspython alone, in a process of its own (:mod:`.dns_alone`), and how
    many queries that was a multicall (the same as the gateway's, or it is not the same work)."""
    command = [sys.executable, "-m", "gateway.bench.dns_alone", dns.address, str(lookups), str(rounds)]
    asked = dns.asked
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)
    out = cast(dict[str, Any], json.loads(done.stdout))
    out["multicall_queries"] = round((dns.asked - asked) / (rounds + 1))  # one unmeasured multicall first
    return out


def _load(gateway: Server, transports: Sequence[str], connections: int, calls_each: int = 20) -> dict[str, Any]:
    """``connections`` connections spread over the transports, all open at once, each making calls."""
    counts = {t: 0 for t in transports}
    errors = {t: 0 for t in transports}
    lock = threading.Lock()
    barrier = threading.Barrier(connections)
    peak = {"threads": 0, "rss_mb": 0.0}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak["threads"] = max(peak["threads"], gateway.threads())
            peak["rss_mb"] = max(peak["rss_mb"], round(gateway.rss_bytes() / MiB, 1))
            time.sleep(0.05)

    def one(transport: str) -> None:
        try:
            with connect(f"{transport}://127.0.0.1:{gateway.ports[transport]}", timeout=60) as client:
                barrier.wait(60)
                for _ in range(calls_each):
                    client.call("resolve", "127.0.0.1")
                    with lock:
                        counts[transport] += 1
        except (GatewayError, OSError, threading.BrokenBarrierError):
            with lock:
                errors[transport] += 1

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    threads = [threading.Thread(target=one, args=(transports[i % len(transports)],)) for i in range(connections)]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - began
    done.set()
    sampler.join()
    return {
        "connections": connections,
        "calls": counts,
        "errors": errors,
        "seconds": round(seconds, 3),
        "peak_threads": peak["threads"],
        "peak_rss_mb": peak["rss_mb"],
        "after": {"threads": gateway.threads(), "rss_mb": round(gateway.rss_bytes() / MiB, 1)},
    }


_HOLDER = """
import resource, socket, sys
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
each = int(sys.argv[1])
held = [socket.create_connection(("127.0.0.1", int(port))) for port in sys.argv[2:] for _ in range(each)]
print(len(held), flush=True)
sys.stdin.read()
"""


def _floor(name: str, workloads: Sequence[str], options: argparse.Namespace) -> dict[str, Any]:
    """Latency and throughput of a raw echo server (``echo`` or ``echo-asyncio``)."""
    echo = start_bare(name)
    try:
        return _compare({"": echo}, {"": functools.partial(start_bare, name)}, name, workloads, options)
    finally:
        echo.stop()


def _memory(gateway: Server, transport: str, port: int, url: str, calls: int = 4) -> dict[str, float]:
    """``calls`` concurrent fetch_url calls of the 10 MiB page: peak RSS over RSS at rest, per call in flight."""
    where = f"{transport}://127.0.0.1:{port}"
    with connect(where, timeout=120) as client:  # the gateway has served this transport before: warm
        client.fetch_url(url, "GET", {}, LARGE_BYTES)
    time.sleep(0.2)
    rest = gateway.peak_rss_bytes(reset=True)  # right after the reset, the peak is the RSS at rest
    errors: list[str] = []

    def fetch() -> None:
        try:
            with connect(where, timeout=120) as client:
                client.fetch_url(url, "GET", {}, LARGE_BYTES)
        except Exception as exc:  # counted, and the figure is not reported as met
            errors.append(str(exc))

    threads = [threading.Thread(target=fetch) for _ in range(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    per_call = (gateway.peak_rss_bytes() - rest) / calls
    return {
        "calls": calls,
        "body_mb": LARGE_BYTES / MiB,
        "per_call_mb": round(per_call / MiB, 1),
        "errors": len(errors),
    }


def _idle(gateway: Server, transports: Sequence[str], connections: int, calls: int) -> dict[str, Any]:
    """``connections`` idle connections held by another process; a call on each transport beside them."""
    count = max(50, calls // 10)
    quiet = {t: _latency(gateway, t, gateway.ports[t], count).p50_us for t in transports}
    before = {"threads": gateway.threads(), "rss_mb": round(gateway.rss_bytes() / MiB, 1)}
    each = connections // len(transports)
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(each), *(str(gateway.ports[t]) for t in transports)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        held = int(holder.stdout.readline() or 0)
        time.sleep(1.0)  # let the gateway accept the backlog
        during = {"threads": gateway.threads(), "rss_mb": round(gateway.rss_bytes() / MiB, 1)}
        loaded = {t: _latency(gateway, t, gateway.ports[t], count).p50_us for t in transports}
    finally:
        if holder.stdin is not None:
            holder.stdin.close()
        holder.wait(60)
    time.sleep(1.0)
    return {
        "connections": held,
        "before": before,
        "held": during,
        "after": {"threads": gateway.threads(), "rss_mb": round(gateway.rss_bytes() / MiB, 1)},
        "p50_us": {t: {"quiet": round(quiet[t], 1), "idle": round(loaded[t], 1)} for t in transports},
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The benchmark's options."""
    parser.add_argument(
        "--quick", action="store_true", help="a short run (under a minute): latency, throughput, network"
    )
    parser.add_argument("--calls", type=int, default=2000, help="sequential calls for latency (default 2000)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent client processes (default 8)")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of each throughput run (default 5)")
    parser.add_argument(
        "--rounds",
        type=int,
        default=5,
        help="rounds of latency and throughput, the gateway and the bare library in turn, each after the first "
        "on fresh server processes (default 5)",
    )
    parser.add_argument("--transports", default=",".join(TRANSPORTS), help="comma-separated (default: all)")
    parser.add_argument("--workloads", default=",".join(WORKLOADS), help=f"comma-separated: {', '.join(WORKLOADS)}")
    parser.add_argument(
        "--profile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="profile the servers during the throughput runs with py-spy (default: on when it is installed)",
    )
    parser.add_argument(
        "--out",
        metavar="DIR",
        help="write report.md, chart.png and results.json there (the committed run: --out bench/results);"
        " without it the run only prints its table",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark, print its table and (with --out) write the report."""
    parser = argparse.ArgumentParser(prog="netops bench", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    args = list(sys.argv[1:] if argv is None else argv)
    options = parser.parse_args(args)
    options.command_line = "netops bench " + shlex.join(args)
    return run_and_report(options)


def run_and_report(options: argparse.Namespace) -> int:
    """Normalise options, run, print the table, write the reports (with --out)."""
    options.transports = [t for t in str(options.transports).split(",") if t]
    options.workloads = [w for w in str(options.workloads).split(",") if w]
    unknown = [t for t in options.transports if t not in TRANSPORTS] + [
        w for w in options.workloads if w not in WORKLOADS
    ]
    if unknown:
        print(f"netops bench: unknown transport or workload {unknown[0]!r}", file=sys.stderr)
        return 64
    if options.rounds < 1 or options.calls < 1 or options.clients < 1 or options.duration <= 0:
        print("netops bench: --rounds, --calls, --clients and --duration must be above 0", file=sys.stderr)
        return 64
    if options.quick:
        options.calls, options.clients, options.duration, options.rounds = (
            min(options.calls, 300),
            min(options.clients, 2),
            min(options.duration, 1.0),
            1,
        )
        options.workloads = [w for w in options.workloads if w in QUICK_WORKLOADS]
    if options.profile is None:
        options.profile = profile.available() and not options.quick
    elif options.profile and not profile.available():
        print("netops bench: --profile needs py-spy (pip install .[bench])", file=sys.stderr)
        return 64
    result = run(options)
    from gateway.bench.report import table

    print(table(result))
    if options.out:  # only when asked: a narrower run never lands on the committed report by default
        written = write_reports(result, Path(options.out))
        print("wrote " + ", ".join(str(p) for p in written))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
