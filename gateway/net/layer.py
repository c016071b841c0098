"""One event loop owns every listening socket and connection of the gateway.

Per connection the loop holds an asyncio ``Protocol`` (~2 KB, no thread): it
counts the connection against ``max_connections`` and
``max_connections_per_client``, runs the TLS handshake and the optional token
line within ``handshake_timeout``, and then feeds bytes to the transport's
session.  A connection must deliver each complete request within
``idle_timeout`` of the gateway starting to wait for it, however slowly its
bytes trickle in; otherwise it is closed.  Complete requests run one at a
time per connection on the shared :class:`~gateway.net.workers.Workers`.
"""

from __future__ import annotations

import asyncio
import collections
import ctypes
import functools
import logging
import os
import platform
import resource
import socket
import ssl
import threading
from asyncio.sslproto import SSLProtocol
from typing import Any

from gateway.core import Gateway
from gateway.eventloop import name_native_thread, new_event_loop
from gateway.net.session import (
    LATER,
    MAX_TOKEN_LINE,
    TOKEN_PREFIX,
    Answer,
    Codec,
    Deferred,
    Link,
    Refuse,
    ServingCodec,
    Session,
    TransportCodec,
)  # fmt: skip
from gateway.net.workers import Workers
from gateway.observe import Caller

__all__ = ["ConnectionLayer", "Listener"]

log = logging.getLogger("gateway.net")

BACKLOG = 1024  # connections the kernel queues while the loop is busy; a burst of clients is not reset
_QUICKACK = getattr(socket, "TCP_QUICKACK", 12)
LINGER_BYTES = 4 * 1024 * 1024  # what a refused client may still send while it reads the refusal
LINGER_SECONDS = 2.0
MAX_QUEUED = 16  # complete requests queued on one connection (pipelining) before it stops being read
# A larger answer is handed to the transport this much at a time, as the client reads: asyncio copies into
# its write buffer whatever the socket does not take at once, and a 10 MiB result would be copied whole.
WRITE_CHUNK = 256 * 1024


class Listener:
    """One transport's listening socket and the codec that speaks its protocol."""

    def __init__(self, codec: TransportCodec, host: str, port: int) -> None:
        self.codec = codec
        self.name = codec.name
        self.host = host
        self.requested_port = port
        self.sock: socket.socket | None = None
        self.server: asyncio.AbstractServer | None = None
        self.own_port = 0  # the port a ServingCodec bound

    @property
    def port(self) -> int:
        """The bound port."""
        if isinstance(self.codec, ServingCodec):
            return self.own_port
        assert self.sock is not None
        port: int = self.sock.getsockname()[1]
        return port

    def bind(self, reuse_port: bool) -> None:
        """Bind and listen now, so a busy port is reported before anything runs (OSError)."""
        if isinstance(self.codec, ServingCodec):
            self.own_port = self.codec.bind(self.host, self.requested_port, reuse_port)
            return
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((self.host, self.requested_port))
            sock.listen(BACKLOG)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self.sock = sock

    def adopt(self, fd: int) -> None:
        """Serve on a listening socket a supervisor bound and handed over (``--workers``); a ServingCodec binds
        the port of the socket the supervisor holds for it, beside the other workers (SO_REUSEPORT)."""
        sock = socket.socket(fileno=fd)
        if isinstance(self.codec, ServingCodec):
            self.own_port = self.codec.bind(self.host, sock.getsockname()[1], reuse_port=True)
            self.sock = sock  # kept open: the supervisor's hold on the port
            return
        sock.setblocking(False)
        self.sock = sock

    def serving(self) -> bool:
        """True while the loop (or the codec's own server) accepts on this listener."""
        if isinstance(self.codec, ServingCodec):
            return self.codec.serving()
        return self.server is not None and self.server.is_serving()


