"""Thrift: service ``NetOps`` of the IDL generated from the registry (see :mod:`gateway.idl`).

Binary protocol on a buffered transport by default (what a stock Apache
Thrift client speaks); framed and compact on request.  Types: result dicts
become the IDL's structs, arrays lists, ``headers`` a ``map<string,
string>``.  Errors: every failure reaches the client as the declared
``NetOpsError {code, message}`` (a missing or ill-typed field is
``invalid_argument``), an unknown function as ``TApplicationException``;
thriftpy2 would otherwise drop the connection.

thriftpy2 has no decode limits (a 20-byte message can claim a 2 GiB string or
a 2**31-element list), so the pure-Python protocol and transports are used
with three bounds: no single read larger than the request cap, a byte budget
per message, and a cap on list, set and map sizes.
"""

from __future__ import annotations

import functools
import logging
import socket
import threading
from collections.abc import Callable
from typing import Any

import thriftpy2.protocol.binary as tbinary
from thriftpy2.protocol.binary import TBinaryProtocolFactory
from thriftpy2.protocol.compact import TCompactProtocol
from thriftpy2.protocol.exc import TProtocolException
from thriftpy2.thrift import TProcessor
from thriftpy2.transport import TTransportException
from thriftpy2.transport.buffered import TBufferedTransportFactory
from thriftpy2.transport.framed import TFramedTransportFactory
from thriftpy2.transport.socket import TSocket

from gateway.core import SYSTEM_NAMES, UNDERSCORE, Failed, Gateway
from gateway.errors import INVALID_ARGUMENT, GatewayError
from gateway.idl import thrift_module
from gateway.observe import Caller
from gateway.registry import Operation, Schema
from gateway.transports._secure import open_connection, server_context
from gateway.transports._watchdog import WATCHDOG
from gateway.transports.base import Transport, guarded

__all__ = ["ThriftTransport"]

log = logging.getLogger("gateway.thrift")

MAX_CONTAINER_ITEMS = 10_000  # list, set or map entries in one field; a multicall holds at most max_batch


def _capped(size: int) -> int:
    if not 0 <= size <= MAX_CONTAINER_ITEMS:
        raise TProtocolException(TProtocolException.SIZE_LIMIT, "container too large")
    return size


def _limit_binary_containers() -> None:
    """Cap container sizes in thriftpy2's pure-Python binary decoder (module functions it calls by name)."""
    if getattr(tbinary, "_netops_capped", False):
        return
    list_begin, map_begin = tbinary.read_list_begin, tbinary.read_map_begin

    def read_list_begin(inbuf: Any) -> tuple[int, int]:
        etype, size = list_begin(inbuf)
        return etype, _capped(size)

    def read_map_begin(inbuf: Any) -> tuple[int, int, int]:
        ktype, vtype, size = map_begin(inbuf)
        return ktype, vtype, _capped(size)

    tbinary.read_list_begin, tbinary.read_map_begin = read_list_begin, read_map_begin
    tbinary._netops_capped = True  # type: ignore[attr-defined]


class _CappedCompactProtocol(TCompactProtocol):
    def _read_collection_begin(self) -> tuple[int, int]:
        etype, size = super()._read_collection_begin()
        return etype, _capped(size)

    def _read_map_begin(self) -> tuple[int, int, int]:
        ktype, vtype, size = super()._read_map_begin()
        return ktype, vtype, _capped(size)


class _CappedCompactProtocolFactory:
    def get_protocol(self, trans: Any) -> TCompactProtocol:
        return _CappedCompactProtocol(trans)


class _LimitExceeded(TTransportException):
    """A read the request limits refuse."""


# The caller of the connection a handler thread serves (the handler object is shared by all connections).
_connection = threading.local()
_connection.caller = Caller("thrift", typed=True)


class _BoundedSocket(TSocket):
    """A socket that refuses oversized reads and counts a byte budget per message."""

    def __init__(self, sock: socket.socket, limit: int, idle_timeout: float) -> None:
        super().__init__(sock=sock)
        self.limit = limit
        self.budget = limit
        self.idle_timeout = idle_timeout

    def read(self, sz: int) -> bytes:
        if sz > self.limit:
            raise _LimitExceeded(TTransportException.UNKNOWN, "read larger than the request limit")
        data = super().read(sz)
        self.budget -= len(data)
        if self.budget < 0:
            raise _LimitExceeded(TTransportException.UNKNOWN, "request larger than the limit")
        return data


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


