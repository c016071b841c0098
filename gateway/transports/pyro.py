"""Pyro5: the registry's operations as methods of one exposed object, ``PYRO:netops@host:port``.

Pyro5 is a codec here: the connection layer frames each message by its
40-byte header (the size is known before the body is buffered) and Pyro5's
daemon answers one complete message at a time on an in-memory connection.
A plain call of one of the object's methods (no batch, not oneway) is
decoded and answered with Pyro5's serializer and header directly, byte for
byte as the daemon would answer it, in a fifth fewer instructions.
Before the connect handshake has accepted the caller, only a connect message
of at most :data:`CONNECT_LIMIT` bytes, uncompressed, is read; afterwards a
compressed message inflates to ``max_request_bytes`` and no further, and its
serpent text must fit the work budget of :mod:`gateway.net.budget`.  Oneway
calls run on the connection's worker like any other (Pyro5 would start a
thread for each).

Types: serpent carries dicts, lists, strings, numbers and booleans as they
are (only serpent: a client choosing marshal, json or msgpack is refused at
the handshake).  Errors: a builtin exception class (see
:data:`gateway.transports.EXCEPTIONS`) whose message starts with the stable
code; the exception reply carries no traceback and no server path.
Configuration is set here in code (Pyro5 otherwise reads ``PYRO_*`` from the
environment): message size capped, idle connections dropped after
``idle_timeout``.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import socket
import struct
import uuid
import zlib
from typing import Any

import Pyro5.api
import Pyro5.core
import Pyro5.errors
import Pyro5.protocol
import Pyro5.serializers
import Pyro5.server

from gateway.core import INTROSPECTION, UNDERSCORE, Gateway
from gateway.errors import INTERNAL, INVALID_ARGUMENT, METHOD_NOT_FOUND, NOT_FOUND, TOO_LARGE, GatewayError
from gateway.net.budget import MAX_ITEMS, within_budget
from gateway.net.session import INSTANT_BYTES, LATER, Answer, Codec, Deferred, Later, Link, Refuse, Session
from gateway.observe import Caller
from gateway.transports.base import internal_error
from gateway.transports.exceptions import is_native, native_exception
from gateway.transports.long_strings import LongStrings, pieces

__all__ = ["PyroCodec"]

log = logging.getLogger("gateway.pyro")
OBJECT_ID = "netops"
_HEADER = struct.Struct(Pyro5.protocol._header_format)  # "!4sHBBHHII16sHH"
# The fields of the header the layer reads, the others skipped (unpacking all eleven costs three times as much):
# tag, version, message type, serializer, flags, data size, annotations size, magic.
_FRAMING = struct.Struct("!4sHBBH2xII16x2xH")
_CALL_FIELDS = struct.Struct("!6xBxH6xI")  # message type, flags, annotations size
# A connect message carries the object name, the token and a correlation id: a few hundred bytes.
CONNECT_LIMIT = 16 * 1024
# The start of a serpent-encoded call, (object id, method, ...): where a small call shows its method name.
# Quoted without escapes, the name cannot read differently to serpent; anything else does not match.
_CALL_START = re.compile(rb"# serpent utf-8 python3\.2\n\('[A-Za-z0-9_.:-]*',\s*'([A-Za-z_][A-Za-z0-9_]*)',")
# A snippet's TLS line: Pyro5 then trusts the system store, or the CA in SSL_CERT_FILE.
TLS_LINE = "Pyro5.config.SSL = True  # trusts the system store, or SSL_CERT_FILE\n"


def configure_pyro(max_response_bytes: int) -> None:
    """Pyro5's process-wide settings for a server of this gateway."""
    Pyro5.api.config.SERIALIZER = "serpent"
    Pyro5.api.config.COMPRESSION = False  # (PYRO_COMPRESSION in the environment): replies are spliced as written
    # Pyro5 has one size limit for both directions; it is set for the largest response
    # (a fetch_url body in base64) and requests are held to the smaller cap in _Daemon.
    Pyro5.api.config.MAX_MESSAGE_SIZE = max_response_bytes
    Pyro5.api.config.DETAILED_TRACEBACK = False
    # Only serpent may be spoken to us: the others would be accepted by default.
    for serializer_id, serializer in list(Pyro5.serializers.serializers_by_id.items()):
        if serializer.serializer_id != Pyro5.serializers.serializers["serpent"].serializer_id:
            del Pyro5.serializers.serializers_by_id[serializer_id]