class ConnectionLayer:
    """The event loop thread, the listeners, the connection caps and the worker pool."""

    def __init__(self, gateway: Gateway, tls: ssl.SSLContext | None = None) -> None:
        settings = gateway.services.settings
        self.gateway = gateway
        self.tls = tls
        self.max_connections = settings.max_connections
        self.max_per_client = settings.max_connections_per_client
        self.idle_timeout = settings.idle_timeout
        self.handshake_timeout = settings.handshake_timeout
        self.workers = Workers(settings.call_workers)
        self.listeners: list[Listener] = []
        self.connections = 0
        self.per_client: collections.Counter[str] = collections.Counter()
        self.loop = new_event_loop()
        self._thread: threading.Thread | None = None
        self.loop_thread = 0  # the loop thread's ident, once it runs
        self._open: set[_Connection] = set()

    def add(self, listener: Listener) -> None:
        """Serve ``listener`` (already bound) once the layer starts."""
        self.listeners.append(listener)

    def start(self) -> None:
        """Start the workers and the loop thread; every listener accepts when this returns."""
        _raise_fd_limit()
        _large_blocks_back_to_the_system()
        self.workers.start()
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), name="netops-io", daemon=True)
        self._thread.start()
        ready.wait()

    def _run(self, ready: threading.Event) -> None:
        name_native_thread()
        self.loop_thread = threading.get_ident()
        asyncio.set_event_loop(self.loop)
        for listener in self.listeners:
            if isinstance(listener.codec, ServingCodec):
                listener.codec.start()
                continue
            assert listener.sock is not None, "bind() every listener before start()"
            listener.server = self.loop.run_until_complete(
                self.loop.create_server(
                    functools.partial(self._connection_class(listener), self, listener),
                    sock=listener.sock,
                    backlog=BACKLOG,
                )
            )
        ready.set()
        try:
            self.loop.run_forever()
        finally:
            for connection in list(self._open):
                connection.abort()
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()

    def _connection_class(self, listener: Listener) -> type[_Connection]:
        """What serves a connection of ``listener``: one that acknowledges reads at once if its codec asks."""
        return _AckingConnection if listener.codec.quick_ack and self.tls is None else _Connection

    def serving(self) -> bool:
        """True while the loop runs, every listener accepts and every worker lives."""
        return (
            self._thread is not None
            and self._thread.is_alive()
            and all(listener.serving() for listener in self.listeners)
            and self.workers.alive()
        )

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, drop every connection, end the loop and the workers."""
        if self._thread is not None and self._thread.is_alive():

            def close() -> None:
                for listener in self.listeners:
                    if listener.server is not None:
                        listener.server.close()
                self.loop.stop()

            self.loop.call_soon_threadsafe(close)
            self._thread.join(timeout)
            held = [listener.sock for listener in self.listeners if isinstance(listener.codec, ServingCodec)]
        else:
            held = [listener.sock for listener in self.listeners]
        for sock in held:  # never served by the loop: a port bound before start, or a supervisor's hold
            if sock is not None:
                sock.close()
        self.workers.stop(timeout)

    # -- caps, on the loop thread -------------------------------------------
    def admit(self, connection: _Connection) -> bool:
        """Count a new connection, or refuse it over the global or per-client cap."""
        if self.connections >= self.max_connections or (
            self.max_per_client and self.per_client[connection.ip] >= self.max_per_client
        ):
            return False
        self.connections += 1
        self.per_client[connection.ip] += 1
        self._open.add(connection)
        return True

    def release(self, connection: _Connection) -> None:
        """Uncount a closed connection."""
        self._open.discard(connection)
        self.connections -= 1
        self.per_client[connection.ip] -= 1
        if not self.per_client[connection.ip]:
            del self.per_client[connection.ip]


def _raise_fd_limit() -> None:
    """Use the hard limit of open files: each idle connection costs one descriptor and no thread."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass


_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter
LARGE_BLOCK = 1024 * 1024


def _large_blocks_back_to_the_system() -> None:
    """Allocate blocks of 1 MiB and more (bodies, encoded answers) as mappings of their own, unmapped when freed.

    By default glibc raises this threshold to the size of each large block freed (up to 32 MiB), and from
    then on carves 10 MiB bodies out of per-thread arenas that are seldom given back: peak RSS per
    concurrent 10 MiB fetch_url measured 18-40 MiB by transport, and 9-16 MiB with the threshold fixed.
    It stays above asyncio's 256 KiB read buffer, so small calls allocate as before. An operator's own
    ``MALLOC_MMAP_THRESHOLD_`` is left alone; other C libraries are left alone.
    """
    if "MALLOC_MMAP_THRESHOLD_" in os.environ or platform.libc_ver()[0] != "glibc":
        return
    try:
        ctypes.CDLL(None).mallopt(_M_MMAP_THRESHOLD, LARGE_BLOCK)
    except (OSError, AttributeError):
        pass