class _Handler:
    """One method per IDL function; every failure becomes ``NetOpsError``."""

    def __init__(self, gateway: Gateway, module: Any) -> None:
        self.gateway = gateway
        self.module = module
        self.ops = [op for op in gateway.registry if op.name not in SYSTEM_NAMES]
        self.encode = {op.name: _to_thrift(op.result, module) for op in self.ops}
        for op in self.ops:
            setattr(self, op.name, functools.partial(self._operation, op))

    def _error(self, exc: GatewayError) -> Exception:
        return self.module.NetOpsError(code=exc.code, message=str(exc))

    def _guard(self, func: Callable[[], Any], where: str) -> Any:
        try:
            return guarded(func, f"thrift {where}")
        except GatewayError as exc:
            raise self._error(exc) from None

    def _call(self, name: str, args: list[Any] | tuple[()] = (), kwargs: dict[str, Any] | None = None) -> Any:
        return self.gateway.call(name, args, kwargs, style=UNDERSCORE, caller=_connection.caller)

    def _operation(self, op: Operation, *args: Any) -> Any:
        kwargs = {p.name: _from_thrift(v) for p, v in zip(op.params, args, strict=True) if v is not None}
        return self._guard(lambda: self.encode[op.name](self._call(op.name, (), kwargs)), op.name)

    def system_listMethods(self) -> list[str]:
        return self._guard(lambda: self._call("system_listMethods"), "listMethods")

    def system_methodHelp(self, name: str) -> str:
        return self._guard(lambda: self._call("system_methodHelp", [name]), "methodHelp")

    def system_methodSignature(self, name: str) -> list[list[str]]:
        return self._guard(lambda: self._call("system_methodSignature", [name]), "methodSignature")

    def system_multicall(self, calls: list[Any]) -> list[Any]:
        return self._guard(lambda: self._multicall(calls or []), "multicall")

    def _multicall(self, calls: list[Any]) -> list[Any]:
        requests, chosen = [], []
        for call in calls:
            set_fields = [op for op in self.ops if getattr(call, op.name, None) is not None]
            if len(set_fields) != 1:
                chosen.append(None)
                continue
            op = set_fields[0]
            args = _from_thrift(getattr(call, op.name))
            requests.append({"methodName": op.name, "params": {k: v for k, v in args.items() if v is not None}})
            chosen.append(op)
        results = iter(self.gateway.call_many(requests, UNDERSCORE, _connection.caller))
        outcomes = []
        for op in chosen:
            if op is None:
                error = GatewayError(INVALID_ARGUMENT, "a Call must set exactly one field")
                outcomes.append(self.module.Outcome(error=self._error(error)))
                continue
            result = next(results)
            if isinstance(result, Failed):
                outcomes.append(self.module.Outcome(error=self._error(result.error)))
            else:
                outcomes.append(self.module.Outcome(**{op.name: self.encode[op.name](result)}))
        return outcomes


class _Processor(TProcessor):
    """Reads each message with a fresh byte budget, in full within ``idle_timeout`` (see the watchdog)."""

    def process_in(self, iprot: Any) -> Any:
        source = iprot.trans.budget_source
        source.budget = source.limit
        WATCHDOG.arm(source.sock, source.idle_timeout)
        try:
            return super().process_in(iprot)
        finally:
            WATCHDOG.disarm(source.sock)


class ThriftTransport(Transport):
    """Thrift server: a thread per connection, idle connections closed after ``idle_timeout``."""

    name = "thrift"

    def __init__(self, gateway: Gateway, host: str, port: int) -> None:
        super().__init__(gateway, host, port)
        settings = gateway.services.settings
        _limit_binary_containers()
        self.module = thrift_module(gateway.registry)
        self.processor = _Processor(self.module.NetOps, _Handler(gateway, self.module))
        self.limit = settings.max_request_bytes
        self.idle_timeout = settings.idle_timeout
        self.handshake_timeout = settings.handshake_timeout
        self.tls = server_context(settings)
        self.want_token = gateway.services.tokens.required  # a client may send a token line first
        self.transport_factory = (
            TFramedTransportFactory() if settings.thrift_transport == "framed" else TBufferedTransportFactory()
        )
        self.protocol_factory = (
            _CappedCompactProtocolFactory() if settings.thrift_protocol == "compact" else TBinaryProtocolFactory()
        )
        self.listener: socket.socket | None = None
        self._stopped = threading.Event()

    @property
    def port(self) -> int:
        """The bound port."""
        assert self.listener is not None
        return self.listener.getsockname()[1]

    @property
    def endpoint(self) -> str:
        """Where a Thrift client connects."""
        return f"{self.host}:{self.port} (service NetOps, idl/netops.thrift)"

    def bind(self) -> None:
        """Bind and listen."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind((self.host, self.requested_port))
            listener.listen(128)
        except OSError:
            listener.close()
            raise
        self.listener = listener

    def _serve(self) -> None:
        assert self.listener is not None
        while not self._stopped.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                if self._stopped.is_set():
                    return
                continue
            threading.Thread(target=self._handle, args=(client,), name="thrift-conn", daemon=True).start()

    def _handle(self, client: socket.socket) -> None:
        try:
            host, port = client.getpeername()[:2]
            caller = Caller("thrift", f"{host}:{port}", typed=True)
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            client.close()
            return
        if self.tls is not None or self.want_token:
            try:
                client, token = open_connection(client, self.tls, self.want_token, self.handshake_timeout)
            except (OSError, EOFError):
                self.gateway.refused(caller, "handshake")
                return
            caller = self.gateway.identify(caller, token)
        _connection.caller = caller
        client.settimeout(self.idle_timeout)
        raw = _BoundedSocket(client, self.limit, self.idle_timeout)
        trans = self.transport_factory.get_transport(raw)
        trans.budget_source = raw
        protocol = self.protocol_factory.get_protocol(trans)
        try:
            while not self._stopped.is_set():
                self.processor.process(protocol, protocol)
        except _LimitExceeded:
            self.gateway.refused(_connection.caller, "decode_limit")
        except TProtocolException as exc:
            if exc.type == TProtocolException.SIZE_LIMIT:
                self.gateway.refused(_connection.caller, "decode_limit")
        except (TTransportException, OSError, EOFError):
            pass  # the client went away, idled out, or sent something undecodable: close quietly
        except Exception:
            log.warning("thrift connection closed after an unexpected error", exc_info=True)
        finally:
            client.close()

    def stop(self) -> None:
        """Stop accepting and close the listener (thriftpy2's close() alone leaves accept() blocked)."""
        self._stopped.set()
        if self.listener is not None:
            try:
                self.listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.listener.close()
