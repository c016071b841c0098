"""The measurements: servers in their own processes, the same clients against each, one run.

Every workload talks to a server in a separate process, through the same
client (:mod:`gateway.client`, or a raw socket for the echo floor). Besides
wall-clock figures it reads the server's own CPU time from ``/proc``, which
on a 2-core machine crowded by client processes is the steadier figure.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import queue
import re
import socket
import statistics
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.client import connect
from gateway.config import TRANSPORTS
from gateway.errors import GatewayError

__all__ = [
    "Sample",
    "Scheduling",
    "Server",
    "Stats",
    "call_factory",
    "latency",
    "median_latency_round",
    "median_round",
    "start_bare",
    "start_gateway",
    "throughput",
]

TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def cpu_by_kind(
    before: Mapping[str, tuple[int, int]], after: Mapping[str, tuple[int, int]], kinds: Mapping[str, str], per: int
) -> dict[str, dict[str, float]]:
    """Between two :meth:`Server.run_and_wait_ns`, the CPU seconds each kind of thread ran (divided by
    ``per``, the rounds) and how many threads of the kind ran, the busiest kind first."""
    found: dict[str, dict[str, float]] = {}
    for tid, (ran, _) in after.items():
        seconds = (ran - before.get(tid, (0, 0))[0]) / 1e9 / per  # a thread started meanwhile ran from 0
        if seconds > 0:
            kind = found.setdefault(kinds.get(tid, "?"), {"cpu_s": 0.0, "threads": 0})
            kind["cpu_s"] += seconds
            kind["threads"] += 1
    return {
        name: {"cpu_s": round(kind["cpu_s"], 3), "threads": kind["threads"]}
        for name, kind in sorted(found.items(), key=lambda item: -item[1]["cpu_s"])
        if kind["cpu_s"] >= 0.0005
    }


def free_ports(count: int) -> list[int]:
    """Ports free on 127.0.0.1 right now."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    if int(fh.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except (OSError, ValueError, IndexError):
                continue
    return found


@dataclass
class Server:
    """A server process (and its worker children) under measurement."""

    name: str
    proc: subprocess.Popen
    ports: dict[str, int]

    def pids(self) -> list[int]:
        """The process and its children (workers)."""
        return [self.proc.pid, *_children(self.proc.pid)]

    def _stat(self, pid: int) -> list[str]:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()

    def cpu_seconds(self) -> float:
        """User plus system CPU time of the whole process tree."""
        total = 0
        for pid in self.pids():
            try:
                fields = self._stat(pid)
                total += int(fields[11]) + int(fields[12])
            except (OSError, IndexError):
                continue
        return total / TICKS

    def rss_bytes(self) -> int:
        """Resident memory of the whole process tree."""
        total = 0
        for pid in self.pids():
            try:
                total += int(self._stat(pid)[21]) * PAGE
            except (OSError, IndexError):
                continue
        return total

    def peak_rss_bytes(self, reset: bool = False) -> int:
        """The process's peak resident memory (VmHWM); ``reset`` starts the peak again from now."""
        if reset:
            Path(f"/proc/{self.proc.pid}/clear_refs").write_text("5")
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(status.split("VmHWM:", 1)[1].split()[0]) * 1024

    def threads(self) -> int:
        """Threads of the whole process tree."""
        total = 0
        for pid in self.pids():
            try:
                total += int(self._stat(pid)[17])
            except (OSError, IndexError):
                continue
        return total

    def run_and_wait_ns(self) -> dict[str, tuple[int, int]]:
        """Per thread of the process tree: nanoseconds it has run on a core and waited for one while runnable
        (``/proc/<pid>/task/<tid>/schedstat``; empty where the kernel keeps no such account)."""
        found = {}
        for pid in self.pids():
            for tid in _tasks(pid):
                try:
                    with open(f"/proc/{pid}/task/{tid}/schedstat") as fh:
                        ran, waited = fh.read().split()[:2]
                except (OSError, ValueError):
                    continue
                found[f"{pid}/{tid}"] = (int(ran), int(waited))
        return found

    def thread_kinds(self) -> dict[str, str]:
        """Per thread of the process tree (keyed as by :meth:`run_and_wait_ns`), its name without the number
        that tells a pool's threads apart: ``multicall_7`` is a ``multicall`` thread (the gateway gives its
        threads' names to the OS: :func:`gateway.eventloop.name_native_thread`); a process's first thread,
        named after its executable, is ``main``."""
        found = {}
        for pid in self.pids():
            for tid in _tasks(pid):
                try:
                    name = Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()
                except OSError:
                    continue
                found[f"{pid}/{tid}"] = "main" if tid == str(pid) else re.sub(r"[-_]\d+$", "", name)
        return found

    def stop(self) -> None:
        """Terminate and reap."""
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


