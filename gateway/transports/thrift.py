"""Thrift: service ``NetOps`` of the IDL generated from the registry (see :mod:`gateway.idl`).

Binary protocol on a buffered transport by default (what a stock Apache
Thrift client speaks); framed and compact on request.  Types: result dicts
become the IDL's structs, arrays lists, ``headers`` a ``map<string,
string>``.  Errors: every failure reaches the client as the declared
``NetOpsError {code, message}`` (a missing or ill-typed field is
``invalid_argument``), an unknown function as ``TApplicationException``;
thriftpy2 would otherwise drop the connection.

thriftpy2 has no decode limits (a 20-byte message can claim a 2 GiB string or
a 2**31-element list of VOID that takes minutes to skip), so each message is
first walked by :mod:`gateway.transports._thrift_scan` on the raw bytes, with
a work budget; only a complete message that passed is decoded (by thriftpy2's
Cython protocol, from memory).  A caller the gateway could serve nothing
(tokens required, introspection closed, no token) gets ``unauthenticated``
after its message header is read, and nothing else of its message is decoded.
"""

from __future__ import annotations

import functools
import logging
import struct
from collections.abc import Callable
from typing import Any, NamedTuple

from thriftpy2.protocol import TBinaryProtocol, TCompactProtocol
from thriftpy2.thrift import TApplicationException, TMessageType, TProcessor
from thriftpy2.transport import TMemoryBuffer

from gateway.core import SYSTEM_NAMES, UNDERSCORE, Failed, Gateway
from gateway.errors import INVALID_ARGUMENT, GatewayError
from gateway.idl import thrift_module
from gateway.net.session import INSTANT_BYTES, LATER, Answer, Codec, Deferred, Later, Link, Refuse, Session
from gateway.registry import Operation, Schema
from gateway.transports._thrift_scan import BinaryScanner, CompactScanner, ScanError
from gateway.transports.base import internal_error
from gateway.transports.long_strings import MARKER_LENGTH, LongStrings, prefixed, utf8, varint

__all__ = ["ThriftCodec"]

log = logging.getLogger("gateway.thrift")

_I32 = struct.Struct("!i")  # a frame's size, a string's length, a sequence id
_CALL = _I32.pack(-0x7FFEFFFF)  # a strict message header's version and type: 0x80010001, a CALL


def _to_thrift(schema: Schema, module: Any) -> Callable[[Any], Any]:
    """A converter from plain result data to the IDL's structs, built once per schema."""
    if schema.kind == "struct":
        cls = getattr(module, schema.name)
        fields = [(f.name, _to_thrift(f.schema, module)) for f in schema.fields]
        return lambda value: cls(**{name: convert(value[name]) for name, convert in fields})
    if schema.kind == "array":
        assert schema.item is not None
        item = _to_thrift(schema.item, module)
        return lambda value: [item(v) for v in value]
    if schema.kind == "map":
        assert schema.item is not None
        item = _to_thrift(schema.item, module)
        return lambda value: {k: item(v) for k, v in value.items()}
    return lambda value: value


def _from_thrift(value: Any) -> Any:
    """Arguments arrive as plain lists, dicts and scalars, except structs (unused in parameters today)."""
    if hasattr(value, "thrift_spec"):
        return {spec[1]: _from_thrift(getattr(value, spec[1])) for spec in value.thrift_spec.values()}
    return value


def encode(oprot: Any, name: str, seqid: int, result: Any) -> None:
    """The reply to call ``seqid`` of ``name``: its result struct (``success`` or ``error`` set)."""
    oprot.write_message_begin(name, TMessageType.REPLY, seqid)
    oprot.write_struct(result)  # what result.write(oprot) does, without its frame (every reply's path)
    oprot.write_message_end()


def string_length(size: int, compact: bool) -> bytes:
    """A string's length prefix: a varint in the compact protocol, an i32 in the binary one."""
    return varint(size) if compact else _I32.pack(size)


def string_parts(text: str, compact: bool) -> Deferred:
    """A string as the protocol encodes it: its length prefix, then its UTF-8 (a chunk at a time)."""
    data = utf8(text)
    return prefixed(string_length(data.size, compact), data)


def splice(reply: bytes, long: LongStrings, compact: bool) -> list[bytes | Deferred]:
    """An encoded reply with its long strings put back where their markers are."""
    form = functools.partial(string_parts, compact=compact)
    return long.splice(reply, string_length(MARKER_LENGTH, compact), b"", form)