class _Connection(asyncio.Protocol):
    """One client connection, driven by the loop; its requests run on the workers, one at a time."""

    def __init__(self, layer: ConnectionLayer, listener: Listener) -> None:
        self.layer = layer
        self.listener = listener
        self.loop = layer.loop
        self.transport: Any = None
        self.ip = ""
        self.caller = Caller(listener.name)
        self.session: Session | None = None
        self.preamble = b""  # bytes before the protocol starts (the token line)
        self.securing = False  # the TLS handshake is under way
        self.early = b""
        self.queue: collections.deque[Any] = collections.deque()
        self.busy = False
        self.closed = False
        self.counted = False
        self.paused = False
        self.unwritten: collections.deque[memoryview | Deferred] = collections.deque()  # answer bytes not handed over
        self.writing_paused = False  # the transport's buffer is over its high-water mark
        self.close_when_written = False
        self.deadline: asyncio.TimerHandle | None = None
        self.deadline_at = 0.0  # when the deadline timer fires (asked of the timer, it costs a call)
        self.idle_timeout = layer.idle_timeout
        self.expires: float | None = None  # when the connection is closed unless it has moved on
        self.lingering = 0  # bytes a refused connection may still send (dropped) before it is reset
        self.linger: asyncio.TimerHandle | None = None
        self.writes = 0  # answers written (on the loop): whether a read was answered at once
        self.results = layer.gateway.services.results

    # -- life cycle ------------------------------------------------------------
    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        peer = transport.get_extra_info("peername") or ("", 0)
        self.ip = str(peer[0])
        self.caller = Caller(self.listener.name, f"{peer[0]}:{peer[1]}", typed=self.listener.codec.typed)
        if not self.layer.admit(self):
            self.layer.gateway.refused(self.caller, "too_many_connections")
            transport.write(self.listener.codec.overloaded())
            transport.close()
            self.closed = True
            return
        self.counted = True
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        self._arm(self.layer.handshake_timeout)
        if self.layer.tls is not None:
            self._start_tls(transport, self.layer.tls)
        else:
            self._secured()

    def _start_tls(self, transport: Any, context: ssl.SSLContext) -> None:
        """Put TLS between the socket and this connection before a byte is read: what ``loop.start_tls`` does,
        done here, in ``connection_made``, because on uvloop the transport starts reading when it returns
        (a ``pause_reading`` in it is undone) and the ClientHello would reach the plain protocol first."""
        handshake: asyncio.Future[None] = self.loop.create_future()
        tls = SSLProtocol(
            self.loop,
            self,
            context,
            handshake,
            server_side=True,
            call_connection_made=False,
            ssl_handshake_timeout=self.layer.handshake_timeout,  # type: ignore[arg-type]  # typeshed: int only
        )
        transport.set_protocol(tls)
        self.securing = True
        self.transport = tls._app_transport  # made with the protocol
        tls.connection_made(transport)
        handshake.add_done_callback(functools.partial(self._handshaken, tls))

    def _handshaken(self, tls: SSLProtocol, handshake: asyncio.Future[None]) -> None:
        self.securing = False
        if handshake.cancelled() or handshake.exception() is not None:
            self.layer.gateway.refused(self.caller, "tls_handshake")
            self._lost()
            return
        if tls._transport is None or self.closed:  # lost with no error (the client hung up): nothing to refuse
            self._lost()
            return
        self._secured()
        if self.early:
            early, self.early = self.early, b""
            self.data_received(early)

    def _secured(self) -> None:
        """TLS (if any) is done: wait for a token line, or start the protocol."""
        if self.closed:
            return
        self._arm(self.idle_timeout)
        if not self.listener.codec.token_line:
            self._start()

    def _start(self, token: str | None = None) -> None:
        gateway = self.layer.gateway
        self.caller = gateway.identify(self.caller, token)
        local = self.transport.get_extra_info("sockname") or ("127.0.0.1", 0)
        link = Link(gateway, self.caller, self.send, self.close_soon, self.layer.tls is not None, str(local[0]))
        codec = self.listener.codec
        assert isinstance(codec, Codec), "the layer accepts connections only for its own codecs"
        self.session = codec.session(link)
        self._arm(self.idle_timeout)

    def _lost(self) -> None:
        """A TLS handshake failed or timed out: asyncio tells the protocol nothing then, so close and uncount here."""
        self.abort()
        self.connection_lost(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self.unwritten.clear()
        self.closed = True
        self._disarm()
        if self.linger is not None:
            self.linger.cancel()
            self.linger = None
        if self.counted:
            self.counted = False
            self.layer.release(self)
        if self.session is not None:
            self.session.connection_lost()

    def abort(self) -> None:
        """Close at once, dropping anything unwritten."""
        self.unwritten.clear()
        self.closed = True
        self._disarm()
        if self.transport is not None:
            self.transport.abort()

    # -- reading ------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        session = self.session
        if session is None or self.closed:
            self._outside_session(data)
            return
        if session.answers_reads and not (self.queue or self.busy):
            try:
                reply = session.answer_read(data)
            except Exception:
                log.exception("%s session failed; closing the connection", self.listener.name)
                self.abort()
                return
            if reply is not LATER:
                self._write_answer(session, reply)
                if not self.closed:
                    self._arm(self.idle_timeout)
                return
        try:
            requests = session.receive(data)
        except Refuse as refusal:
            self._refuse(refusal)
            return
        if not requests:
            return
        if len(requests) == 1 and not self.queue and not self.busy:  # nearly every read: one request, nothing before it
            if not self._at_once(requests[0]):
                self._submit(requests[0])
            elif not self.closed:
                self._arm(self.idle_timeout)
            return
        self.queue.extend(requests)
        if len(self.queue) >= MAX_QUEUED and not self.paused:
            self.paused = True
            self.transport.pause_reading()
        self._pump()

    def _outside_session(self, data: bytes) -> None:
        """Bytes read before the session starts (a token line, the protocol's first bytes) or after closing."""
        if self.closed:
            if self.lingering > 0:
                self.lingering -= len(data)
                if self.lingering <= 0:
                    self.transport.abort()
            return
        if self.securing:
            self.early += data  # decrypted bytes read with the handshake's last ones: kept for _secured
            return
        if self.layer.tls is not None and self.transport.get_extra_info("ssl_object") is None:
            self.abort()  # bytes that did not come through TLS on a TLS port: never served
            return
        data = self._preamble(data)
        if self.session is not None and data:
            _Connection.data_received(self, data)

    def _preamble(self, data: bytes) -> bytes:
        """Read an optional token line; start the session; return the protocol's bytes that followed it."""
        self.preamble += data
        head = self.preamble
        if len(head) < len(TOKEN_PREFIX) and TOKEN_PREFIX.startswith(head):
            return b""  # could still be a token line
        if not head.startswith(TOKEN_PREFIX):
            self.preamble = b""
            self._start()
            return head
        end = head.find(b"\n", 0, MAX_TOKEN_LINE)
        if end < 0:
            if len(head) >= MAX_TOKEN_LINE:
                self._refuse(Refuse("handshake"))
            return b""
        self.preamble = b""
        self._start(head[len(TOKEN_PREFIX) : end].strip().decode("utf-8", "replace"))
        return head[end + 1 :]

    def _refuse(self, refusal: Refuse) -> None:
        if refusal.reason:
            self.layer.gateway.refused(self.session.link.caller if self.session else self.caller, refusal.reason)
        if refusal.reply:
            self.transport.write(refusal.reply)
        self.closed = True
        self._disarm()
        if refusal.reply and self.transport.can_write_eof():
            self._linger()
        else:
            self.transport.close()

    def _linger(self) -> None:
        """Close after the reply, dropping what the client still sends for a moment (at most LINGER_BYTES,
        LINGER_SECONDS): closing with unread bytes makes the kernel reset the connection, and a client still
        sending a refused body would lose the reply it has not read yet. Nothing of it is kept or decoded."""
        self.transport.write_eof()
        self.lingering = LINGER_BYTES
        self.linger = self.loop.call_later(LINGER_SECONDS, self.transport.abort)

    # -- running requests -------------------------------------------------------------
    def _pump(self) -> None:
        """Answer queued requests in order: instant ones here, the next other one on a worker."""
        while self.queue and not self.busy and not self.closed:
            request = self.queue.popleft()
            if self.paused and len(self.queue) < MAX_QUEUED // 2:
                self.paused = False
                self.transport.resume_reading()
            if not self._at_once(request):
                self._submit(request)
                return
        if not self.busy and not self.closed:
            self._arm(self.idle_timeout)

    def _at_once(self, request: Any) -> bool:
        """Answer an instant request here, on the loop (it does no I/O, so it fetches no result to hold);
        False for one a worker must answer."""
        session = self.session
        assert session is not None
        try:
            reply = session.at_once(request)
        except Exception:
            log.exception("%s session failed; closing the connection", self.listener.name)
            session.close_after = True
            reply = None
        if reply is LATER:
            return False
        self._write_answer(session, reply)
        return True

    def _write_answer(self, session: Session, reply: Answer | None) -> None:
        """Write an answer made here, on the loop: the usual one (bytes, nothing waiting before them) as
        _reply and _write would, without their two calls, which are on the path of every instant call (with
        _arm's kept time, 1.2K of a Thrift call's 61.3K instructions, callgrind)."""
        if (
            type(reply) is bytes
            and reply
            and not (self.closed or self.unwritten or self.writing_paused)
            and len(reply) <= WRITE_CHUNK
            and not session.close_after
        ):
            self.writes += 1
            self.transport.write(reply)
        else:
            self._reply(reply)

    def _submit(self, request: Any) -> None:
        self.busy = True
        self._disarm()  # the request is complete: the call has its own time limit
        self.layer.workers.submit(functools.partial(self._work, request))

    def _answer(self, request: Any) -> Answer | None:
        assert self.session is not None
        try:
            with self.results.scope():  # results held by the call stay counted until they are encoded
                return self.session.handle(request)
        except Exception:
            log.exception("%s session failed; closing the connection", self.listener.name)
            self.session.close_after = True
            return None

    def _work(self, request: Any) -> None:
        """On a worker: answer the request, then hand the answer to the loop."""
        reply = self._answer(request)
        try:
            self.loop.call_soon_threadsafe(self._done, reply)
        except RuntimeError:
            pass  # the loop has stopped: the gateway is shutting down

    def _done(self, reply: Answer | None) -> None:
        self.busy = False
        self._reply(reply)
        self._pump()

    def _reply(self, reply: Answer | None) -> None:
        if self.closed:
            return
        if type(reply) is bytes:
            self._write(reply)  # the usual answer: one piece
        elif reply:
            self._write_all(reply)
        if self.session is not None and self.session.close_after:
            self._close_when_written()

    def _close_when_written(self) -> None:
        self.closed = True
        self._disarm()
        if self.unwritten:
            self.close_when_written = True  # _drain closes once the last chunk is handed over
        else:
            self._end()

    def _end(self) -> None:
        """Close after the last answer. Where the transport can half-close, linger: a client may still be
        sending the request that was refused midway (a Thrift message over the budget), and a close with
        its bytes unread would reset the connection before it reads the answer."""
        if self.transport.can_write_eof():
            self._linger()
        else:
            self.transport.close()

    # -- thread-safe, for sessions -----------------------------------------------------
    def send(self, data: Answer) -> None:
        """Write ``data`` (or its parts, in order) from any thread (at once on the loop's own, which an instant
        request runs on)."""
        if threading.get_ident() == self.layer.loop_thread:
            self._write_all(data)
        else:
            self.loop.call_soon_threadsafe(self._write_all, data)

    def _write_all(self, data: Answer) -> None:
        if isinstance(data, bytes):
            self._write(data)
            return
        if len(data) > 1 and sum(map(len, data)) <= WRITE_CHUNK:
            try:
                joined = b"".join(data)  # type: ignore[arg-type]  # one send, one segment: cheaper joined
            except TypeError:  # a Deferred among them (not a check on every answer: they are rare)
                pass
            else:
                self._write(joined)
                return
        for part in data:
            if type(part) is Deferred:
                if not self.closed:
                    self.unwritten.append(part)  # made when its turn comes, as the client reads
                    self._drain()
            else:
                self._write(part)  # type: ignore[arg-type]

    def _write(self, data: bytes) -> None:
        if self.closed or not data:  # nothing to send (a session that wrote its answer itself returns none)
            return
        self.writes += 1
        if not self.unwritten and not self.writing_paused and len(data) <= WRITE_CHUNK:
            self.transport.write(data)
            return
        self.unwritten.append(memoryview(data))  # behind what is waiting, in order
        self._drain()

    def _drain(self) -> None:
        """Hand queued answer bytes to the transport a chunk at a time while it is not over its high-water
        mark; the answer's own bytes are held meanwhile, so nothing is copied but the chunk in flight, and
        deferred bytes are made only when their turn comes."""
        while self.unwritten and not self.writing_paused:
            view = self.unwritten[0]
            if isinstance(view, Deferred):
                try:
                    piece = view.take()
                except Exception:  # a frame's length was sent: the connection cannot carry on
                    log.exception("%s answer could not be made; closing the connection", self.listener.name)
                    self.abort()
                    return
                if piece is None:
                    self.unwritten.popleft()
                else:
                    self.unwritten.appendleft(memoryview(piece))
                continue
            self.transport.write(view[:WRITE_CHUNK])
            if len(view) > WRITE_CHUNK:
                self.unwritten[0] = view[WRITE_CHUNK:]
            else:
                self.unwritten.popleft()
        if not self.unwritten and self.close_when_written:
            self.close_when_written = False
            self._end()

    def pause_writing(self) -> None:
        """The transport's buffer is full: hold the rest of the answer."""
        self.writing_paused = True

    def resume_writing(self) -> None:
        """The client read enough: hand over more (a client still reading is not idle)."""
        self.writing_paused = False
        if self.expires is not None and not self.closed:
            self._arm(self.idle_timeout)
        self._drain()

    def close_soon(self) -> None:
        """Close from any thread, after what is queued for writing."""

        def close() -> None:
            if not self.closed:
                self._close_when_written()

        try:
            self.loop.call_soon_threadsafe(close)
        except RuntimeError:
            pass

    # -- deadlines ------------------------------------------------------------------------
    # One timer per connection, moved lazily: a request answered in microseconds would otherwise cancel
    # and schedule a timer (a heap operation each) every time; here the timer fires, finds the deadline
    # moved on, and sleeps again until it.
    def _arm(self, seconds: float) -> None:
        self.expires = expires = self.loop.time() + seconds
        if self.deadline is not None:
            if self.deadline_at <= expires:
                return  # it fires first, and moves itself on to ``expires``
            self.deadline.cancel()
        self.deadline_at = expires
        self.deadline = self.loop.call_at(expires, self._expired)

    def _disarm(self) -> None:
        self.expires = None
        if self.closed and self.deadline is not None:
            self.deadline.cancel()  # release the connection now, not when the timer would have fired
            self.deadline = None

    def _expired(self) -> None:
        self.deadline = None
        if self.expires is None or self.busy or self.closed:
            return
        if self.expires > self.loop.time():
            self.deadline_at = self.expires
            self.deadline = self.loop.call_at(self.expires, self._expired)
            return
        self.abort()


class _AckingConnection(_Connection):
    """A connection whose reads are acknowledged at once when nothing went back to carry the ACK (a notice,
    or a call on a worker): for codecs whose stock clients have Nagle on (``quick_ack``), on plain TCP."""

    quick_ack = True  # until the socket refuses TCP_QUICKACK

    def data_received(self, data: bytes) -> None:
        writes = self.writes
        _Connection.data_received(self, data)
        if self.writes == writes and self.quick_ack and not self.closed:
            self._quick_ack()

    def _quick_ack(self) -> None:
        """Acknowledge the last read now (TCP_QUICKACK is not sticky, and setting it sends an ACK the kernel
        was holding back).

        A stock RPyC client has Nagle on: after its asynchronous "release this
        reference" messages its next request waits for our ACK, which Linux
        delays ~40 ms when we have nothing to send back. A read answered at
        once needs none: the answer carries the ACK, and the system call is saved.
        """
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
            except OSError:
                self.quick_ack = False
