"""RPyC: the registry's operations on a plain service root, ``rpyc.connect(host, port).root``.

Never classic mode: the root answers exactly the registry's names (underscore
style) and nothing else; pickle, public attributes and attribute writes are off.

RPyC sends only immutable builtins and tuples by value; dicts and lists
would travel as references into the other process.  So:

* **Arguments** that arrive as references to the caller's lists and dicts are
  copied in as their ``repr`` (one round trip back to the caller per argument),
  parsed with ``ast.literal_eval`` (no code runs), bounded in size and depth.
* **Results** go to a stock client as read-only views over a per-call copy
  (:class:`MappingView`, :class:`SequenceView`): ``r["host"]``, ``len(r)``,
  iteration and ``dict(r)`` work as on a dict, every leaf comes by value, and
  no live server object is reachable through them.  Each access is a round
  trip.  A client that connects with :class:`ValuesService` (the gateway's own
  Python client does) gets each result as one JSON string by value instead:
  one round trip a call.

Errors: a builtin exception class whose message starts with the stable code
(:mod:`gateway.transports.exceptions`); no remote traceback is attached.
"""

from __future__ import annotations

import ast
import collections.abc
import json
import logging
import socket
import ssl
import time
import zlib
from typing import Any

import rpyc
from rpyc.core import netref
from rpyc.core.channel import Channel
from rpyc.core.stream import SocketStream
from rpyc.utils.authenticators import AuthenticationError
from rpyc.utils.helpers import classpartial
from rpyc.utils.server import ThreadedServer

from gateway.core import UNDERSCORE, Gateway
from gateway.errors import INVALID_ARGUMENT, METHOD_NOT_FOUND, GatewayError
from gateway.observe import Caller
from gateway.transports._secure import Rewindable, open_connection, server_context
from gateway.transports.base import Transport, guarded
from gateway.transports.exceptions import EXCEPTIONS

__all__ = ["MappingView", "RPyCTransport", "SequenceView", "ValuesService"]

log = logging.getLogger("gateway.rpyc")
# rpyc logs every connection at INFO ("accepted", "authenticated successfully" even for a client that sent no
# token, "welcome", "goodbye"); the access log already records callers, so only its warnings are kept.
_server_log = logging.getLogger("gateway.rpyc.connections")
_server_log.setLevel(logging.WARNING)

MAX_ARGUMENT_ITEMS = 10_000  # values copied in from one call's arguments
MAX_ARGUMENT_DEPTH = 16
VALUES_SERVICE = "NETOPS-VALUES"


def _wire_class(base: type[Exception]) -> type[Exception]:
    """A subclass that reaches the client as ``base`` itself, carrying only its message.

    rpyc rebuilds an exception from its class name and copies every public
    attribute; OSError's (errno, filename, …) arrive as None and make
    ``str(exc)`` read "[Errno None] None: None -> None".  Hiding them keeps the message.
    """
    return type(base.__name__, (base,), {"__module__": "builtins", "__dir__": lambda self: ["args"]})


_WIRE_CLASSES = {base: _wire_class(base) for base in set(EXCEPTIONS.values())}


def native_exception(error: GatewayError) -> Exception:
    """The builtin exception (by name) an RPyC caller receives for ``error``."""
    return _WIRE_CLASSES[EXCEPTIONS[error.code]](str(error))


class ValuesService(rpyc.Service):
    """Connect with this service to receive results as JSON text, by value, in one round trip."""

    ALIASES = [VALUES_SERVICE]


PROTOCOL_CONFIG = {
    "allow_public_attrs": False,
    "allow_all_attrs": False,
    "allow_setattr": False,
    "allow_delattr": False,
    "allow_pickle": False,
    "import_custom_exceptions": False,
    "instantiate_custom_exceptions": False,
    "include_local_traceback": False,  # no server paths or source lines in errors
    "include_local_version": False,
}

_VIEW_ATTRS = frozenset(
    {
        "__getitem__", "__len__", "__iter__", "__contains__", "__eq__", "__ne__", "__repr__", "__str__",
        "__bool__", "__reversed__", "keys", "items", "values", "get", "index", "count",
    }
)  # fmt: skip