def _wait_listening(ports: list[int], proc: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    for port in ports:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with status {proc.returncode}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"nothing listens on port {port}") from None
                time.sleep(0.05)


def spawn_server(command: Sequence[str]) -> subprocess.Popen:
    """Start a server in a session of its own, as a daemon runs (the stop is ours: see :meth:`Server.stop`).

    With the kernel's autogroup on (``/proc/sys/kernel/sched_autogroup_enabled``, the Linux default), a
    session is a scheduling group: the cores are then shared between the server and the clients' session,
    as between two services each in its own cgroup. In one session they are shared thread by thread, and a
    server with a thread per connection (8 clients, 8 threads) got eight shares where an event loop got one:
    calls/s measured the thread count, not the library."""
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def autogroup() -> bool | None:
    """Whether the kernel schedules sessions as groups (None where it does not say)."""
    try:
        with open("/proc/sys/kernel/sched_autogroup_enabled") as fh:
            return fh.read().strip() == "1"
    except OSError:
        return None


CLIENT_READY = 60.0  # seconds a throughput client process may take to start and connect
STARTING_UNDER = 180.0  # seconds a server started under valgrind may take to listen (~4 s seen, alone)
IDLE_CONNECTIONS = 10_000  # what the idle workload holds open, spread over the transports


def start_gateway(
    nameserver: str,
    workers: int = 1,
    transports: Sequence[str] = TRANSPORTS,
    extra: Sequence[str] = (),
    under: Sequence[str] = (),
) -> Server:
    """``python -m gateway`` on free ports, the access log off (the bare libraries keep none either);
    ``under``: a command that runs it (valgrind), which gives it longer to start."""
    ports = dict(zip(transports, free_ports(len(transports)), strict=True))
    flags = [f"--{name}-port={port}" for name, port in ports.items()]
    command = [
        *under, sys.executable, "-m", "gateway", *flags, f"--transports={','.join(transports)}",
        f"--nameserver={nameserver}", "--allow-target=127.0.0.0/8", "--access-log=false", f"--workers={workers}",
        # the idle workload holds 10,000 connections from one address, and the other workloads call beside them
        f"--max-connections={IDLE_CONNECTIONS + 1000}", "--max-connections-per-client=0", *extra,
    ]  # fmt: skip
    proc = spawn_server(command)
    _wait_listening(list(ports.values()), proc, STARTING_UNDER if under else 30.0)
    return Server(f"gateway x{workers}" if workers > 1 else "gateway", proc, ports)


def start_bare(transport: str, under: Sequence[str] = (), server: str = "") -> Server:
    """One bare library server (or the raw echo) in its own process; ``under``: as for :func:`start_gateway`;
    ``server``: another of :mod:`gateway.bench.bare`'s servers of ``transport`` (``thrift-asyncio``)."""
    (port,) = free_ports(1)
    name = server or transport
    proc = spawn_server([*under, sys.executable, "-m", "gateway.bench.bare", name, str(port)])
    _wait_listening([port], proc, STARTING_UNDER if under else 30.0)
    return Server(f"bare {name}", proc, {transport: port})


def call_factory(
    transport: str, port: int, method: str = "system.listMethods", args: tuple = ()
) -> tuple[Callable[[], Any], Callable[[], None]]:
    """A zero-argument call on one persistent connection, and its closer."""
    if transport.startswith("echo"):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        reader = sock.makefile("rb")
        payload = json.dumps([method, list(args)]).encode()
        frame = struct.pack("!I", len(payload)) + payload

        def echo() -> Any:
            sock.sendall(frame)
            size = struct.unpack("!I", reader.read(4))[0]
            return reader.read(size)

        return echo, sock.close
    client = connect(f"{transport}://127.0.0.1:{port}", timeout=30)
    return (lambda: client.call(method, *args)), client.close


@dataclass
class Scheduling:
    """How a server's threads spent part of a throughput run, by the scheduler's own account: what decides
    calls/s when the server and its clients share the cores."""

    running: float  # the server's threads' time on a core, summed, per second of the run: cores used
    waiting: float  # their time runnable but waiting for a core, summed, per second: threads kept waiting
    busiest_waiting: float  # the share of the run its busiest thread (the most time on a core) spent waiting
    idle: float  # the share of the machine's CPU time that no process used meanwhile

    @classmethod
    def between(cls, before: Sample, after: Sample) -> Scheduling | None:
        """The scheduling from one sample to the next (None without the kernel's per-thread account)."""
        seconds = after.when - before.when
        spans = [
            (ran - before.threads[tid][0], waited - before.threads[tid][1])
            for tid, (ran, waited) in after.threads.items()
            if tid in before.threads  # a thread alive through the whole window
        ]
        if not spans or seconds <= 0:
            return None
        busiest = max(spans)
        idle, total = after.idle - before.idle, after.total - before.total
        return cls(
            running=round(sum(ran for ran, _ in spans) / 1e9 / seconds, 3),
            waiting=round(sum(waited for _, waited in spans) / 1e9 / seconds, 3),
            busiest_waiting=round(busiest[1] / 1e9 / seconds, 3),
            idle=round(idle / total, 3) if total else 0.0,
        )


