"""The seam between the connection layer and a transport: a :class:`Session` per connection, with no I/O.

The layer calls :meth:`Session.receive` on the loop thread with each chunk of
bytes; it returns the complete requests framed so far (never more than the
transport's bounds allow) or raises :class:`Refuse`.  Each request is then
handed to :meth:`Session.handle` on a worker thread, one at a time per
connection, in order; what it returns is written back.  Each request is first
offered to :meth:`Session.at_once` on the loop thread: a small one for an
operation that does no I/O (introspection) is answered there, as handing it
to a worker would cost more than answering it.  A session reaches its
connection only through its :class:`Link`.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, TypeAlias

from gateway.observe import Caller

if TYPE_CHECKING:
    from gateway.config import Settings
    from gateway.core import Gateway, Style

__all__ = [
    "INSTANT_BYTES", "LATER", "TOKEN_PREFIX", "Answer", "Codec", "Deferred", "Later", "Link", "Refuse", "ServingCodec",
    "Session", "TransportCodec", "each_piece", "token_line",
]  # fmt: skip


class Deferred:
    """``size`` bytes of an answer made only as the socket takes them: a long string's encoding.

    Made whole before it is written, it would be held beside the string it is
    made from (a 10 MiB ``fetch_url`` body twice) while every other call in
    flight did the same. The size is known beforehand, for the frame's length.
    Its bytes are made once: it is read like a generator.
    """

    __slots__ = ("given", "parts", "size")

    def __init__(self, size: int, parts: Iterator[bytes]) -> None:
        self.size = size
        self.parts = parts
        self.given = 0

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[bytes]:
        while (piece := self.take()) is not None:
            yield piece

    def take(self) -> bytes | None:
        """The next piece, or None once all were given (ValueError if they do not add up to ``size``)."""
        for piece in self.parts:
            self.given += len(piece)
            if self.given > self.size:
                break
            if piece:
                return piece
        else:
            if self.given == self.size:
                return None
        raise ValueError(f"deferred bytes: {self.given} made, {self.size} announced")


def each_piece(parts: Iterable[bytes | Deferred]) -> Iterator[bytes]:
    """The bytes of an answer's parts in order, deferred ones made on the way."""
    for part in parts:
        if isinstance(part, Deferred):
            yield from part
        else:
            yield part


class Later(enum.Enum):
    """What :meth:`Session.at_once` returns for a request a worker must answer."""

    LATER = "later"


LATER = Later.LATER

# What a session answers: bytes, or parts written in order (a large body is not joined to its head).
Answer: TypeAlias = "bytes | Sequence[bytes | Deferred]"

# RPyC and Thrift have no header for a credential: a client may send this line before its first message.
# Neither protocol can begin with these bytes (an RPyC frame would claim 1.3 GB, a Thrift message starts
# with 0x80 or 0x82, a framed one with a length under the request cap), so a client sending none is served
# as before: unauthenticated.
TOKEN_PREFIX = b"NETOPS-TOKEN "
INSTANT_BYTES = 4096  # the largest request a session may answer on the loop thread (see Session.at_once)
MAX_TOKEN_LINE = 512  # the prefix, a token of up to 256 characters and slack; a longer line is not a token line


def token_line(token: str) -> bytes:
    """The line a client sends first to present ``token`` (RPyC, Thrift)."""
    return TOKEN_PREFIX + token.encode() + b"\n"


class Refuse(Exception):
    """Close the connection after writing ``reply``; ``reason`` goes to the observers (``""``: not reported)."""

    def __init__(self, reason: str, reply: bytes = b"") -> None:
        super().__init__(reason)
        self.reason = reason
        self.reply = reply


class Link:
    """What a session knows of its connection: who is calling, the gateway, and a way to write and close."""

    def __init__(
        self,
        gateway: Gateway,
        caller: Caller,
        send: Callable[[Answer], None],
        close: Callable[[], None],
        tls: bool,
        local: str = "127.0.0.1",
    ) -> None:
        self.gateway = gateway
        self.caller = caller
        self.settings: Settings = gateway.services.settings
        self.send = send  # thread-safe: queue bytes (or their parts, in order) for the client
        self.close = close  # thread-safe: close once what is queued is written
        self.tls = tls
        self.local = local  # the gateway's own address on this connection (never what the client claims)


