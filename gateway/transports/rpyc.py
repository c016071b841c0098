"""RPyC: the registry's operations on a plain service root, ``rpyc.connect(host, port).root``.

Never classic mode: the root answers exactly the registry's names (underscore
style) and nothing else; pickle, public attributes and attribute writes are off.

RPyC sends only immutable builtins and tuples by value; dicts and lists
would travel as references into the other process.  So:

* **Arguments** that arrive as references to the caller's lists and dicts are
  copied in as their ``repr`` (one round trip back to the caller per argument),
  parsed with ``ast.literal_eval`` (no code runs), bounded in size and depth.
* **Results** go to a stock client by value wherever RPyC can carry them:
  scalars, and lists of scalars (nested too) as tuples, in the call's own
  reply.  A dict (or a list holding one) goes as a read-only view over a
  per-call copy (:class:`MappingView`, :class:`SequenceView`), which the
  client sees as a ``mappingproxy`` (a tuple): ``r["host"]``, ``len(r)``,
  iteration and ``dict(r)`` work as on a dict, every leaf comes by value, and
  no live server object is reachable through them.  Each access is a round
  trip; ``r.items()`` comes whole in one (``dict(r.items())``: two with the
  look-up), and ``str(r)`` is the whole result as JSON text, so
  ``json.loads(str(r))`` reads any result in one.
* The gateway's own client calls ``root["netops.json"](name, params)`` (no
  operation can be named with a dot): arguments and result as JSON text, by
  value both ways, one round trip and no callback into the client.

Errors: a builtin exception class whose message starts with the stable code
(:mod:`gateway.transports.exceptions`); no remote traceback is attached.

RPyC is a codec here: the connection layer cuts frames (``!LB`` length and
compressed flag, then a newline) with their size checked from the header,
inflates a compressed one to ``max_request_bytes`` and no further, and hands
complete frames to rpyc's ``Connection`` through :class:`_FrameChannel`.  A
caller the gateway could serve nothing (tokens required, no accepted token
line, introspection closed) may send only small, uncompressed frames, which
are never decoded: each request is answered ``unauthenticated`` from the
sequence number at its fixed offset (``conn.root`` already fails), a close
with None.
"""

from __future__ import annotations

import ast
import collections
import collections.abc
import json
import logging
import os
import struct
import threading
import zlib
from collections.abc import Iterable
from typing import Any

import rpyc
from rpyc.core import brine, consts, netref

from gateway.core import UNDERSCORE, Gateway
from gateway.errors import INVALID_ARGUMENT, METHOD_NOT_FOUND, GatewayError
from gateway.net.budget import within_budget
from gateway.net.session import INSTANT_BYTES, LATER, Codec, Deferred, Later, Link, Refuse, Session, each_piece
from gateway.observe import Caller
from gateway.transports.base import dump_json, guarded, internal_error
from gateway.transports.exceptions import EXCEPTIONS
from gateway.transports.long_strings import MARKER_LENGTH, LongStrings, holds_long, prefixed, utf8

__all__ = ["MappingView", "RPyCCodec", "SequenceView"]

log = logging.getLogger("gateway.rpyc")
# rpyc's connection chatter; the access log already records callers, so only its warnings are kept.
_server_log = logging.getLogger("gateway.rpyc.connections")
_server_log.setLevel(logging.WARNING)

MAX_ARGUMENT_ITEMS = 10_000  # values copied in from one call's arguments
MAX_ARGUMENT_DEPTH = 16
JSON_ENTRY = "netops.json"  # (name, '{"args": [...], "kwargs": {...}}') -> result as JSON text


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
    """What a stock client receives: by value wherever RPyC can carry it, a read-only view otherwise.

    Scalars and lists of them (nested too) become tuples, which RPyC sends whole in the reply; a dict, or
    a list holding one, becomes a view the client reads an access (one round trip) at a time.
    """
    if isinstance(value, list):
        carried = _by_value(value)
        return carried if carried is not None else SequenceView(value)
    if isinstance(value, dict):
        return MappingView(value)
    return value