@dataclass
class Sample:
    """The server's threads' run and wait times and the machine's idle ticks, at one moment."""

    when: float
    threads: dict[str, tuple[int, int]]
    idle: int  # the machine's idle and iowait ticks (/proc/stat)
    total: int

    @classmethod
    def take(cls, server: Server) -> Sample:
        """A sample now."""
        with open("/proc/stat") as fh:
            ticks = [int(n) for n in fh.readline().split()[1:9]]  # user … steal; guest time is inside user
        return cls(time.perf_counter(), server.run_and_wait_ns(), ticks[3] + ticks[4], sum(ticks))


@dataclass
class Stats:
    """One measurement: calls, errors, time, and the server's CPU during it."""

    calls: int = 0
    errors: int = 0
    seconds: float = 0.0
    server_cpu: float = 0.0
    samples_us: list[float] = field(default_factory=list)
    scheduling: Scheduling | None = None

    @property
    def rate(self) -> float:
        """Calls per second."""
        return self.calls / self.seconds if self.seconds else 0.0

    @property
    def cpu_per_call_us(self) -> float:
        """Server CPU microseconds per call."""
        return self.server_cpu / self.calls * 1e6 if self.calls else 0.0

    @property
    def p50_us(self) -> float:
        """Median latency."""
        return statistics.median(self.samples_us) if self.samples_us else 0.0

    @property
    def p99_us(self) -> float:
        """99th-percentile latency."""
        if len(self.samples_us) < 2:
            return self.p50_us
        return statistics.quantiles(self.samples_us, n=100)[98]


