"""A fixed pool of threads that run complete requests, started once: its size never follows connections."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

from gateway.eventloop import name_native_thread

__all__ = ["Workers"]

log = logging.getLogger("gateway.net")

_STOP = object()


class Workers:
    """``size`` threads taking tasks from one queue; every thread is started by :meth:`start`, none later.

    Starting them all at once means a thread limit reached later (``RLIMIT_NPROC``)
    can cost a multicall element or a DNS query, never the pool that serves calls.
    """

    def __init__(self, size: int, name: str = "call") -> None:
        self.size = size
        self.name = name
        self._tasks: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Start every worker thread (RuntimeError if the system refuses one)."""
        for i in range(self.size):
            thread = threading.Thread(target=self._run, name=f"{self.name}-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def submit(self, task: Callable[[], None]) -> None:
        """Queue ``task``; it runs on the first free worker."""
        self._tasks.put(task)

    def alive(self) -> bool:
        """True while every worker thread runs."""
        return bool(self._threads) and all(t.is_alive() for t in self._threads)

    def stop(self, timeout: float = 5.0) -> None:
        """Let the workers finish what they hold, then end them."""
        for _ in self._threads:
            self._tasks.put(_STOP)
        deadline = time.monotonic() + timeout  # one wait for all of them, not one per thread
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._threads = []

    def _run(self) -> None:
        name_native_thread()
        while True:
            task = self._tasks.get()
            if task is _STOP:
                return
            try:
                task()  # type: ignore[operator]
            except BaseException:  # a task reports its own errors; this keeps the worker alive whatever happens
                log.exception("a worker task failed")