def view(value: Any) -> Any:
    """Wrap containers in read-only views; leaves (str, int, float, bool) are returned as they are."""
    if isinstance(value, dict):
        return MappingView(value)
    if isinstance(value, list):
        return SequenceView(value)
    return value


class _View:
    """What both views share: read-only access to a per-call copy, and nothing else over RPyC."""

    __slots__ = ("_data",)
    _data: Any

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, (_View, collections.abc.Collection)):
            return False
        try:
            return copy_in(other) == self._data
        except GatewayError:
            return False  # not plain data: not equal to a result

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return repr(self._data)

    def _rpyc_getattr(self, name: str) -> Any:
        if name in _VIEW_ATTRS:
            return getattr(self, name)
        raise AttributeError(f"{name!r} is not available on a result")


class MappingView(_View, collections.abc.Mapping):
    """A read-only dict as an RPyC caller sees it."""

    __slots__ = ()

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def __getitem__(self, key: str) -> Any:
        return view(self._data[key])

    def __iter__(self) -> Any:
        return iter(tuple(self._data))

    def __len__(self) -> int:
        return len(self._data)

    def keys(self) -> tuple[str, ...]:  # type: ignore[override]
        """The keys, by value."""
        return tuple(self._data)


class SequenceView(_View, collections.abc.Sequence):
    """A read-only list as an RPyC caller sees it."""

    __slots__ = ()

    def __init__(self, data: list[Any]) -> None:
        self._data = data

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return SequenceView(self._data[index])
        return view(self._data[index])

    def __len__(self) -> int:
        return len(self._data)


def copy_in(value: Any, limit: int = 1024 * 1024) -> Any:
    """Copy one argument into plain data: a list or dict that is a reference into the caller comes as its
    ``repr`` (one round trip), parsed by ``ast.literal_eval`` (which evaluates no code), then checked by :func:`plain`.
    """
    if isinstance(value, netref.BaseNetref):
        text = repr(value)
        if len(text) > limit:
            raise GatewayError(INVALID_ARGUMENT, "arguments are too large")
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            raise GatewayError(
                INVALID_ARGUMENT, "arguments must be strings, numbers, booleans, lists or dicts"
            ) from None
    return plain(value)


def plain(value: Any, budget: list[int] | None = None, depth: int = 0) -> Any:
    """Check a caller's argument is plain, bounded data (lists, dicts, scalars) and return a copy of it."""
    budget = [MAX_ARGUMENT_ITEMS] if budget is None else budget
    budget[0] -= 1
    if budget[0] < 0 or depth > MAX_ARGUMENT_DEPTH:
        raise GatewayError(INVALID_ARGUMENT, "arguments are too large or nested too deeply")
    kind = type(value)
    if kind in (str, int, float, bool, type(None), bytes):
        return value
    if isinstance(value, _View):
        return plain(value._data, budget, depth)
    if kind is tuple or kind is list:
        return [plain(v, budget, depth + 1) for v in value]
    if kind is dict:
        return {k: plain(v, budget, depth + 1) for k, v in value.items()}
    raise GatewayError(INVALID_ARGUMENT, "arguments must be strings, numbers, booleans, lists or dicts")