class _Handler:
    """What the IDL's structs need beyond the core's plain results: results made into structs (their long
    strings left out, see ThriftSession.handle), the multicall's ``Outcome`` union, and every failure as
    ``NetOpsError``."""

    def __init__(self, gateway: Gateway, module: Any) -> None:
        self.gateway = gateway
        self.module = module
        self.ops = [op for op in gateway.registry if op.name not in SYSTEM_NAMES]
        self.encode = {op.name: _to_thrift(op.result, module) for op in self.ops}

    def _error(self, exc: GatewayError) -> Exception:
        return self.module.NetOpsError(code=exc.code, message=str(exc))

    def failure(self, exc: Exception, where: str) -> Exception:
        """The declared NetOpsError for any failure: a stray exception is ``internal`` (logged, never shown)."""
        return self._error(exc if isinstance(exc, GatewayError) else internal_error(exc, f"thrift {where}"))

    def result(self, session: ThriftSession, name: str, result: Any) -> Any:
        """The IDL struct of an operation's result, its long strings left out of the encoding."""
        if session.long is None:  # made for the first result of a message: introspection needs none
            session.long = LongStrings()
        return self.encode[name](session.long.take(result))

    def multicall(self, session: ThriftSession, calls: list[Any] | None) -> list[Any]:
        """``system.multicall``: each ``Call`` union's one field, run through the core; an ``Outcome`` each
        (``calls`` None: a call that left the optional field out)."""
        requests: list[dict[str, Any]] = []
        chosen: list[Operation | None] = []
        for call in calls or []:
            set_fields = [op for op in self.ops if getattr(call, op.name, None) is not None]
            if len(set_fields) != 1:
                chosen.append(None)
                continue
            op = set_fields[0]
            args = _from_thrift(getattr(call, op.name))
            requests.append({"methodName": op.name, "params": {k: v for k, v in args.items() if v is not None}})
            chosen.append(op)
        results = iter(self.gateway.call_many(requests, UNDERSCORE, session.link.caller))
        outcomes = []
        for picked in chosen:
            if picked is None:
                error = GatewayError(INVALID_ARGUMENT, "a Call must set exactly one field")
                outcomes.append(self.module.Outcome(error=self._error(error)))
                continue
            result = next(results)
            if isinstance(result, Failed):
                outcomes.append(self.module.Outcome(error=self._error(result.error)))
            else:
                outcomes.append(self.module.Outcome(**{picked.name: self.result(session, picked.name, result)}))
        return outcomes


class _Buffers(NamedTuple):
    """A message's buffer and the protocol that reads it, and the answer's buffer and the protocol that writes it."""

    inbound: Any
    iprot: Any
    outbound: Any
    oprot: Any


# Buffers that held no more than this go back to be used again; larger ones are freed, not kept grown.
SPARE_BYTES = 64 * 1024


class _Api(NamedTuple):
    args: Any  # the IDL's <name>_args struct
    result: Any  # <name>_result
    names: tuple[str, ...]  # the arguments, in the IDL's order
    name: str  # the function's, the operation's public name in the underscore style
    struct: bool  # whether the result is made into the IDL's structs (an operation's; introspection's is plain)