def median_latency_round(runs: Sequence[Stats]) -> Stats:
    """The round of sequential calls with the median p50 (its samples with it), the errors of every round; of
    two middle rounds the slower, as :func:`median_round` takes the slower.

    Not every round's samples pooled: each round runs on its own processes, and one slow process moved a
    pooled p50 (bare thriftpy2 answered at 113 us in one round, 34 and 33 us in the other two: pooled, 36 us),
    where the median round stays at the speed two rounds out of three had (34 us)."""
    middle = sorted(runs, key=lambda r: r.p50_us, reverse=True)[(len(runs) - 1) // 2]
    return dataclasses.replace(middle, errors=sum(r.errors for r in runs))


def median_round(runs: Sequence[Stats]) -> Stats:
    """The throughput round with the median calls/s (its CPU per call with it), the errors of every round."""
    middle = sorted(runs, key=lambda r: r.rate)[(len(runs) - 1) // 2]
    return dataclasses.replace(middle, errors=sum(r.errors for r in runs))


@contextmanager
def one_core(*servers: Server | None) -> Iterator[None]:
    """Run this process and the servers' on one core for the block, then give them back every core they had.

    Sequential calls wake the other side once per call: across cores a wake-up costs 30-90 us on a VM,
    varying with where the scheduler happens to place the two processes, which swamps the few tens of
    microseconds a transport spends; on one core it is a context switch, the same in every run.

    Threads are pinned one by one, and one that ends meanwhile (a pool thread retiring, a request thread of
    a fixture) is skipped: giving up on the whole pinning for it measured the block across cores, at about
    twice the p50, in one run out of three or so."""
    pids = [os.getpid(), *(pid for server in servers if server for pid in server.pids())]
    original = os.sched_getaffinity(0)
    core = {max(original)}
    allowed = set(original)
    try:
        for tid in [int(tid) for pid in pids for tid in _tasks(pid)]:
            try:
                allowed |= os.sched_getaffinity(tid)
                os.sched_setaffinity(tid, core)
            except ProcessLookupError:
                continue  # the thread has ended
    except OSError:
        pass  # pinning is not allowed here: measure unpinned (what was pinned is given back below)
    try:
        yield
    finally:  # every thread back on every core it had, threads started meanwhile too
        for tid in [int(tid) for pid in pids for tid in _tasks(pid)]:
            try:
                os.sched_setaffinity(tid, allowed)
            except OSError:
                pass


def _tasks(pid: int) -> list[str]:
    try:
        return os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []


def latency(server: Server | None, call: Callable[[], Any], count: int, warmup: int = 20) -> Stats:
    """``count`` sequential calls on one connection, client and server on one core: per-call samples."""
    with one_core(server):
        for _ in range(warmup):
            call()
        stats = Stats()
        _sequential(stats, server, call, count)
        return stats


BLOCK = 50  # sequential calls to one side before the other's turn


def latencies(
    sides: Mapping[str, tuple[Server | None, Callable[[], Any]]], count: int, warmup: int = 20
) -> dict[str, Stats]:
    """``count`` sequential calls to each side, every process on one core, the sides taking turns every
    :data:`BLOCK` calls (who goes first alternating): each side's Stats.

    Turns of a few milliseconds put both sides in the same spells of a noisy machine; turns of a round each
    (seconds) let one spell land on one side, and moved a p50 ratio from 0.96x to 1.91x between two runs.
    """
    names = list(sides)
    with one_core(*(server for server, _ in sides.values())):
        for _, call in sides.values():
            for _ in range(warmup):
                call()
        stats = {name: Stats() for name in names}
        for turn, done in enumerate(range(0, count, BLOCK)):
            for name in names if turn % 2 == 0 else reversed(names):
                server, call = sides[name]
                _sequential(stats[name], server, call, min(BLOCK, count - done))
    return stats


def _sequential(stats: Stats, server: Server | None, call: Callable[[], Any], count: int) -> None:
    """Add ``count`` sequential calls to ``stats``: each call's time, and the server's CPU around them."""
    cpu = server.cpu_seconds() if server else 0.0
    began = time.perf_counter()
    samples = stats.samples_us
    for _ in range(count):
        start = time.perf_counter()
        try:
            call()
            stats.calls += 1
        except (GatewayError, OSError):
            stats.errors += 1
        samples.append((time.perf_counter() - start) * 1e6)
    stats.seconds += time.perf_counter() - began
    if server:
        stats.server_cpu += server.cpu_seconds() - cpu


def _client_process(
    transport: str, port: int, method: str, args: tuple, events: tuple[Any, Any, Any], duration: float, out: Any
) -> None:
    ready, start, done = events
    try:
        call, close = call_factory(transport, port, method, args)
    except (GatewayError, OSError):
        ready.put(False)
        out.put((0, 1))
        return
    ready.put(True)
    calls = errors = 0
    start.wait()
    end = time.monotonic() + duration
    while time.monotonic() < end:
        try:
            call()
            calls += 1
        except (GatewayError, OSError):
            errors += 1
    out.put((calls, errors))
    # Connected until the run's last sample is taken: a server thread per connection ends with it, and one
    # that ended before a late sample (a loaded machine) would be left out of the scheduling.
    done.wait(CLIENT_READY)
    close()


def throughput(
    server: Server | None,
    transport: str,
    port: int,
    clients: int,
    duration: float,
    method: str = "system.listMethods",
    args: tuple = (),
    on_start: Callable[[], Any] | None = None,
) -> Stats:
    """``clients`` processes, each with its own connection, calling for ``duration`` seconds
    (``on_start`` runs as the clock starts: the profiler starts there); the server's scheduling is sampled
    over the middle nine tenths, where every client is calling and every thread serving one is alive.

    The clock starts once every client has connected (or failed to), not after a fixed head start (1.5 s and
    a bit per client, mostly waited for nothing); the clients stay connected until the last sample is taken."""
    context = multiprocessing.get_context("spawn")
    results, ready, start, done = context.Queue(), context.Queue(), context.Event(), context.Event()
    events = (ready, start, done)
    procs = [
        context.Process(target=_client_process, args=(transport, port, method, args, events, duration, results))
        for _ in range(clients)
    ]
    for proc in procs:
        proc.start()
    try:
        for _ in procs:
            ready.get(timeout=CLIENT_READY)
    except queue.Empty:
        done.set()
        raise RuntimeError(f"a throughput client did not start within {CLIENT_READY:.0f} s") from None
    finally:
        start.set()  # no client is left waiting
    if on_start is not None:
        on_start()
    stats = Stats()
    cpu = server.cpu_seconds() if server else 0.0
    began = time.perf_counter()
    if server is None:
        time.sleep(duration)
    else:
        time.sleep(duration * 0.05)
        before = Sample.take(server)
        time.sleep(duration * 0.9)
        stats.scheduling = Scheduling.between(before, Sample.take(server))
        time.sleep(max(0.0, duration - (time.perf_counter() - began)))
    stats.server_cpu = (server.cpu_seconds() - cpu) if server else 0.0
    done.set()
    for _ in procs:
        calls, errors = results.get(timeout=duration + 60)
        stats.calls += calls
        stats.errors += errors
    for proc in procs:
        proc.join(30)
    stats.seconds = duration
    return stats