def _service_class(gateway: Gateway) -> type:
    """A class with one exposed method per public name (underscore style)."""

    def method(name: str) -> Any:
        # Introspection answers are made from the registry (names, help, signatures): no string in them comes
        # near LONG, so they are not searched for one (searching a listing cost more than making it).
        searched = name not in INTROSPECTION

        def call(self: Any, /, *args: Any, **kwargs: Any) -> Any:  # a parameter may be called "self"
            message = Pyro5.api.current_context.client
            caller = getattr(message, "netops_caller", None) or Caller("pyro")
            result = _called(gateway, name, args, kwargs, caller)
            if searched and isinstance(message, _Message):
                if message.long is None:  # one for the message: a batch's calls all answer in it
                    message.long = LongStrings()
                return message.long.take(result)  # put back by PyroSession.handle
            return result

        call.__name__ = name
        call.__doc__ = gateway.lookup(name, UNDERSCORE).summary
        return Pyro5.api.expose(call)

    namespace = {name: method(name) for name in gateway.method_names(UNDERSCORE)}
    return Pyro5.api.behavior(instance_mode="single")(type("NetOps", (), namespace))


def _called(gateway: Gateway, name: str, args: Any, kwargs: dict[str, Any], caller: Caller) -> Any:
    """The core's result, or the coded builtin exception a Pyro5 client is sent instead."""
    try:
        return gateway.call(name, args, kwargs, style=UNDERSCORE, caller=caller)
    except GatewayError as exc:
        raise native_exception(exc) from None
    except Exception as exc:  # a defect: internal, logged with an incident id, never shown
        raise native_exception(internal_error(exc, f"pyro {name}")) from None


class _Daemon(Pyro5.server.Daemon):
    """Pyro5's dispatch, on no socket of its own: the layer hands it complete messages.

    Its error replies carry only the stable-coded message, never a traceback.
    """

    gateway: Gateway

    def validateHandshake(self, conn: Any, data: Any) -> Any:
        """Identify the caller by the token in ``proxy._pyroHandshake``; refuse the connection
        when it could be served nothing (tokens required, introspection closed, no accepted token)."""
        # A Pyro5 proxy sends "hello" unless told otherwise: that is no token, not a wrong one.
        token = None if data in (None, "hello") else data if isinstance(data, str) else ""
        caller = self.gateway.identify(conn.netops_caller, token)
        error = self.gateway.refusal(caller)
        if error is not None:
            self.gateway.refused(caller, "unauthenticated")
            raise native_exception(error)
        conn.netops_caller = caller
        return "hello"

    def _sendExceptionResponse(
        self,
        connection: Any,
        seq: int,
        serializer_id: int,
        exc_value: BaseException,
        tbinfo: Any,
        flags: int = 0,
        annotations: Any = None,
    ) -> None:
        if isinstance(exc_value, AttributeError) and hasattr(connection, "netops_caller"):
            self.gateway.refused(connection.netops_caller, "method_not_found")  # an invented or hidden name
        super()._sendExceptionResponse(connection, seq, serializer_id, _safe(exc_value), [], flags, annotations)


@Pyro5.api.expose
class DaemonObject:
    """Pyro5's own object (``Pyro.Daemon``) as this gateway exposes it: ``ping``, and the metadata of the
    NetOps object that a stock proxy asks for when it binds. Pyro5's ``info``, ``registered`` and the
    stream calls would describe the server to anyone: they are not exposed, and asking is a refusal."""

    def __init__(self, daemon: Any) -> None:
        self.daemon = daemon

    def ping(self) -> None:
        """Answer nothing: the connection works."""

    def get_metadata(self, objectId: str) -> Any:
        """The exposed names of the NetOps object (already public through system.listMethods), or of this."""
        if objectId not in (OBJECT_ID, Pyro5.core.DAEMON_NAME):
            raise native_exception(GatewayError(NOT_FOUND, "no such object"))
        return Pyro5.server.DaemonObject.get_metadata(self, objectId)  # type: ignore[arg-type]


