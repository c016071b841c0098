"""What a new connection goes through before its protocol starts: TLS, then (RPyC, Thrift) a token line.

Both run on the connection's own thread with ``handshake_timeout``, never on
an accept loop: a client that connects and says nothing must not hold up
anyone else's handshake (TRANSPORTS.md's trap in four of the five libraries).

RPyC and Thrift have no header of their own for a credential, so a client
may send one line before its first message::

    NETOPS-TOKEN <token>\\n

Neither protocol can begin with those bytes (an RPyC frame would claim
1.3 GB, a Thrift message starts with 0x80 or 0x82), so a client that sends
no line is served as before: unauthenticated.
"""

from __future__ import annotations

import socket
import ssl
from typing import Any

from gateway.config import Settings
from gateway.transports._watchdog import WATCHDOG

__all__ = ["TOKEN_PREFIX", "Rewindable", "open_connection", "server_context", "token_line"]

TOKEN_PREFIX = b"NETOPS-TOKEN "
MAX_TOKEN_LINE = 512  # prefix, a token of up to 256 characters and slack; a longer line is not a token line


def server_context(settings: Settings) -> ssl.SSLContext | None:
    """The server TLS context of every endpoint, or None when TLS is off; ValueError names a bad file."""
    if not settings.tls_cert:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(settings.tls_cert, settings.tls_key)
        if settings.tls_client_ca:
            context.load_verify_locations(settings.tls_client_ca)
            context.verify_mode = ssl.CERT_REQUIRED
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"cannot load the TLS certificate, key or client CA: {exc}") from None
    return context


def token_line(token: str) -> bytes:
    """The line a client sends first to present ``token`` (RPyC, Thrift)."""
    return TOKEN_PREFIX + token.encode() + b"\n"


class Rewindable:
    """A connected socket (plain or TLS) that can look ahead without consuming: bytes read early are served first.

    Everything but ``recv`` is the wrapped socket's own; ``has_buffered`` tells
    a poll loop that data is waiting although the descriptor is not readable.
    """

    def __init__(self, sock: Any) -> None:
        self.sock = sock
        self._buffer = b""

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)

    def has_buffered(self) -> bool:
        """True when bytes read ahead are waiting."""
        return bool(self._buffer)

    def fill(self) -> bytes:
        """Read once more from the socket into the buffer; the buffer (EOFError when the peer closed)."""
        chunk = self.sock.recv(4096)
        if not chunk:
            raise EOFError("connection closed")
        self._buffer += chunk
        return self._buffer

    def recv(self, size: int, flags: int = 0) -> bytes:
        """Like socket.recv; MSG_PEEK and MSG_WAITALL work on TLS sockets too."""
        if flags & (socket.MSG_PEEK | socket.MSG_WAITALL):
            try:
                while len(self._buffer) < size:
                    self.fill()
            except EOFError:
                pass
            data = self._buffer[:size]
            if not flags & socket.MSG_PEEK:
                self._buffer = self._buffer[size:]
            return data
        if self._buffer:
            data, self._buffer = self._buffer[:size], self._buffer[size:]
            return data
        return self.sock.recv(size)

    def skip(self, size: int) -> None:
        """Drop ``size`` read-ahead bytes."""
        self._buffer = self._buffer[size:]


def _read_token(stream: Rewindable) -> str | None:
    """Consume a token line if the client sent one; None (nothing consumed) if its protocol begins at once."""
    data = stream.fill()
    while len(data) < len(TOKEN_PREFIX) and TOKEN_PREFIX.startswith(data):
        data = stream.fill()
    if not data.startswith(TOKEN_PREFIX):
        return None
    while b"\n" not in data[:MAX_TOKEN_LINE]:
        if len(data) >= MAX_TOKEN_LINE:
            raise ConnectionError("token line too long")
        data = stream.fill()
    end = data.index(b"\n")
    stream.skip(end + 1)
    return data[len(TOKEN_PREFIX) : end].strip().decode("utf-8", "replace")


def open_connection(
    sock: socket.socket, context: ssl.SSLContext | None, want_token: bool, timeout: float
) -> tuple[Any, str | None]:
    """TLS (when ``context``), then a token line (when ``want_token``), within ``timeout``.

    Returns the socket to speak the protocol on and the token presented (or
    None). Raises OSError (ssl.SSLError, timeout, ConnectionError) or EOFError;
    the connection is closed by then.
    """
    sock.settimeout(timeout)
    conn: Any = sock
    WATCHDOG.arm(conn, timeout)  # all of it within timeout, however slowly the bytes trickle in
    try:
        if context is not None:
            conn = context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
            WATCHDOG.disarm(sock)
            WATCHDOG.arm(conn, timeout)
            conn.do_handshake()
        if not want_token:
            return conn, None
        stream = Rewindable(conn)
        return stream, _read_token(stream)
    except BaseException:
        conn.close()  # wrap_socket moved the descriptor to the TLS socket
        raise
    finally:
        WATCHDOG.disarm(sock)
        WATCHDOG.disarm(conn)
