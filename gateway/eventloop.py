"""The event loop the gateway runs its I/O on: libuv's where it builds, asyncio's own elsewhere; that loop on a
thread of its own, for work that threads hand over and wait for (DNS queries, gRPC's server); and the names the
gateway's threads show outside Python."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

try:  # libuv's loop: a call's trip through the loop counts ~7K instructions on it, ~27K on asyncio's own
    from uvloop import new_event_loop
except ImportError:  # a platform uvloop does not build on
    from asyncio import new_event_loop  # type: ignore[assignment]

__all__ = ["DNS_LOOP", "LoopThread", "name_native_thread", "new_event_loop"]

T = TypeVar("T")


def name_native_thread() -> None:
    """Give the calling thread's Python name to its OS thread, where the OS has one to give (Linux).

    Python 3.11 leaves every thread named after the executable, so ``top -H``, ``ps -L``, perf and the
    benchmark's CPU by thread could not tell the DNS queries' loop from a multicall's threads."""
    thread = threading.current_thread()
    try:  # the kernel keeps at most 15 bytes
        with open(f"/proc/self/task/{thread.native_id}/comm", "wb") as comm:
            comm.write(thread.name.encode()[:15])
    except OSError:
        pass  # no /proc (not Linux): the names stay Python's own


class LoopThread:
    """An event loop running on a daemon thread named ``name``, started by the first coroutine handed to it
    (again in a forked child, which has the loop but not its thread)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pid = 0

    def submit(self, coroutine: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Run ``coroutine`` on the loop; the calling thread waits on the future it returns, if at all."""
        loop = self._loop
        if loop is None or self._pid != os.getpid():
            loop = self._start()
        return asyncio.run_coroutine_threadsafe(coroutine, loop)

    def wait(self, coroutine: Coroutine[Any, Any, T], timeout: float) -> T:
        """Run ``coroutine`` on the loop and wait for its result; after ``timeout`` seconds, cancel it and raise
        ``TimeoutError``."""
        future = self.submit(coroutine)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise

    def _start(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._pid != os.getpid():
                loop = new_event_loop()
                self._thread = threading.Thread(target=_run_forever, args=(loop,), name=self.name, daemon=True)
                self._thread.start()
                self._loop, self._pid = loop, os.getpid()
            return self._loop

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the loop and end its thread (a later coroutine starts them again)."""
        with self._lock:
            loop, thread, self._loop, self._thread = self._loop, self._thread, None, None
        if loop is None or thread is None or self._pid != os.getpid():
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        if not thread.is_alive():
            loop.close()


# The DNS operations and every DNS query of the process run on this loop. A query is mostly waiting: made on the
# calling threads (and A's AAAA on a pool), a multicall of 100 mx_lookups had 200 threads contend for the GIL at
# each of a query's dozen system calls, 2.4x the CPU per query of the same queries on one loop when measured.
DNS_LOOP = LoopThread("dns")


def _run_forever(loop: asyncio.AbstractEventLoop) -> None:
    name_native_thread()
    loop.run_forever()