class _Message:
    """One complete Pyro5 message as the daemon reads it, and what the daemon writes back."""

    def __init__(self, data: bytes, caller: Caller, peer: tuple[str, int] = ("", 0)) -> None:
        self.data = data
        self.offset = 0
        self.output: list[bytes] = []
        self.netops_caller = caller
        self.peer = peer
        self.long: LongStrings | None = None  # long strings of the result, out of serpent's way
        self.sock = self  # the daemon asks its connection's socket for the peer's address
        self.pyroInstances: dict[Any, Any] = {}

    def recv(self, size: int) -> bytes:
        chunk = self.data[self.offset : self.offset + size]
        self.offset += len(chunk)
        if len(chunk) < size:
            raise Pyro5.errors.ConnectionClosedError("message ended early")
        return chunk

    def send(self, data: bytes) -> None:
        self.output.append(data)

    def getpeername(self) -> tuple[str, int]:
        """The client's address (the daemon asks on every call)."""
        return self.peer

    def close(self) -> None:
        """Nothing to close: the layer owns the connection."""


# What reading a caller's message can raise: Pyro5's own errors, and serpent's (it parses with ast.literal_eval,
# after decoding UTF-8: ValueError, UnicodeDecodeError, SyntaxError; TypeError for a call of the wrong shape).
_UNREADABLE = (Pyro5.errors.SerializeError, Pyro5.errors.ProtocolError, ValueError, SyntaxError, TypeError)


def _safe(exc: BaseException) -> BaseException:
    """Replace what Pyro5 itself raised (unknown method, bad message) with a coded builtin exception."""
    if is_native(exc):
        return exc
    if isinstance(exc, AttributeError):
        error = GatewayError(METHOD_NOT_FOUND, "no such method on this object")
    elif isinstance(exc, Pyro5.errors.DaemonError):  # the message names an object the daemon does not have
        error = GatewayError(NOT_FOUND, "no such object")
    elif isinstance(exc, _UNREADABLE):
        error = GatewayError(INVALID_ARGUMENT, "the request could not be decoded")
    else:
        log.error("pyro request failed", exc_info=exc)
        error = GatewayError(INTERNAL, "internal error")
    return native_exception(error)