class NetOpsService(rpyc.Service):
    """The service root: one attribute per public name, nothing else."""

    ALIASES = ["NETOPS"]

    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway
        self._limit = gateway.services.settings.max_request_bytes
        self._names = frozenset(gateway.method_names(UNDERSCORE))
        self._conn: Any = None
        self._caller = Caller("rpyc")
        self._values: bool | None = None

    def on_connect(self, conn: Any) -> None:
        self._conn = conn
        credentials = conn._config.get("credentials")
        if isinstance(credentials, Caller):  # set by the authenticator: the address and the token's name
            self._caller = credentials
            return
        try:
            host, port = conn._channel.stream.sock.getpeername()[:2]
            self._caller = Caller("rpyc", f"{host}:{port}")
        except (OSError, AttributeError):
            self._caller = Caller("rpyc")

    def _wants_values(self) -> bool:
        if self._values is None:  # asked once per connection, on its first call
            try:
                self._values = self._conn.root.get_service_name() == VALUES_SERVICE
            except Exception:
                self._values = False
        return self._values

    def _rpyc_getattr(self, name: str) -> Any:
        if name in self._names:
            return lambda *args, **kwargs: self._call(name, args, kwargs)
        if name in ("get_service_name", "get_service_aliases"):
            return getattr(self, name)
        raise native_exception(GatewayError(METHOD_NOT_FOUND, f"no method named {name[:100]!r}"))

    def _call(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        try:
            result = guarded(
                lambda: self._gateway.call(
                    name,
                    [copy_in(a, self._limit) for a in args],
                    {k: copy_in(v, self._limit) for k, v in kwargs.items()},
                    style=UNDERSCORE,
                    caller=self._caller,
                ),
                f"rpyc {name}",
            )
        except GatewayError as exc:
            raise native_exception(exc) from None
        if self._wants_values():
            return json.dumps(result, separators=(",", ":"))
        return view(result)


class _QuickAckSocket(socket.socket):
    """Acknowledges every read at once.

    A stock RPyC client has Nagle on: after its asynchronous "release this
    reference" messages, its next request waits for our ACK, which Linux delays
    ~40 ms when we have nothing to send back. TCP_QUICKACK is not sticky, so
    it is re-armed after each read.
    """

    def recv(self, size: int, flags: int = 0) -> bytes:
        data = super().recv(size, flags)
        self.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
        return data


_QUICKACK = getattr(socket, "TCP_QUICKACK", 12)


class _Stream(SocketStream):
    """rpyc's socket stream with a deadline: a frame that has begun must arrive within ``frame_timeout``.

    rpyc's own ``read`` swallows socket timeouts, so a client sending a byte
    every few seconds would hold its thread forever.
    """

    __slots__ = ("frame_timeout",)

    def __init__(self, sock: Any, frame_timeout: float) -> None:
        super().__init__(sock)
        self.frame_timeout = frame_timeout

    def poll(self, timeout: Any) -> bool:
        # Bytes already read past a token line, or decrypted by TLS, leave the descriptor unreadable.
        if isinstance(self.sock, Rewindable) and self.sock.has_buffered():
            return True
        if hasattr(self.sock, "pending") and self.sock.pending():
            return True
        return super().poll(timeout)

    def read(self, count: int) -> bytes:
        deadline = time.monotonic() + self.frame_timeout
        chunks = []
        while count > 0:
            left = deadline - time.monotonic()
            if left <= 0:
                self.close()
                raise EOFError("frame not received in time")
            try:
                self.sock.settimeout(left)
                chunk = self.sock.recv(min(self.MAX_IO_CHUNK, count))
            except TimeoutError:
                continue
            except OSError as exc:
                self.close()
                raise EOFError(exc) from None
            if not chunk:
                self.close()
                raise EOFError("connection closed by peer")
            chunks.append(chunk)
            count -= len(chunk)
        return b"".join(chunks)


class _Channel(Channel):
    """rpyc's channel with a size cap on each frame, compressed or not.

    A frame may claim up to 4 GiB, and a 1 MB frame flagged compressed once
    inflated server memory to 1.7 GB (TRANSPORTS.md): both are refused here.
    """

    __slots__ = ("limit",)

    def __init__(self, stream: Any, limit: int) -> None:
        super().__init__(stream)
        self.limit = limit

    def recv(self) -> bytes:
        length, compressed = self.FRAME_HEADER.unpack(self.stream.read(self.FRAME_HEADER.size))
        if length > self.limit:
            raise EOFError(f"a frame of {length} bytes is over the request limit")
        data = self.stream.read(length + len(self.FLUSHER))[: -len(self.FLUSHER)]
        if compressed:
            inflater = zlib.decompressobj()
            try:
                data = inflater.decompress(data, self.limit + 1)
            except zlib.error:
                raise EOFError("a compressed frame does not inflate") from None
            if len(data) > self.limit or inflater.unconsumed_tail:
                raise EOFError("a compressed frame inflates over the request limit")
        return data


class _Server(ThreadedServer):
    """A thread per connection; TLS and the token line on that thread; frames capped; idle clients evicted."""

    gateway: Gateway
    tls: ssl.SSLContext | None = None
    want_token = False
    handshake_timeout = 10.0
    idle_timeout = 60.0
    frame_limit = 1024 * 1024

    def _accept_method(self, sock: socket.socket) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if hasattr(socket, "TCP_QUICKACK") and self.tls is None:
            sock = _QuickAckSocket(sock.family, sock.type, sock.proto, fileno=sock.detach())
        super()._accept_method(sock)

    def secure(self, sock: socket.socket) -> tuple[Any, Caller]:
        """The authenticator: TLS and the token line, on the connection's thread. The credentials
        handed on are the caller (address and token name), never the token."""
        try:
            host, port = sock.getpeername()[:2]
        except OSError:
            raise AuthenticationError("connection gone") from None
        caller = Caller("rpyc", f"{host}:{port}")
        try:
            conn, token = open_connection(sock, self.tls, self.want_token, self.handshake_timeout)
        except (OSError, EOFError):
            self.gateway.refused(caller, "handshake")
            raise AuthenticationError("handshake failed") from None
        return conn, self.gateway.identify(caller, token)

    def _serve_client(self, sock: Any, credentials: Any) -> None:
        config = dict(self.protocol_config, credentials=credentials, logger=self.logger)
        channel = _Channel(_Stream(sock, self.idle_timeout), self.frame_limit)
        conn = self.service._connect(channel, config)
        try:
            while not conn.closed and conn.serve(self.idle_timeout):
                pass  # serve() is False when nothing arrived for idle_timeout: the client is dropped
        except EOFError:
            pass
        except OSError:
            if not conn.closed:
                log.debug("rpyc connection ended with an error", exc_info=True)
        finally:
            # Close the socket first: rpyc's close() would otherwise ask an idle (perhaps hostile) client to
            # confirm and wait up to sync_request_timeout for it.
            channel.close()
            try:
                conn.close()
            except AttributeError:
                pass  # rpyc cleans up twice when both ends close at once (its _local_root is already gone)


class RPyCTransport(Transport):
    """RPyC ThreadedServer (a thread per connection; never ThreadPoolServer, which polls)."""

    name = "rpyc"

    def __init__(self, gateway: Gateway, host: str, port: int) -> None:
        super().__init__(gateway, host, port)
        self.server: _Server | None = None

    @property
    def port(self) -> int:
        """The bound port."""
        assert self.server is not None
        return self.server.port

    @property
    def endpoint(self) -> str:
        """How to connect."""
        return f'rpyc.connect("{self.host}", {self.port}).root'

    def bind(self) -> None:
        """Create the server, which binds and listens."""
        settings = self.gateway.services.settings
        config = {**PROTOCOL_CONFIG, "sync_request_timeout": settings.timeout + 5}
        tls = server_context(settings)
        want_token = self.gateway.services.tokens.required
        server = _Server(
            classpartial(NetOpsService, self.gateway),
            hostname=self.host,
            port=self.requested_port,
            protocol_config=config,
            logger=_server_log,
            listener_timeout=0.5,
        )
        server.gateway, server.tls, server.want_token = self.gateway, tls, want_token
        server.handshake_timeout, server.idle_timeout = settings.handshake_timeout, settings.idle_timeout
        server.frame_limit = settings.max_request_bytes
        if tls is not None or want_token:
            server.authenticator = server.secure
        server._listen()  # listen now: rpyc would only on its serving thread, and a client could be refused
        self.server = server

    def _serve(self) -> None:
        assert self.server is not None
        self.server.start()

    def stop(self) -> None:
        """Close the listener and every connection."""
        if self.server is not None:
            self.server.close()