def _by_value(value: Any) -> Any:
    """``value`` with its lists as tuples, or None when it holds a dict (which RPyC cannot send by value)."""
    if type(value) is list:
        items = []
        for item in value:
            carried = _by_value(item)
            if carried is None:
                return None
            items.append(carried)
        return tuple(items)
    return None if isinstance(value, dict) else value


class _View:
    """What both views share: read-only access to a per-call copy, and nothing else over RPyC."""

    __slots__ = ("_data",)
    _data: Any
    _builtin: str  # the read-only builtin type a stock client sees this view as (see ____id_pack__)

    @property
    def ____id_pack__(self) -> tuple[str, int, int]:
        """How rpyc names this object to the client: as the read-only builtin it behaves like.

        A stock client builds a proxy class for every object of a class of ours, asking the server for its
        methods first, and it asks again for every instance: a round trip on each result and on each view read
        out of one. It has classes ready for the builtins, so named as one the view costs nothing; calls still
        go to this object, by its own id, and answer only what :data:`_VIEW_ATTRS` allows."""
        return (self._builtin, id(type(self)), id(self))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, (_View, collections.abc.Collection)):
            return False
        try:
            return copy_in(other) == self._data
        except GatewayError:
            return False  # not plain data: not equal to a result

    def __hash__(self) -> int:
        raise TypeError("a result is not hashable")  # Python's own message would name this class

    def __repr__(self) -> str:
        return repr(self._data)

    def __str__(self) -> str:
        """The whole result as JSON text, by value: ``json.loads(str(r))`` reads it in one round trip."""
        return json.dumps(self._data, separators=(",", ":"))

    def _rpyc_getattr(self, name: str) -> Any:
        if name in _VIEW_ATTRS:
            found = getattr(self, name, None)  # a read one view has and the other not: Python's error names us
            if found is not None:
                return found
        raise AttributeError(f"{name!r} is not available on a result")


class MappingView(_View, collections.abc.Mapping):
    """A read-only dict as an RPyC caller sees it: a ``types.MappingProxyType`` (``isinstance(r, Mapping)``)."""

    __slots__ = ()
    _builtin = "builtins.mappingproxy"

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

    def values(self) -> tuple[Any, ...]:  # type: ignore[override]
        """Every value in the one reply (a nested struct as a view)."""
        return tuple(view(value) for value in self._data.values())

    def items(self) -> tuple[tuple[str, Any], ...]:  # type: ignore[override]
        """Every key and value in the one reply: ``dict(r.items())`` reads a struct in two round trips."""
        return tuple((key, view(value)) for key, value in self._data.items())

    def __reversed__(self) -> Any:
        return iter(tuple(reversed(self._data)))  # an iterator of a builtin type the client knows


class SequenceView(_View, collections.abc.Sequence):
    """A read-only list as an RPyC caller sees it: a tuple, as the lists it receives by value are."""

    __slots__ = ()
    _builtin = "builtins.tuple"

    def __init__(self, data: list[Any]) -> None:
        self._data = data

    def __getitem__(self, index: Any) -> Any:
        return view(self._data[index])  # a slice too: a list, by value or as a view

    def __len__(self) -> int:
        return len(self._data)