class PyroSession(Session):
    """Frames Pyro5 messages by their header and answers them with the shared daemon."""

    def __init__(self, link: Link, codec: PyroCodec) -> None:
        super().__init__(link)
        self.daemon = codec.daemon
        self.limit = link.settings.max_request_bytes
        self.buffer = bytearray()
        self.connect_seen = False  # the connect message has been framed (it is answered before anything else)
        self.connected = False  # the daemon accepted the handshake
        self.instant_ops = codec.instant_ops
        self.methods = codec.methods
        self.gateway = codec.gateway
        host, _, port = link.caller.client.rpartition(":")
        self.peer = (host, int(port or 0))  # what the daemon puts in current_context.client_sock_addr

    def receive(self, data: bytes) -> list[Any]:
        """Complete messages; the size and the flags are checked from the header before the body is kept."""
        if not self.buffer and len(data) >= _HEADER.size and self._size(data) == len(data):
            self.connect_seen = True
            return [data]  # one whole message in one read (nearly every call): handed on as it is, not copied
        self.buffer += data
        messages = []
        while len(self.buffer) >= _HEADER.size:
            size = self._size(self.buffer)
            if len(self.buffer) < size:
                break
            messages.append(bytes(self.buffer[:size]))
            del self.buffer[:size]
            self.connect_seen = True
        return messages

    def _size(self, buffer: bytes | bytearray) -> int:
        """The size of the message whose header starts ``buffer``, checked before its body is kept."""
        tag, version, kind, serializer, flags, data_size, annotations_size, magic = _FRAMING.unpack_from(buffer)
        if tag != b"PYRO" or version != Pyro5.protocol.PROTOCOL_VERSION or magic != _MAGIC:
            raise Refuse("parse_error")
        size = data_size + annotations_size
        if not self.connect_seen:
            # Before the handshake: one small, uncompressed connect message, in serpent, and nothing else.
            if kind != Pyro5.protocol.MSG_CONNECT or flags & Pyro5.protocol.FLAGS_COMPRESSED:
                raise Refuse("handshake")
            if size > CONNECT_LIMIT:
                raise Refuse("too_large")
            if serializer != _SERPENT.serializer_id:
                raise Refuse("handshake")  # the only serializer spoken here (see configure_pyro)
        elif size > self.limit:
            raise Refuse("too_large")
        elif kind != _PING and (kind != _INVOKE or serializer != _SERPENT.serializer_id):
            raise Refuse("parse_error")  # after it, what Pyro5's daemon reads: calls in serpent, and pings
        return _HEADER.size + size

    def at_once(self, data: bytes) -> Answer | Later | None:
        """The handshake (it only checks a token), or a small plain call to an instant operation."""
        if self.connected:
            kind, flags, annotations = _CALL_FIELDS.unpack_from(data)
            if kind != Pyro5.protocol.MSG_INVOKE or flags & _NOT_INSTANT or len(data) > INSTANT_BYTES:
                return LATER
            call = _CALL_START.match(data, _HEADER.size + annotations)
            if call is None or call[1] not in self.instant_ops:
                return LATER
        return self.handle(data)

    def handle(self, data: bytes) -> Answer | None:
        """Answer one message on a worker (in parts when its result has long strings)."""
        if not self.connected:
            message = _Message(data, self.link.caller, self.peer)
            try:
                self.connected = self.daemon._handshake(message)
            except Exception:  # its annotations could not be read, nor a failure answered: nothing to answer in
                self.link.gateway.refused(self.link.caller, "handshake")
                self.close_after = True
                return None
            self.close_after = not self.connected
            if self.connected:
                self.link.caller = message.netops_caller
            return b"".join(message.output)
        flags = _CALL_FIELDS.unpack_from(data)[1]
        if flags & Pyro5.protocol.FLAGS_KEEPSERIALIZED:
            # A SerializedBlob argument: Pyro5 reads its description with marshal.loads, which must never see a
            # caller's bytes (it is not safe against crafted data), and no method here takes one.
            kept = "arguments kept serialized (a SerializedBlob) are not accepted"
            return self._refuse(data, "parse_error", kept, INVALID_ARGUMENT)
        if flags & Pyro5.protocol.FLAGS_COMPRESSED:
            try:
                body = self._inflate(data)
            except zlib.error:
                return self._refuse(data, "parse_error", "the compressed body is not zlib", INVALID_ARGUMENT)
            if body is None:
                inflated = f"the request inflates to more than {self.limit} bytes"
                return self._refuse(data, "too_large", inflated, TOO_LARGE)
            data = body
        if not within_budget(data[_HEADER.size :]):
            return self._refuse(data, "decode_limit", f"arguments hold at most {MAX_ITEMS} values", INVALID_ARGUMENT)
        oneway = bool(flags & Pyro5.protocol.FLAGS_ONEWAY)
        if oneway:  # answered inline like any call; the answer is not sent (Pyro5 would start a thread)
            fields = list(_HEADER.unpack_from(data))
            fields[4] &= ~Pyro5.protocol.FLAGS_ONEWAY
            data = _HEADER.pack(*fields) + data[_HEADER.size :]
        if not oneway and not flags & _NOT_DIRECT:
            answer = self._direct(data)
            if answer is not None:
                return answer
        message = _Message(data, self.link.caller, self.peer)
        try:
            self.daemon.handleRequest(message)
        except Exception:  # raised before Pyro5's own handling starts: the message's annotations are unreadable
            return self._refuse(data, "parse_error", "the message could not be read", INVALID_ARGUMENT)
        if oneway:
            return None
        if message.long is not None and message.long.strings:
            return _spliced(b"".join(message.output), message.long)
        return b"".join(message.output)

    def _direct(self, data: bytes) -> Answer | None:
        """A plain call of one of the object's methods, answered as the daemon answers it, or None for any
        other message (the daemon's to answer). The daemon would make a uuid4, look the method up as an
        exposed attribute and build two message objects: a fifth of a small call's instructions."""
        kind, serializer_id, flags, seq, annotations_size, correlation_id = _DIRECT_FIELDS.unpack_from(data)
        if kind != Pyro5.protocol.MSG_INVOKE or serializer_id != _SERPENT.serializer_id:
            return None
        try:
            obj, name, args, kwargs = _SERPENT.loadsCall(data[_HEADER.size + annotations_size :])
        except Exception:  # the daemon decodes it again, and answers the failure as it always does
            return None
        searched = self.methods.get(name) if obj == OBJECT_ID and type(name) is str else None
        if searched is None or type(args) not in (tuple, list) or type(kwargs) is not dict:
            return None
        if kwargs and not all(type(key) is str for key in kwargs):
            return None  # Pyro5's method(**kwargs) refuses them
        if not flags & Pyro5.protocol.FLAGS_CORR_ID:
            correlation_id = _correlation_id()
        try:
            result = _called(self.gateway, name, args, kwargs, self.link.caller)
        except Exception as exc:  # the coded exception
            return self._exception(exc, seq, correlation_id)
        long = None
        if searched:
            long = LongStrings()
            result = long.take(result)  # put back by _spliced
        payload = _SERPENT.dumps(result)
        if len(payload) > Pyro5.api.config.MAX_MESSAGE_SIZE:  # as SendingMessage refuses it
            too_large = Pyro5.errors.ProtocolError(f"message too large ({len(payload)})")
            return self._exception(too_large, seq, correlation_id)
        # The header as Pyro5's SendingMessage writes a result's: no annotations, the correlation id flagged.
        header = _HEADER.pack(
            b"PYRO", _VERSION, _RESULT, serializer_id, _CORR_ID, seq, len(payload), 0, correlation_id, 0, _MAGIC
        )
        reply = header + payload
        if long is not None and long.strings:
            return _spliced(reply, long)
        return reply

    def _exception(self, exc: BaseException, seq: int, correlation_id: bytes) -> bytes:
        """The daemon's exception reply to a call answered by :meth:`_direct`."""
        Pyro5.api.current_context.correlation_id = uuid.UUID(bytes=correlation_id)
        message = _Message(b"", self.link.caller, self.peer)
        self.daemon._sendExceptionResponse(message, seq, _SERPENT.serializer_id, exc, [])
        return b"".join(message.output)

    def _refuse(self, data: bytes, reason: str, message: str, code: str) -> bytes | None:
        """Answer a request that is over a bound (nothing of it decoded) with ``code``, then close."""
        self.close_after = True
        self.link.gateway.refused(self.link.caller, reason)
        fields = _HEADER.unpack_from(data)
        if fields[4] & Pyro5.protocol.FLAGS_ONEWAY:
            return None
        reply = _Message(b"", self.link.caller)
        error = native_exception(GatewayError(code, message))
        self.daemon._sendExceptionResponse(reply, fields[5], _SERPENT.serializer_id, error, None)
        return b"".join(reply.output)

    def _inflate(self, data: bytes) -> bytes | None:
        """The message with its body inflated (at most the request cap), or None over the cap; zlib.error for a
        body that is not zlib."""
        fields = list(_HEADER.unpack_from(data))
        annotations = fields[7]
        body = data[_HEADER.size + annotations :]
        inflater = zlib.decompressobj()
        plain = inflater.decompress(body, self.limit + 1)
        if len(plain) > self.limit or inflater.unconsumed_tail:
            return None
        fields[4] &= ~Pyro5.protocol.FLAGS_COMPRESSED
        fields[6] = len(plain)
        return _HEADER.pack(*fields) + data[_HEADER.size : _HEADER.size + annotations] + plain