class ThriftCodec(Codec):
    """The Thrift service as a codec of the connection layer."""

    name = "thrift"
    token_line = True
    typed = True

    def __init__(self, gateway: Gateway) -> None:
        super().__init__(gateway)
        settings = gateway.services.settings
        self.module = thrift_module(gateway.registry)
        self.handler = _Handler(gateway, self.module)
        self.processor = TProcessor(self.module.NetOps, self.handler)
        self.framed = settings.thrift_transport == "framed"
        self.compact = settings.thrift_protocol == "compact"
        # The configured protocol's class: each message is read and written by one made over its buffer.
        self.protocol = TCompactProtocol if self.compact else TBinaryProtocol
        # Buffers made once and used again (see ThriftSession.handle): making two buffers and their protocols
        # for every message cost 5.7K instructions a call (a 4 KiB allocation each), a tenth of a small call.
        # As many exist as threads answer at once; list.pop and append are atomic, so threads share the list.
        self.spare: list[_Buffers] = []
        self.instant_ops = frozenset(name.encode() for name in self.instant_names(UNDERSCORE))
        service = self.module.NetOps
        self.apis = {  # what TProcessor works out on every call: the args and result structs
            api: _Api(
                getattr(service, f"{api}_args"),
                getattr(service, f"{api}_result"),
                tuple(spec[1] for spec in getattr(service, f"{api}_args").thrift_spec.values()),
                api,
                api in self.handler.encode,
            )
            for api in service.thrift_services
        }
        # The instant calls without arguments (every listing), each by the bytes of its call but the sequence
        # id and STOP (binary, unframed): ThriftSession.answer_read answers them as they are read, with no
        # walk, decoding or hand-over between the read and the core. Once the client's process has run on
        # the core, each step costs cache misses more than instructions: the steps saved were 7% of a
        # listing's p50 (interleaved runs against the bare server, one core).
        self.listings = {
            _CALL + _I32.pack(len(api)) + api.encode(): self.apis[api]
            for api in self.apis
            if not (self.compact or self.framed) and not self.apis[api].names and api.encode() in self.instant_ops
        }

    def new_buffers(self) -> _Buffers:
        """Buffers for one message and its answer, when no spare ones are left."""
        inbound, outbound = TMemoryBuffer(), TMemoryBuffer()
        return _Buffers(inbound, self.protocol(inbound), outbound, self.protocol(outbound))

    def process(self, data: bytes, raw_name: bytes, seqid: int, session: ThriftSession) -> bytes:
        """Decode a call, run it for ``session`` and return its encoded reply (unframed, long strings as their
        markers): thriftpy2's ``TProcessor.process`` with what it looks up on every call looked up once (2 of
        its 9.5 us a call, measured in a loop), and the core called with the session's caller.

        Raises what thriftpy2 raises on a message it cannot read (a field of the wrong type, say). Its
        buffers are then not used again: a protocol stopped midway may keep state (the compact one does).
        """
        spare = self.spare
        try:  # (inline: two method calls would cost half of what using buffers again saves)
            buffers = spare.pop()
            buffers.outbound.clean()
        except IndexError:
            buffers = self.new_buffers()
        oprot = buffers.oprot
        iprot = buffers.iprot
        buffers.inbound.setvalue(data)
        name, _, seqid = iprot.read_message_begin()
        api = self.apis.get(name)
        if api is not None:
            args = api.args()
            args.read(iprot)
            iprot.read_message_end()
        if api is None:  # not in the IDL: thriftpy2's own answer (TApplicationException UNKNOWN_METHOD)
            self.processor.process(self.protocol(TMemoryBuffer(data)), oprot)
        else:
            result = api.result()
            try:  # straight to the core: no handler method between (a frame less on every call)
                if name == "system_multicall":
                    result.success = self.handler.multicall(session, args.calls)
                else:
                    # An absent optional field arrives as None: the operation's default applies.
                    kwargs = {arg: _from_thrift(v) for arg in api.names if (v := getattr(args, arg)) is not None}
                    value = self.gateway.call(name, (), kwargs, style=UNDERSCORE, caller=session.link.caller)
                    result.success = self.handler.result(session, name, value) if api.struct else value
            except Exception as exc:  # every method declares NetOpsError: any failure is answered as one
                result.error = self.handler.failure(exc, name)
            encode(oprot, name, seqid, result)
        reply: bytes = buffers.outbound.getvalue()
        if len(reply) <= SPARE_BYTES and len(data) <= SPARE_BYTES:
            spare.append(buffers)  # else freed: not kept grown
        return reply

    def session(self, link: Link) -> Session:
        """A session for one connection."""
        return ThriftSession(link, self)

    def endpoint(self, host: str, port: int, tls: bool) -> str:
        """Where a Thrift client connects."""
        return f"{host}:{port} (service NetOps, idl/netops.thrift)"

    def snippet(self, host: str, port: int, tls: bool) -> str:
        """thriftpy2 calling resolve, with the IDL the gateway serves (after the token line when required)."""
        load = (
            "# netops.thrift: GET /idl/netops.thrift on the gateway's HTTP ports (or: netops methods --format thrift)\n"
            'netops = thriftpy2.load("netops.thrift", module_name="netops_thrift")\n'
        )
        token = self.gateway.services.tokens.required
        if not (token or tls):
            return (
                f"import thriftpy2\nfrom thriftpy2.rpc import make_client\n{load}"
                f'make_client(netops.NetOps, "{host}", {port}).resolve("example.com")'
            )
        return (
            f"import {'os, ' if token else ''}socket, {'ssl, ' if tls else ''}thriftpy2\n"
            "from thriftpy2.protocol import TBinaryProtocol\n"
            "from thriftpy2.thrift import TClient\nfrom thriftpy2.transport import TBufferedTransport, TSocket\n"
            f'{load}sock = socket.create_connection(("{host}", {port}))\n'
            + (
                f'sock = ssl.create_default_context().wrap_socket(sock, server_hostname="{host}")  # or SSL_CERT_FILE\n'
                if tls
                else ""
            )
            + ('sock.sendall(b"NETOPS-TOKEN " + os.environ["NETOPS_TOKEN"].encode() + b"\\n")\n' if token else "")
            + 'TClient(netops.NetOps, TBinaryProtocol(TBufferedTransport(TSocket(sock=sock)))).resolve("example.com")'
        )


