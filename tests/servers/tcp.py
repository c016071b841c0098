"""A bare TCP listener for tests that speak bytes themselves: each connection handed to a function."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable


def accept_each(handle: Callable[[socket.socket], None]) -> socket.socket:
    """A listener on a free port of 127.0.0.1 handing each connection to ``handle`` on a thread of its own,
    until it is closed."""
    listener = socket.create_server(("127.0.0.1", 0))

    def accept() -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=handle, args=(client,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return listener