def copy_in(value: Any, limit: int = 1024 * 1024) -> Any:
    """Copy one argument into plain data: a list or dict that is a reference into the caller comes as its
    ``repr`` (one round trip), parsed by ``ast.literal_eval`` (which evaluates no code), then checked by :func:`plain`.
    """
    if isinstance(value, netref.BaseNetref):
        text = repr(value)
        if len(text) > limit or not within_budget(text.encode("utf-8", "replace"), MAX_ARGUMENT_ITEMS):
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
    """One connection's service: the caller, the gateway, and the calls the root forwards to it."""

    ALIASES = ["NETOPS"]

    def __init__(self, gateway: Gateway, caller: Caller) -> None:
        self._gateway = gateway
        self._limit = gateway.services.settings.max_request_bytes
        self._names = frozenset(gateway.method_names(UNDERSCORE))
        self._caller = caller

    def attribute(self, name: str) -> Any:
        """What the root answers for ``name``: an operation, the JSON entry, or a coded error."""
        if name in ("get_service_name", "get_service_aliases"):
            return getattr(self, name)
        if name in self._names:
            # A plain function: RPyC knows its class without asking (a class of our own would cost a
            # round trip on every lookup), and it holds nothing but the name and this connection's service.
            def operation(*args: Any, **kwargs: Any) -> Any:
                return self._call(name, args, kwargs)

            operation.__name__ = operation.__qualname__ = name
            operation.netops_operation = name  # type: ignore[attr-defined]  # (rpyc lets no client read it)
            return operation
        if name == JSON_ENTRY:
            return self._call_json
        raise native_exception(GatewayError(METHOD_NOT_FOUND, f"no method named {name[:100]!r}"))

    def _call(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        try:
            # Before any argument is copied in: copying a list or dict asks the caller for it (a call back).
            self._gateway.authorize(name, self._caller)
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
        return view(result)

    def _call_json(self, name: str, params: str) -> str:
        """Call ``name`` with arguments given as JSON text; the result as JSON text (both by value)."""
        try:
            if type(name) is not str or name not in self._names:
                raise GatewayError(METHOD_NOT_FOUND, f"no method named {str(name)[:100]!r}")
            if type(params) is not str or len(params) > self._limit:
                raise GatewayError(INVALID_ARGUMENT, "arguments must be JSON text within the request cap")
            if not within_budget(params.encode(), MAX_ARGUMENT_ITEMS):
                raise GatewayError(INVALID_ARGUMENT, "arguments are too large")
            try:
                decoded = json.loads(params)
                args, kwargs = decoded["args"], decoded["kwargs"]
            except (ValueError, TypeError, KeyError, RecursionError):
                raise GatewayError(INVALID_ARGUMENT, 'arguments must be {"args": [...], "kwargs": {...}}') from None
            if type(args) is not list or type(kwargs) is not dict:
                raise GatewayError(INVALID_ARGUMENT, 'arguments must be {"args": [...], "kwargs": {...}}')
            # Encoded once, and the result released before the text is made: a 10 MiB body is held twice at
            # most (json.dumps would escape it into a new str, then join that into another).
            return dump_json(self._gateway.call(name, args, kwargs, style=UNDERSCORE, caller=self._caller)).decode()
        except GatewayError as exc:
            raise native_exception(exc) from None
        except Exception as exc:  # a defect: internal, logged with an incident id, never shown
            raise native_exception(internal_error(exc, f"rpyc {name}")) from None


def root_class(gateway: Gateway) -> type:
    """The class of ``conn.root``: exactly one method per public name, so a stock client's netref knows them.

    RPyC builds the client's proxy class from the methods it finds on the root (one round trip, once a
    connection), and ``dir(root)``, ``help(root)`` and ``repr(root)`` show the operations and nothing of
    the server. Every name still goes through :meth:`NetOpsService.attribute` (a stock client looks each
    attribute up: ``root.resolve(...)`` is two round trips, a held ``f = root.resolve`` one a call).
    """

    def method(name: str) -> Any:
        def call(self: Any, /, *args: Any, **kwargs: Any) -> Any:
            return self._service.attribute(name)(*args, **kwargs)

        call.__name__ = call.__qualname__ = name
        call.__doc__ = gateway.lookup(name, UNDERSCORE).summary
        return call

    names = gateway.method_names(UNDERSCORE)
    namespace: dict[str, Any] = {name: method(name) for name in names}
    namespace.update(
        __slots__=("_service",),
        __module__="netops",
        __repr__=lambda self: "<netops gateway>",
        __dir__=lambda self: list(names),
        _rpyc_getattr=lambda self, name: self._service.attribute(name),
        get_service_name=lambda self: NetOpsService.get_service_name(),
        get_service_aliases=lambda self: NetOpsService.get_service_aliases(),
    )
    return type("NetOps", (), namespace)


_FRAME = struct.Struct("!LB")  # rpyc's frame header: payload length, compressed flag; a newline ends the frame
_FLUSHER = b"\n"
_COMPRESS_OVER = 3000  # rpyc compresses payloads larger than this (rpyc.core.channel.Channel)
# A long answer being compressed is held twice, as its strings and as most of their size compressed (~30 ms a
# MiB). That is work for a core: more at once than there are cores costs memory and is no faster.
_COMPRESSING = threading.BoundedSemaphore(os.cpu_count() or 1)
UNAUTHENTICATED_FRAME = 4096  # what a caller without an accepted token may send in one frame (never decoded)
_TUP2 = 0x11  # brine's tag of a pair
_INT_TEXT = 0x16  # brine's tag of an int as decimal text (a one-byte length first)
_IMM_INTS = range(0x20, 0xF0)  # brine's one-byte ints: the value plus 0x50


class _FrameChannel:
    """rpyc's channel interface over frames the connection layer has already cut, checked and inflated.

    ``recv`` blocks on a worker (rpyc waits here for a client's reply to a
    callback); the loop thread only appends.
    """

    def __init__(self, link: Link) -> None:
        self.link = link
        self.frames: collections.deque[bytes] = collections.deque()
        self.ready = threading.Condition()
        self.closed = False

    def push(self, frames: list[bytes]) -> None:
        """Append complete frames (loop thread)."""
        with self.ready:
            self.frames.extend(frames)
            self.ready.notify_all()

    def poll(self, timeout: Any) -> bool:
        """True when a frame is waiting, within ``timeout`` seconds (an rpyc Timeout or a number)."""
        seconds = timeout.timeleft() if hasattr(timeout, "timeleft") else timeout
        with self.ready:
            if not self.frames and not self.closed:
                self.ready.wait(seconds)
            return bool(self.frames) or self.closed

    def recv(self) -> bytes:
        """The next frame (EOFError once the connection has closed)."""
        with self.ready:
            if not self.frames:
                raise EOFError("connection closed")
            return self.frames.popleft()

    def send(self, data: bytes) -> None:
        """Frame ``data`` as rpyc does (compressed when large) and write it."""
        compressed = 0
        if len(data) > _COMPRESS_OVER:
            data, compressed = zlib.compress(data, 1), 1
        self.link.send([_FRAME.pack(len(data), compressed), data, _FLUSHER])

    def send_parts(self, parts: Iterable[bytes | Deferred]) -> None:
        """Frame a large message given in parts, compressed a piece at a time (no copy of it whole).

        rpyc frames a message compressed, with its length first: unlike the
        other codecs' deferred parts, these are made here, at once.
        """
        with _COMPRESSING:
            compressor = zlib.compressobj(1)
            out = [chunk for piece in each_piece(parts) if (chunk := compressor.compress(piece))]
            out.append(compressor.flush())
        self.link.send([_FRAME.pack(sum(map(len, out)), 1), *out, _FLUSHER])

    def close(self) -> None:
        """Close the connection; a worker waiting in ``poll`` wakes up."""
        with self.ready:
            if self.closed:
                return
            self.closed = True
            self.ready.notify_all()
        self.link.close()

    def fileno(self) -> int:
        """No descriptor of its own: the layer owns the socket."""
        return -1


_REQUEST = bytes([consts.MSG_REQUEST])
_INSTANT_HANDLERS = frozenset(
    {
        consts.HANDLE_PING, consts.HANDLE_GETROOT, consts.HANDLE_GETATTR, consts.HANDLE_DEL, consts.HANDLE_INSPECT,
        consts.HANDLE_REPR, consts.HANDLE_STR, consts.HANDLE_DIR, consts.HANDLE_HASH, consts.HANDLE_CALL,
        consts.HANDLE_CALLATTR, consts.HANDLE_CLOSE,  # a client's close() waits for its answer
    }
)  # fmt: skip


def _by_value_box(box: Any) -> bool:
    """Whether an rpyc box holds only values and our own objects (no reference into the client)."""
    if type(box) is not tuple or len(box) != 2:
        return False
    label, value = box
    if label in (consts.LABEL_VALUE, consts.LABEL_LOCAL_REF):
        return True
    return label == consts.LABEL_TUPLE and type(value) is tuple and all(_by_value_box(item) for item in value)


_BRINE_MARKER = brine.TAG_UNICODE + brine.TAG_STR_L1 + bytes([MARKER_LENGTH])  # a marker's encoding, before its text


def _brine_string(text: str) -> Deferred:
    """A long string as brine encodes it (the length of its UTF-8 in four bytes), a chunk at a time."""
    data = utf8(text)
    return prefixed(brine.TAG_UNICODE + brine.TAG_STR_L4 + brine.I4.pack(data.size), data)


def _request_header(frame: bytes) -> tuple[int, int] | None:
    """The sequence number and handler of a request frame, read at their fixed offsets; None for anything
    else. A refused caller's frame is read this far and no further: its arguments are never decoded."""
    if len(frame) < 5 or frame[0] != consts.MSG_REQUEST or frame[1] != _TUP2:
        return None  # a request is (seq, (handler, args)) after its message byte
    if frame[2] in _IMM_INTS:
        seq, at = frame[2] - 0x50, 3
    elif frame[2] == _INT_TEXT and 0 < frame[3] <= 20 and frame[4 : 4 + frame[3]].isdigit():
        seq, at = int(frame[4 : 4 + frame[3]]), 4 + frame[3]
    else:
        return None
    if frame[at : at + 1] != bytes([_TUP2]) or len(frame) <= at + 1 or frame[at + 1] not in _IMM_INTS:
        return None
    return seq, frame[at + 1] - 0x50


class _Refused:
    """A request of a caller the gateway serves nothing: answered from its header alone."""

    __slots__ = ("handler", "seq")

    def __init__(self, seq: int, handler: int) -> None:
        self.seq = seq
        self.handler = handler


class _Instant:
    """A request frame, decoded, that is answered on the loop thread."""

    __slots__ = ("raw", "seq")

    def __init__(self, seq: int, raw: Any) -> None:
        self.seq = seq
        self.raw = raw


class RPyCSession(Session):
    """Cuts frames on the loop; one worker at a time drives rpyc's ``Connection`` over them."""

    def __init__(self, link: Link, codec: RPyCCodec) -> None:
        super().__init__(link)
        settings = link.settings
        self.limit = settings.max_request_bytes
        self.refused = link.gateway.refusal(link.caller) is not None
        self.buffer = bytearray()
        self.channel = _FrameChannel(link)
        self.draining = False
        service = self.service = NetOpsService(link.gateway, link.caller)
        self.conn = service._connect(self.channel, codec.config)
        self._rpyc_send, self.conn._send = self.conn._send, self._send  # type: ignore[method-assign]
        self.root_class = codec.root_class
        self.instant_ops = codec.instant_ops
        root = codec.root_class()
        root._service = service
        self.conn._HANDLERS[consts.HANDLE_GETROOT] = lambda conn: root  # the root clients see; not the service

    def receive(self, data: bytes) -> list[Any]:
        """Complete frames: an instant one as a request of its own, the others handed to rpyc's channel
        (with a request for a worker when none is driving the connection)."""
        self.buffer += data
        frames = []
        while len(self.buffer) >= _FRAME.size:
            length, compressed = _FRAME.unpack_from(self.buffer)
            if self.refused and (compressed or length > UNAUTHENTICATED_FRAME):
                raise Refuse("unauthenticated")
            if length > self.limit:
                raise Refuse("too_large")
            end = _FRAME.size + length + len(_FLUSHER)
            if len(self.buffer) < end:
                break
            frame = bytes(self.buffer[_FRAME.size : end - len(_FLUSHER)])
            del self.buffer[:end]
            frames.append(self._inflate(frame) if compressed else frame)
        if self.refused:
            return [self._refused_request(frame) for frame in frames]
        requests: list[Any] = []
        for frame in frames:
            # Only this thread sets draining, and a worker clears it (under the lock) only once the channel is
            # empty: not draining, no worker drives the connection and nothing waits in the channel, so an
            # instant frame is looked at without the lock (a worker may still be clearing it: then the frame
            # waits in the channel, in order, as below).
            if not self.draining:
                instant = self._instant_request(frame)
                if instant is not None:
                    requests.append(instant)  # answered on the loop, in order with the rest
                    continue
            with self.channel.ready:
                self.channel.frames.append(frame)
                self.channel.ready.notify_all()
                if not self.draining:
                    self.draining = True
                    requests.append(None)  # a worker drives rpyc until the channel is empty
        return requests

    def _send(self, msg: int, seq: int, args: Any) -> None:
        """rpyc's ``Connection._send``, with long strings out of brine's way (see long_strings)."""
        if not holds_long(args):  # nearly every message: nothing is made for its long strings
            self._rpyc_send(msg, seq, args)
            return
        long = LongStrings()
        taken = long.take(args)
        data = bytes([msg]) + brine.dump((seq, taken))
        self.channel.send_parts(long.splice(data, _BRINE_MARKER, b"", _brine_string))

    def _refused_request(self, frame: bytes) -> _Refused:
        header = _request_header(frame)
        if header is None:
            raise Refuse("unauthenticated")  # not a request rpyc would send first: nothing to answer
        return _Refused(*header)

    def _instant_request(self, frame: bytes) -> _Instant | None:
        """A request rpyc can answer without waiting on anything: a look-up, a release, a read of a view, or
        a call of an instant operation, with every argument by value (a reference into the client would
        make rpyc ask the client about it). None for anything else, which goes to a worker."""
        if len(frame) > INSTANT_BYTES or frame[:1] != _REQUEST:
            return None
        try:
            seq, raw = brine.load(frame[1:])
            handler, boxed = raw
        except Exception:
            return None  # rpyc itself will answer what it cannot read, on a worker
        if handler not in _INSTANT_HANDLERS or not _by_value_box(boxed):
            return None
        if handler in (consts.HANDLE_CALL, consts.HANDLE_CALLATTR):
            try:
                unboxed = self.conn._unbox(boxed)  # values and our own objects only: unboxing asks nothing
                if not self._instant_call(handler, unboxed):
                    return None
            except Exception:
                return None  # not a call as rpyc sends one: a worker lets rpyc answer it
            # Handed to rpyc's dispatch as one boxed value: it unboxes that in one step, not the whole again.
            raw = (handler, (consts.LABEL_VALUE, unboxed))
        return _Instant(seq, raw)

    def _instant_call(self, handler: int, unboxed: Any) -> bool:
        target, *rest = unboxed
        service, names = self.service, self.instant_ops
        if isinstance(target, _View):
            return handler == consts.HANDLE_CALLATTR  # a read of the per-call copy
        if getattr(target, "__func__", None) is NetOpsService._call_json and target.__self__ is service:
            args = rest[0]  # the JSON entry: (name, params as JSON text)
            return bool(args) and args[0] in names
        if handler == consts.HANDLE_CALLATTR:
            return type(target) is self.root_class and rest[0] in names
        return getattr(target, "netops_operation", None) in names

    def _inflate(self, frame: bytes) -> bytes:
        inflater = zlib.decompressobj()
        try:
            data = inflater.decompress(frame, self.limit + 1)
        except zlib.error:
            raise Refuse("parse_error") from None
        if len(data) > self.limit or inflater.unconsumed_tail:
            raise Refuse("too_large")
        return data

    def at_once(self, request: _Instant | _Refused | None) -> Later | None:
        """Answer a request :meth:`receive` found could be answered on the loop (the others are None)."""
        if request is None:
            return LATER
        self.handle(request)  # rpyc writes the answer itself
        return None

    def handle(self, request: _Instant | _Refused | None) -> None:
        """Answer an instant or refused request, or serve frames until none is waiting (a callback's reply
        is read here too)."""
        if isinstance(request, _Refused):
            self._refuse(request)
            return None
        if request is not None:
            self.conn._dispatch_request(request.seq, request.raw)  # rpyc replies through the channel
            return None
        try:
            while True:
                with self.channel.ready:
                    if not self.channel.frames or self.channel.closed:
                        self.draining = False
                        closed = self.channel.closed
                        break
                self.conn.serve(0)
        except Exception as exc:
            if not isinstance(exc, EOFError):
                log.debug("rpyc connection ended with an error", exc_info=True)
            with self.channel.ready:
                self.draining = False
            closed = self.close_after = True
        if closed:
            self._release()
        return None

    def _refuse(self, request: _Refused) -> None:
        """Answer a refused caller's request with its coded error; its close with None, and close."""
        conn = self.conn
        if request.handler == consts.HANDLE_CLOSE:  # a stock client's close() waits for this answer
            conn._send(consts.MSG_REPLY, request.seq, conn._box(None))
            self.close_after = True
            return
        gateway, caller = self.link.gateway, self.link.caller
        refusal = gateway.refusal(caller)
        assert refusal is not None
        gateway.refused(caller, "unauthenticated")
        error = native_exception(refusal)
        conn._send(consts.MSG_EXCEPTION, request.seq, conn._box_exc(type(error), error, None))

    def connection_lost(self) -> None:
        """Wake a worker waiting for this client; release the connection unless a worker still drives it."""
        with self.channel.ready:
            self.channel.closed = True
            self.channel.ready.notify_all()
            driven = self.draining
        if not driven:
            self._release()

    def _release(self) -> None:
        """Let rpyc drop what the connection held; marks it closed, so it never waits on a close handshake."""
        self.conn.__dict__.pop("_send", None)  # rpyc's own again: the connection no longer holds this session
        try:
            self.conn._cleanup()
        except Exception:  # rpyc cleans up twice when both ends close at once
            pass


class RPyCCodec(Codec):
    """RPyC's protocol engine as a codec of the connection layer (no rpyc server class)."""

    name = "rpyc"
    token_line = True
    quick_ack = True

    def __init__(self, gateway: Gateway) -> None:
        super().__init__(gateway)
        settings = gateway.services.settings
        self.config = {
            **PROTOCOL_CONFIG,
            "sync_request_timeout": settings.timeout + 5,
            "logger": _server_log,
            "bind_threads": False,  # (RPYC_BIND_THREADS in the environment): RPyCSession._send frames plainly
        }
        self.root_class = root_class(gateway)
        self.instant_ops = self.instant_names(UNDERSCORE)

    def session(self, link: Link) -> Session:
        """A session for one connection."""
        return RPyCSession(link, self)

    def endpoint(self, host: str, port: int, tls: bool) -> str:
        """How to connect."""
        return f'rpyc.connect("{host}", {port}).root'

    def snippet(self, host: str, port: int, tls: bool) -> str:
        """A stock rpyc client calling resolve (after the token line when the gateway requires a token)."""
        token = self.gateway.services.tokens.required
        if not (token or tls):
            return f'import json, rpyc\njson.loads(str(rpyc.connect("{host}", {port}).root.resolve("example.com")))'
        return (
            f"import json, {'os, ' if token else ''}socket, {'ssl, ' if tls else ''}rpyc\n"
            "from rpyc.core.stream import SocketStream\n"
            f'sock = socket.create_connection(("{host}", {port}))\n'
            + (
                f'sock = ssl.create_default_context().wrap_socket(sock, server_hostname="{host}")  # or SSL_CERT_FILE\n'
                if tls
                else ""
            )
            + ('sock.sendall(b"NETOPS-TOKEN " + os.environ["NETOPS_TOKEN"].encode() + b"\\n")\n' if token else "")
            + 'json.loads(str(rpyc.connect_stream(SocketStream(sock)).root.resolve("example.com")))'
        )