class ThriftSession(Session):
    """Frames messages by walking them (or by their frame size), then decodes and answers each."""

    answers_reads = True

    def __init__(self, link: Link, codec: ThriftCodec) -> None:
        super().__init__(link)
        self.codec = codec
        self.limit = link.settings.max_request_bytes
        self.scanner = (CompactScanner if codec.compact else BinaryScanner)(self.limit)
        # A whole call of scalar arguments found in one loop (the binary encoding's, unframed; the compact one
        # has none).
        self.whole = self.scanner.whole if isinstance(self.scanner, BinaryScanner) and not codec.framed else None
        self.buffer = bytearray()
        self.refused = link.gateway.refusal(link.caller) is not None
        self.over = False  # a message went over the work budget
        self.long: LongStrings | None = None  # the long strings of the answer being made, once it has a result

    def receive(self, data: bytes) -> list[Any]:
        """Complete, scanned messages (with their frame header stripped)."""
        if self.over:
            return []  # the last message was over budget: answered, and the connection is closing
        if not self.buffer and not self.codec.framed and not self.refused:
            end = self.whole(data) if self.whole is not None else None
            if end == len(data):  # nearly every read: one whole call, handed on as it is (not copied)
                return [(data, self.scanner.name, self.scanner.seqid, None)]
            if end is None:
                at_once = self._walk(data)
                if at_once is not None:
                    return at_once
        self.buffer += data
        messages: list[Any] = []
        while self.buffer:
            offset = 0
            if self.codec.framed:
                if len(self.buffer) < 4:
                    break
                (size,) = _I32.unpack_from(self.buffer)
                if not 0 < size <= self.limit:
                    raise Refuse("too_large" if size > 0 else "parse_error")
                offset = 4
            try:
                with memoryview(self.buffer) as whole, whole[offset:] as view:  # released before the buffer changes
                    end = self._scan(view)
            except ScanError as exc:
                if not self.scanner.header:
                    raise Refuse("parse_error") from None
                # The method and sequence id are known: answer too_large for it, read nothing more.
                self.over = True
                self.buffer.clear()
                return [(None, self.scanner.name, self.scanner.seqid, exc)]
            if end is None:
                break
            if self.codec.framed and end != size:
                raise Refuse("parse_error")
            messages.append((bytes(self.buffer[offset : offset + end]), self.scanner.name, self.scanner.seqid, None))
            del self.buffer[: offset + end]
            self.scanner.reset()
            if self.refused:
                break  # answered with unauthenticated, then closed
        return messages

    def _walk(self, data: bytes) -> list[Any] | None:
        """What ``data`` holds when nothing came before it and it is not one whole call of scalars (see
        ``whole``): walked where it lies, and one whole message handed on as it is, not copied into the buffer
        and out again (a third of what receiving a small call cost). None for anything else, which the
        buffer's loop walks from the start."""
        try:
            end = self.scanner.scan(data)
        except ScanError:
            end = -1  # the loop walks it again and refuses it as it does
        if end is None:  # the start of a longer message: the walk goes on from here, in the buffer
            self.buffer += data
            return []
        if end != len(data):
            self.scanner.reset()
            return None
        message = (data, self.scanner.name, self.scanner.seqid, None)
        self.scanner.reset()
        return [message]

    def _scan(self, view: memoryview) -> int | None:
        if self.refused:
            # Nothing of a refused caller's message is decoded past its header: answer and close.
            return self.scanner.pos if self.scanner.header or self.scanner._header(view) else None
        return self.scanner.scan(view)

    def answer_read(self, data: bytes) -> Answer | Later:
        """The answer to a read that is one whole call of an instant operation and nothing more (binary,
        unframed), made here, with no step between the read and the call. A call without arguments (every
        listing) is told by its bytes alone (strict header, name, sequence id, STOP: nothing to walk or
        decode) and run and encoded in this one step; one with arguments is walked as :meth:`receive`
        walks it, then decoded and answered as :meth:`handle` does."""
        if self.whole is None or self.buffer or self.refused or len(data) > INSTANT_BYTES or data[:4] != _CALL:
            return LATER
        codec = self.codec
        listing = codec.listings.get(data[:-5])
        if listing is not None and data[-1] == 0:
            spare = codec.spare
            try:
                buffers = spare.pop()
                buffers.outbound.clean()
            except IndexError:
                buffers = codec.new_buffers()
            result = listing.result()
            try:
                result.success = self.link.gateway.call(listing.name, style=UNDERSCORE, caller=self.link.caller)
            except Exception as exc:  # declared as NetOpsError, as every failure is
                result.error = codec.handler.failure(exc, listing.name)
            encode(buffers.oprot, listing.name, _I32.unpack_from(data, len(data) - 5)[0], result)
            reply: bytes = buffers.outbound.getvalue()
            spare.append(buffers)
            return reply
        size = _I32.unpack_from(data, 4)[0] if len(data) >= 13 else -1
        name = data[8 : 8 + size]
        if name not in codec.instant_ops or self.whole(data) != len(data):
            return LATER  # not instant, not whole, or more than one message: receive frames it
        try:  # (an instant call's result holds no long string: introspection's are plain)
            return codec.process(data, name, _I32.unpack_from(data, 8 + size)[0], self)
        except Exception:
            return self._unreadable()

    def at_once(self, message: tuple[Any, ...]) -> Answer | Later:
        """A small message calling an instant operation (the scanner has read its name), answered here."""
        data, name = message[0], message[1]
        if data is None or self.refused or len(data) > INSTANT_BYTES or name not in self.codec.instant_ops:
            return LATER
        return self.handle(message)

    def handle(self, message: tuple[Any, ...]) -> Answer:
        """Decode one message, call, encode the answer (in parts when it has long strings)."""
        data, name, seqid, problem = message  # problem: why a message over the work budget was not decoded
        if data is None or self.refused:
            return self._refusal(name, seqid, problem)
        codec = self.codec
        try:
            reply = codec.process(data, name, seqid, self)
        except Exception:
            return self._unreadable()
        long, self.long = self.long, None  # the strings go with this answer
        if long is not None and long.strings:
            parts = splice(reply, long, codec.compact)
            return [_I32.pack(sum(map(len, parts))), *parts] if codec.framed else parts
        return _I32.pack(len(reply)) + reply if codec.framed else reply

    def _unreadable(self) -> bytes:
        """A message that passed the scan but not thriftpy2 (a field of the wrong type, say): the connection
        is dropped, as a Thrift server does with a message it cannot read."""
        self.link.gateway.refused(self.link.caller, "parse_error")
        self.close_after = True
        self.long = None
        return b""

    def _refusal(self, raw_name: bytes, seqid: int, problem: ScanError | None) -> bytes:
        """The declared error, then the end of the connection, for a message over the work budget (nothing
        of it was decoded) or from a caller the gateway can serve nothing."""
        self.close_after = True
        gateway, caller = self.link.gateway, self.link.caller
        if problem is not None:
            gateway.refused(caller, "decode_limit")
            error = GatewayError(problem.code, f"the message cannot be decoded: {problem}")
        else:
            refusal = gateway.refusal(caller)
            assert refusal is not None
            gateway.refused(caller, "unauthenticated")
            error = refusal
        name = raw_name.decode("utf-8", "replace")
        service = self.codec.module.NetOps
        buffers = self.codec.new_buffers()
        if name in service.thrift_services:
            result = getattr(service, f"{name}_result")()
            result.error = self.codec.handler._error(error)
            encode(buffers.oprot, name, seqid, result)
        else:  # a name the IDL does not declare has no result struct: Thrift's own exception, led by the code
            buffers.oprot.write_message_begin(name, TMessageType.EXCEPTION, seqid)
            buffers.oprot.write_struct(TApplicationException(TApplicationException.UNKNOWN, str(error)))
            buffers.oprot.write_message_end()
        reply: bytes = buffers.outbound.getvalue()
        return _I32.pack(len(reply)) + reply if self.codec.framed else reply
