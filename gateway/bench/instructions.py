"""Instructions per call, counted by valgrind's callgrind: a figure this machine's noise cannot move.

CPU time per call, on a 2-core machine crowded by client processes, moves
by a quarter from one round to the next.  An instruction count does not:
the same server, client and calls give the same count to within about one
percent, on a busy machine or an idle one (a little more for a server that
also wakes on a timer, as the tcp echo's accept loop does).  Each server
runs under callgrind with instrumentation off, so it starts and warms up at
nearly native speed; then ``callgrind_control`` switches it on and zeroes
the counts, one client makes N sequential calls, and the counts are dumped:
the sum over every thread of the server, divided by N.

It counts the server's user space only.  The kernel's share (system calls,
waking a thread) is not in it, and that is where a server with a thread per
connection pays and an event loop does not: read it beside cpu/call, not
instead of it.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from gateway.bench.engine import Server, call_factory, start_bare, start_gateway

__all__ = ["available", "count", "workload"]

CALLS = 300  # instrumented calls per server: a few seconds each under callgrind, the count steady to ~1 %
WARM_UP = 200  # calls before counting: connections made, caches and lazy imports filled


def available() -> bool:
    """valgrind and its callgrind_control are installed."""
    return shutil.which("valgrind") is not None and shutil.which("callgrind_control") is not None


def _control(pid: int, *flags: str) -> None:
    subprocess.run(["callgrind_control", *flags, str(pid)], check=True, capture_output=True, timeout=120)


def count(start: Callable[..., Server], transport: str, calls: int = CALLS) -> float:
    """Instructions per ``system.listMethods`` call of the server ``start(under=...)`` starts (``under``: the
    valgrind command to run it with), summed over its threads."""
    with tempfile.TemporaryDirectory(prefix="netops-callgrind-") as scratch:
        out = Path(scratch) / "callgrind"
        server = start(under=["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}.%p"])
        try:
            call, close = call_factory(transport, server.ports[transport])
            try:
                for _ in range(WARM_UP):
                    call()
                pid = server.proc.pid  # valgrind runs the server in its own process: the pid is the server's
                _control(pid, "--instr=on")
                _control(pid, "--zero")
                for _ in range(calls):
                    call()
                _control(pid, "--dump")
            finally:
                close()
            return _totals(Path(f"{out}.{pid}.1")) / calls
        finally:
            server.stop()


def _totals(dump: Path) -> int:
    """The instructions a callgrind dump counted (its ``totals:`` line)."""
    for line in dump.read_text().splitlines():
        if line.startswith("totals:"):
            return int(line.split()[1])
    raise ValueError(f"{dump} has no totals line")


def workload(transports: Sequence[str], nameserver: str, bare: Sequence[str]) -> dict[str, Any]:
    """Per transport, the gateway (serving that transport alone) and its bare library (where ``bare`` has
    one); and the two echo floors."""
    out: dict[str, Any] = {"calls": CALLS, "transports": {}}
    for transport in transports:
        row = out["transports"][transport] = {
            "gateway": round(count(functools.partial(start_gateway, nameserver, transports=[transport]), transport))
        }
        if transport in bare:
            row["bare"] = round(count(functools.partial(start_bare, transport), transport))
    for name, key in (("echo", "echo"), ("echo-asyncio", "echo_asyncio")):
        out[key] = round(count(functools.partial(start_bare, name), name))
    return out
