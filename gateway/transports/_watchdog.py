"""A deadline for reading each request, whatever pace the client keeps.

A socket timeout bounds each ``recv``, not a request: a client sending one
byte every few seconds keeps a thread forever (slowloris).  Transports arm
the watchdog when they start waiting for a request and disarm it once the
request has been read; a connection still armed at its deadline is shut
down, which ends the blocked read at once.  One thread serves the process.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Any

__all__ = ["WATCHDOG", "Watchdog"]

log = logging.getLogger("gateway.watchdog")

CHECK_INTERVAL = 0.25  # seconds between scans: how late past its deadline a connection may be dropped


class Watchdog:
    """Shuts down connections whose armed deadline has passed."""

    def __init__(self, interval: float = CHECK_INTERVAL) -> None:
        self.interval = interval
        self._deadlines: dict[int, tuple[float, Any]] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def arm(self, sock: Any, seconds: float) -> None:
        """Drop ``sock`` unless :meth:`disarm` is called within ``seconds``."""
        with self._lock:
            self._deadlines[id(sock)] = (time.monotonic() + seconds, sock)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="watchdog", daemon=True)
                self._thread.start()

    def disarm(self, sock: Any) -> None:
        """The request on ``sock`` has arrived in full."""
        with self._lock:
            self._deadlines.pop(id(sock), None)

    def _run(self) -> None:
        while True:
            time.sleep(self.interval)
            now = time.monotonic()
            with self._lock:
                expired = [(key, sock) for key, (deadline, sock) in self._deadlines.items() if deadline <= now]
                for key, _ in expired:
                    del self._deadlines[key]
            for _, sock in expired:
                try:
                    sock.shutdown(socket.SHUT_RDWR)  # the reader sees end of file; its owner closes the socket
                except (OSError, ValueError):
                    pass


WATCHDOG = Watchdog()