def _spliced(reply: bytes, long: LongStrings) -> list[bytes | Deferred]:
    """A reply with its long strings put back where serpent wrote their markers, its header's size mended."""
    head, *parts = long.splice(reply, b"'", b"'", _serpent_string)
    assert isinstance(head, bytes)  # the header comes before any marker
    fields = list(_HEADER.unpack_from(head))
    fields[6] += len(head) + sum(map(len, parts)) - len(reply)  # the payload's size
    return [_HEADER.pack(*fields) + head[_HEADER.size :], *parts]


def _serpent_string(text: str) -> Deferred:
    """``repr(text)`` as serpent writes it, in UTF-8, made a chunk at a time."""
    quote = '"' if "'" in text and '"' not in text else "'"  # repr's own choice for the whole string
    size = 2 + sum(_repr_size(piece, quote) for piece in pieces(text))
    made = (_repr_piece(piece, quote) for piece in pieces(text))
    return Deferred(size, itertools.chain((quote.encode(),), made, (quote.encode(),)))


def _repr_piece(piece: str, quote: str) -> bytes:
    """A piece of ``text`` as it is between the quotes of ``repr(text)`` (``quote`` being repr's choice)."""
    literal = repr(piece)
    inner = literal[1:-1]
    if literal[0] != quote:  # this piece alone holds ' and no ": repr quoted it with " and left ' bare
        inner = inner.replace("'", "\\'")
    return inner.encode()


# ASCII that repr leaves as it is (but '), so the size of an ASCII piece is counted, not made: a fifth of the time.
_PLAIN = bytes(c for c in range(0x20, 0x7F) if c not in b"\\'")


def _repr_size(piece: str, quote: str) -> int:
    """``len(_repr_piece(piece, quote))``."""
    if not piece.isascii():
        return len(_repr_piece(piece, quote))
    special = piece.encode("ascii").translate(None, _PLAIN)  # backslashes, ', controls, DEL: usually none
    if not special:
        return len(piece)
    backslashes, quotes = special.count(b"\\"), special.count(b"'")
    short = special.count(b"\t") + special.count(b"\n") + special.count(b"\r")  # written \t, \n, \r
    hexed = len(special) - backslashes - quotes - short  # written \xNN
    return len(piece) + backslashes + (quotes if quote == "'" else 0) + short + 3 * hexed