class Session(ABC):
    """One connection's protocol state: bytes in, complete requests out, answers from a worker."""

    def __init__(self, link: Link) -> None:
        self.link = link
        self.close_after = False  # set by handle(): close once the answer is written

    @abstractmethod
    def receive(self, data: bytes) -> list[Any]:
        """Take bytes from the client; return the requests now complete (raise :class:`Refuse` to close)."""

    @abstractmethod
    def handle(self, request: Any) -> Answer | None:
        """Answer one request on a worker thread: the bytes to send, or its parts in order, so a large body
        is not copied to be joined to its head (None: nothing)."""

    answers_reads: ClassVar[bool] = False  # whether the layer offers reads to answer_read

    def answer_read(self, data: bytes) -> Answer | Later:
        """The answer to ``data`` when the read is, whole and alone, one instant request this session tells
        at a glance (``LATER``: the read goes to :meth:`receive`). The layer offers each read to it first,
        when nothing on the connection waits, if ``answers_reads``: the usual introspection call is then
        answered with nothing between the read and the core."""
        return LATER

    def at_once(self, request: Any) -> Answer | Later | None:
        """Answer ``request`` here, on the loop thread, when it blocks on nothing and is small; else ``LATER``,
        and a worker's :meth:`handle` answers it.

        Called on the loop thread, so the look must be cheap. ``LATER`` costs a hand-over to a worker;
        answering here wrongly would stall every connection, so a session answers only when it is sure.
        """
        return LATER

    def connection_lost(self) -> None:
        """The connection has closed (called on the loop thread)."""
        return None


class TransportCodec(ABC):
    """What every transport is, whoever accepts its connections: its name, how it is reached, shared state.

    ``token_line`` (RPyC, Thrift) makes the layer read an optional
    ``NETOPS-TOKEN`` line and identify the caller by it before the session
    sees a byte; ``typed`` marks callers that need a fixed result type (Thrift);
    ``quick_ack`` acknowledges every read at once (for clients with Nagle on).
    """

    name: ClassVar[str] = ""
    token_line: ClassVar[bool] = False
    typed: ClassVar[bool] = False
    quick_ack: ClassVar[bool] = False

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    @abstractmethod
    def endpoint(self, host: str, port: int, tls: bool) -> str:
        """How a client reaches this transport, as the endpoint table and the docs page show it."""

    @abstractmethod
    def snippet(self, host: str, port: int, tls: bool) -> str:
        """A few lines a user can paste to call ``resolve`` through this transport's stock client."""

    def instant_names(self, style: Style) -> frozenset[str]:
        """The public names (in ``style``) of the operations that may be answered on the loop thread."""
        names = self.gateway.method_names(style)
        return frozenset(name for name in names if self.gateway.instant(name, style))

    def overloaded(self) -> bytes:
        """What a connection over the connection caps is told before it is closed (default: nothing)."""
        return b""

    def close(self) -> None:
        """Release what the codec holds (called when the gateway stops)."""
        return None


class Codec(TransportCodec):
    """A transport on the connection layer: the layer accepts its connections, a :class:`Session` each."""

    @abstractmethod
    def session(self, link: Link) -> Session:
        """A new session for one connection."""


class ServingCodec(TransportCodec):
    """A transport whose library owns its connections (gRPC's core owns HTTP/2): it binds, serves and caps
    them itself, configured from the same settings; the layer only starts, watches and stops it."""

    @abstractmethod
    def bind(self, host: str, port: int, reuse_port: bool) -> int:
        """Bind now, so a busy port is reported before anything runs (OSError); return the bound port."""

    @abstractmethod
    def start(self) -> None:
        """Start serving on the bound port."""

    @abstractmethod
    def serving(self) -> bool:
        """True while it serves."""
