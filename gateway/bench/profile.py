"""Where a server's time goes: py-spy samples it from outside while a workload runs (``pip install .[bench]``).

py-spy reads the process's stacks without stopping it or running code in it,
so the figures measured at the same time stay honest.  It samples only the
thread holding the GIL (``--gil``): the Python work, and the system calls
that run rather than wait (a send carrying an answer counts for the function
that made it: measured, py-spy counts a thread busy in the kernel), not the
threads waiting in a system call for a client (a blocked ``recv`` would
otherwise look busy).
The summary is what a report needs to explain a missed target: the share of
samples each function was running (self) and was on the stack (total).
"""

from __future__ import annotations

import collections
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Profile", "available", "record"]

# Leaf frames where a thread waits rather than works (py-spy shows the Python frame that made the blocking
# C call): the loop's epoll, a worker's empty queue, a condition or lock, a pool thread between tasks.
_IDLE = re.compile(
    r"^(\w+\.)?(select|poll|wait|_wait_for_tstate_lock|accept|sleep) \("
    r"|^Workers\._run \(gateway/net/workers\.py\)|^_worker \(concurrent/futures/thread\.py\)"
)
_LINE = re.compile(r":\d+\)")


def _py_spy() -> str | None:
    beside = Path(sys.executable).with_name("py-spy")  # installed into this environment, not on PATH
    return str(beside) if beside.exists() else shutil.which("py-spy")


def available() -> bool:
    """Whether py-spy is installed."""
    return _py_spy() is not None


@dataclass
class Profile:
    """A py-spy recording of one process; :meth:`summary` reads it once the recording has ended."""

    proc: subprocess.Popen
    path: Path

    def summary(self, top: int = 12) -> dict[str, object]:
        """Samples, and the top functions by self and by total share of the working samples."""
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        own: collections.Counter[str] = collections.Counter()
        total: collections.Counter[str] = collections.Counter()
        samples = 0
        try:
            lines = self.path.read_text().splitlines()
        except OSError:
            lines = []
        for line in lines:
            stack, _, count = line.rpartition(" ")
            frames = [_LINE.sub(")", f) for f in stack.split(";")[1:]]  # the first is the thread
            if not frames or _IDLE.match(frames[-1]):
                continue
            n = int(count)
            samples += n
            own[frames[-1]] += n
            for frame in set(frames):
                total[frame] += n
        self.path.unlink(missing_ok=True)

        def shares(counter: collections.Counter[str]) -> list[tuple[str, float]]:
            return [(frame, round(100 * n / samples, 1)) for frame, n in counter.most_common(top)] if samples else []

        groups: collections.Counter[str] = collections.Counter()
        for frame, n in own.items():
            groups[_group(frame)] += n
        return {
            "samples": samples,
            "self": shares(own),
            "total": shares(total),
            "groups": {group: round(100 * n / samples, 1) for group, n in groups.most_common()} if samples else {},
        }


# Where a frame's own time belongs, by its file: the layers a call passes through.
GROUPS = (
    ("event loop and connection layer", ("asyncio/", "uvloop/", "selectors.py", "gateway/net/", "socket.py")),
    ("codec (ours)", ("gateway/transports/",)),
    ("core: authorisation, limits, metrics", ("gateway/core", "gateway/limits", "gateway/metrics", "gateway/registry",
                                               "gateway/observe", "gateway/accesslog", "prometheus_client/")),
)  # fmt: skip


def _group(frame: str) -> str:
    where = frame[frame.rfind("(") + 1 :]
    return next((name for name, marks in GROUPS if any(m in where for m in marks)), "the library and the rest")


def record(pid: int, seconds: float, rate: int = 250) -> Profile | None:
    """Start sampling ``pid`` for ``seconds`` (None when py-spy is missing or may not attach)."""
    py_spy = _py_spy()
    if py_spy is None:
        return None
    path = Path(tempfile.mkstemp(prefix="netops-profile-", suffix=".txt")[1])
    command = [py_spy, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))), "--rate", str(rate)]
    command += ["--format", "raw", "--output", str(path), "--threads", "--nonblocking", "--gil"]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return Profile(proc, path)