_NOT_INSTANT = Pyro5.protocol.FLAGS_COMPRESSED | Pyro5.protocol.FLAGS_ONEWAY | Pyro5.protocol.FLAGS_BATCH
# What _direct leaves to the daemon: batches, oneway calls, arguments kept serialized (or still compressed).
_NOT_DIRECT = _NOT_INSTANT | Pyro5.protocol.FLAGS_KEEPSERIALIZED
# A call's header: message type, serializer, flags, sequence number, annotations size, correlation id.
_DIRECT_FIELDS = struct.Struct("!6xBBHH4xI16s4x")
_SERPENT = Pyro5.serializers.serializers["serpent"]
_VERSION, _RESULT, _CORR_ID = Pyro5.protocol.PROTOCOL_VERSION, Pyro5.protocol.MSG_RESULT, Pyro5.protocol.FLAGS_CORR_ID
_MAGIC = Pyro5.protocol._magic_number
_INVOKE, _PING = Pyro5.protocol.MSG_INVOKE, Pyro5.protocol.MSG_PING


def _correlation_id() -> bytes:
    """A random version-4 UUID's bytes, as ``uuid.uuid4().bytes`` (without making a UUID object)."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    return bytes(raw)


class PyroCodec(Codec):
    """Pyro5's daemon serving the ``netops`` object, as a codec of the connection layer."""

    name = "pyro"

    def __init__(self, gateway: Gateway) -> None:
        super().__init__(gateway)
        settings = gateway.services.settings
        configure_pyro(settings.max_body_bytes * 4 // 3 + settings.max_request_bytes)
        # The daemon needs a connected socket to exist; it never reads or writes it.
        self._pair = socket.socketpair()
        self.daemon = _Daemon(connected_socket=self._pair[0], interface=DaemonObject)
        self.daemon.gateway = gateway
        self.daemon.register(_service_class(gateway)(), OBJECT_ID)
        self.instant_ops = frozenset(name.encode() for name in self.instant_names(UNDERSCORE))
        # Each public name, and whether its result is searched for long strings (not introspection's).
        self.methods = {name: name not in INTROSPECTION for name in gateway.method_names(UNDERSCORE)}
        self._name_server = ""

    def session(self, link: Link) -> Session:
        """A session for one connection."""
        return PyroSession(link, self)

    def endpoint(self, host: str, port: int, tls: bool) -> str:
        """The Pyro URI of the service object."""
        host = f"[{host}]" if ":" in host else host
        return f"PYRO:{OBJECT_ID}@{host}:{port}"

    def snippet(self, host: str, port: int, tls: bool) -> str:
        """A stock Pyro5 proxy calling resolve (the token goes in its connect handshake)."""
        proxy = f'Pyro5.api.Proxy("{self.endpoint(host, port, tls)}")'
        secure = TLS_LINE if tls else ""
        if self.gateway.services.tokens.required:
            return (
                f"import os, Pyro5.api\n{secure}proxy = {proxy}\n"
                'proxy._pyroHandshake = os.environ["NETOPS_TOKEN"]\nproxy.resolve("example.com")'
            )
        return f'import Pyro5.api\n{secure}{proxy}.resolve("example.com")'

    def register(self, name_server: str, uri: str) -> None:
        """Register the object as ``netops`` in the Pyro5 name server at ``HOST:PORT``."""
        host, _, port = name_server.rpartition(":")
        try:
            with Pyro5.api.locate_ns(host, int(port)) as ns:
                ns.register(OBJECT_ID, uri)
        except Pyro5.errors.PyroError as exc:
            raise OSError(f"cannot register with the Pyro5 name server at {name_server}: {exc}") from None
        self._name_server = name_server

    def close(self) -> None:
        """Leave the name server, if registered; close the daemon's placeholder socket."""
        if self._name_server:
            host, _, port = self._name_server.rpartition(":")
            try:
                with Pyro5.api.locate_ns(host, int(port)) as ns:
                    ns.remove(OBJECT_ID)
            except Pyro5.errors.PyroError:
                log.warning("could not remove the registration from the Pyro5 name server")
            self._name_server = ""
        for sock in self._pair:
            sock.close()
