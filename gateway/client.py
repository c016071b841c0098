"""One Python client for every transport: ``connect("jsonrpc://127.0.0.1:7002")``.

>>> from gateway.client import connect
>>> with connect("thrift://127.0.0.1:7004") as c:
...     c.resolve("example.com")["addresses"]

Whatever the transport, results are plain dicts and lists and failures raise
:class:`gateway.GatewayError` with its stable ``.code``.  A failure to reach
the gateway is ``connection_failed``; no answer within the per-call timeout
is ``timeout``.  Each client keeps one connection and reuses it; it is not
meant to be shared between threads (open one per thread).

``token=`` presents a token of the gateway's ``--token-file`` (HTTP Bearer,
Pyro5 handshake, or the ``NETOPS-TOKEN`` line RPyC and Thrift clients send
first); ``tls=`` (see :func:`tls_context`) speaks TLS to a gateway started
with ``--tls-cert``, with a client certificate for ``--tls-client-ca``.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import xmlrpc.client
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from gateway.errors import (
    CONNECTION_FAILED,
    INTERNAL,
    NUMERIC,
    TIMEOUT,
    UNAUTHENTICATED,
    GatewayError,
    code_for_number,
)
from gateway.transports.table import TABLE, TRANSPORTS, client_class

__all__ = ["SCHEMES", "GatewayUnreachable", "NetOpsClient", "connect", "tls_context"]

Call = tuple[str, Sequence[Any] | Mapping[str, Any]]
DEFAULT_PORTS = {r.name: r.default_port for r in TABLE}
SCHEMES = TRANSPORTS  # a client URL names its transport: thrift://host:port


def _coded(message: str) -> GatewayError:
    """A GatewayError from a message led by its code (``not_found: …``)."""
    message = message.split("\n\n========= Remote Traceback", 1)[0]  # RPyC appends this section
    code, _, rest = message.partition(": ")
    return GatewayError(code, rest) if code in NUMERIC else GatewayError(INTERNAL, message)


def _classify(exc: BaseException, where: str) -> GatewayError:
    """The gateway's own error when the message carries its code; otherwise a failure to reach it."""
    text = str(exc)
    if text.partition(":")[0] in NUMERIC:
        return _coded(text)
    if isinstance(exc, (OSError, EOFError)):
        return _unreachable(where, exc)
    return GatewayError(INTERNAL, f"unexpected reply from the gateway at {where}: {type(exc).__name__}")


class GatewayUnreachable(GatewayError):
    """The gateway itself could not be reached or did not answer in time (code ``connection_failed`` or ``timeout``)."""


def _unreachable(where: str, exc: BaseException) -> GatewayError:
    if isinstance(exc, TimeoutError | socket.timeout):
        return GatewayUnreachable(TIMEOUT, f"no answer from the gateway at {where} in time")
    return GatewayUnreachable(CONNECTION_FAILED, f"cannot reach the gateway at {where}: {exc}")


def tls_context(
    ca_file: str | None = None, cert_file: str | None = None, key_file: str | None = None
) -> ssl.SSLContext:
    """A client TLS context trusting ``ca_file`` (default: the system store), with a client certificate if given."""
    context = ssl.create_default_context(cafile=ca_file)
    if cert_file:
        context.load_cert_chain(cert_file, key_file)
    context.netops_files = (ca_file, cert_file, key_file)  # type: ignore[attr-defined]  # gRPC takes PEM bytes
    return context


def _refused_token(token: str | None) -> GatewayError:
    return GatewayError(UNAUTHENTICATED, "the token was not accepted" if token else "this gateway requires a token")


class _Backend(ABC):
    """One transport's way to call a method by its transport name."""

    dotted = False

    def __init__(
        self, host: str, port: int, timeout: float, token: str | None = None, tls: ssl.SSLContext | None = None
    ) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self.token, self.tls = token, tls
        self.where = f"{host}:{port}"

    def open_socket(self, first: bytes = b"") -> Any:
        """A connected socket (TLS when asked) on which ``first`` has been sent."""
        try:
            sock: Any = socket.create_connection((self.host, self.port), timeout=self.timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.tls is not None:
                sock = self.tls.wrap_socket(sock, server_hostname=self.host)
            if first:
                sock.sendall(first)
        except OSError as exc:
            raise _unreachable(self.where, exc) from None
        return sock

    @abstractmethod
    def call(self, name: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        """Call ``name``; return plain data or raise GatewayError."""

    def multicall(self, calls: list[dict[str, Any]]) -> list[Any]:
        """Run a multicall; each element is the result or a GatewayError."""
        name = "system.multicall" if self.dotted else "system_multicall"
        return [r[0] if isinstance(r, list) else _fault(r) for r in self.call(name, [calls], {})]

    @abstractmethod
    def close(self) -> None:
        """Close the connection."""


def _fault(fault: Mapping[str, Any]) -> GatewayError:
    return GatewayError(code_for_number(fault["faultCode"]), _coded(fault["faultString"]).message)


def _xmlrpc_transport(timeout: float, headers: list[tuple[str, str]], tls: ssl.SSLContext | None) -> Any:
    base = xmlrpc.client.SafeTransport if tls is not None else xmlrpc.client.Transport

    class _TimeoutTransport(base):  # type: ignore[misc, valid-type]
        def make_connection(self, host: Any) -> http.client.HTTPConnection:
            conn = super().make_connection(host)
            conn.timeout = timeout
            return conn

    return _TimeoutTransport(headers=headers, **({"context": tls} if tls is not None else {}))


def _bearer(token: str | None) -> list[tuple[str, str]]:
    return [("Authorization", f"Bearer {token}")] if token else []


class _XMLRPC(_Backend):
    dotted = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        scheme = "https" if self.tls is not None else "http"
        transport = _xmlrpc_transport(self.timeout, _bearer(self.token), self.tls)
        self.proxy = xmlrpc.client.ServerProxy(f"{scheme}://{self.where}/RPC2", transport=transport)

    def call(self, name: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        if kwargs:
            raise GatewayError("invalid_argument", "XML-RPC has no named arguments; pass them in order")
        try:
            return getattr(self.proxy, name)(*args)
        except xmlrpc.client.Fault as fault:
            return self._raise(fault)
        except xmlrpc.client.ProtocolError as exc:
            if exc.errcode == 401:  # refused before the request was read (RFC 6750)
                raise _refused_token(self.token) from None
            raise _unreachable(self.where, exc) from None
        except (OSError, http.client.HTTPException) as exc:
            raise _unreachable(self.where, exc) from None

    @staticmethod
    def _raise(fault: xmlrpc.client.Fault) -> Any:
        error = _coded(fault.faultString)
        raise GatewayError(code_for_number(fault.faultCode), error.message) from None

    def close(self) -> None:
        self.proxy("close")()


class _JSONRPC(_Backend):
    dotted = True
    path = "/"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.tls is not None:
            self.conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                self.host, self.port, timeout=self.timeout, context=self.tls
            )
        else:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        self.headers = {"Content-Type": "application/json", **dict(_bearer(self.token))}
        self.next_id = 0

    def _post(self, body: bytes, headers: Mapping[str, str] | None = None) -> tuple[int, Any, Any]:
        """POST ``body``; the status, the response's headers and its JSON (None when it has no body)."""
        for attempt in (1, 2):  # a kept-alive connection the server closed is reopened once
            try:
                self.conn.request("POST", self.path, body, {**self.headers, **(headers or {})})
                response = self.conn.getresponse()
                data = response.read()
                return response.status, response.headers, json.loads(data) if data else None
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
                self.conn.close()
                if attempt == 2:
                    raise _unreachable(self.where, exc) from None
            except (OSError, http.client.HTTPException, ValueError) as exc:
                self.conn.close()
                raise _unreachable(self.where, exc) from None
        raise AssertionError("unreachable")

    def call(self, name: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        if args and kwargs:
            raise GatewayError("invalid_argument", "JSON-RPC takes positional or named arguments, not both")
        self.next_id += 1
        params = dict(kwargs) if kwargs else list(args)
        _, _, answer = self._post(
            json.dumps({"jsonrpc": "2.0", "method": name, "params": params, "id": self.next_id}).encode()
        )
        return _result(answer)

    def close(self) -> None:
        self.conn.close()


def _result(answer: Any) -> Any:
    """The result of a JSON-RPC response, or its error raised with the gateway's code."""
    if not isinstance(answer, dict):
        raise GatewayError(INTERNAL, "unexpected reply from the gateway")
    if "error" in answer:
        error = answer["error"]
        code = (error.get("data") or {}).get("code") or code_for_number(error["code"])
        raise GatewayError(code, _coded(error["message"]).message)
    return answer["result"]


class _MCP(_JSONRPC):
    """MCP's tools/call over Streamable HTTP: a session from initialize, named arguments, the result's text."""

    dotted = False
    path = "/mcp"
    version = "2025-11-25"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.session: dict[str, str] = {}
        self.headers["Accept"] = "application/json, text/event-stream"  # what the specification asks clients
        self.params: dict[str, list[str]] = {}  # each tool's parameter names in order, for positional calls
        self.wrapped: set[str] = set()  # tools whose result is a list or a scalar: {"result": value}

    def _request(self, method: str, params: Mapping[str, Any]) -> Any:
        for _ in (1, 2):  # a session the gateway forgot (404) is opened again once
            if not self.session and method != "initialize":
                self._initialize()
            self.next_id += 1
            body = json.dumps({"jsonrpc": "2.0", "method": method, "params": params, "id": self.next_id}).encode()
            status, headers, answer = self._post(body, self.session)
            if status == 401:
                raise _refused_token(self.token)
            if status != 404 or method == "initialize":
                return headers, _result(answer)
            self.session = {}
        raise GatewayError(INTERNAL, "the gateway keeps forgetting the MCP session")

    def _initialize(self) -> None:
        headers, _ = self._request(
            "initialize",
            {"protocolVersion": self.version, "capabilities": {}, "clientInfo": {"name": "netops", "version": "1"}},
        )
        self.session = {"Mcp-Session-Id": headers.get("Mcp-Session-Id", ""), "MCP-Protocol-Version": self.version}
        self._post(json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}).encode(), self.session)

    def call(self, name: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        if not self.params:  # once per client: the tools' parameters, and which results come wrapped
            _, listed = self._request("tools/list", {})
            for tool in listed["tools"]:
                self.params[tool["name"]] = list(tool["inputSchema"]["properties"])
                if list(tool["outputSchema"]["properties"]) == ["result"]:
                    self.wrapped.add(tool["name"])
        names = self.params.get(name, [])
        if len(args) > len(names):
            raise GatewayError("invalid_argument", f"{name} takes at most {len(names)} arguments")
        arguments = {**dict(zip(names, args, strict=False)), **kwargs}
        _, result = self._request("tools/call", {"name": name, "arguments": arguments})
        if result.get("isError"):
            raise _coded(result["content"][0]["text"])
        value = result["structuredContent"]  # the result itself: the text beside it may be cut short
        return value["result"] if name in self.wrapped else value


def _pyro_handshake(sock: Any, token: str | None) -> None:
    """Pyro5's connect handshake, which a proxy on a socket of its caller's skips, with the token in it."""
    from Pyro5 import protocol, serializers, socketutil

    serializer = serializers.serializers["serpent"]
    conn = socketutil.SocketConnection(sock, "netops", keep_open=True)
    data = serializer.dumps({"handshake": token or "hello", "object": "netops"})
    conn.send(protocol.SendingMessage(protocol.MSG_CONNECT, 0, 0, serializer.serializer_id, data).data)
    reply = protocol.recv_stub(conn, [protocol.MSG_CONNECTOK, protocol.MSG_CONNECTFAIL])
    if reply.type == protocol.MSG_CONNECTFAIL:
        sock.close()
        raise _coded(str(serializer.loads(reply.data)))


class _Pyro(_Backend):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        import Pyro5.api
        import Pyro5.errors

        super().__init__(*args, **kwargs)
        try:
            if self.tls is not None:  # Pyro5's own TLS settings are process-wide; a socket of ours is not
                sock = self.open_socket()
                _pyro_handshake(sock, self.token)
                self.proxy = Pyro5.api.Proxy("netops", connected_socket=sock)
            else:
                self.proxy = Pyro5.api.Proxy(f"PYRO:netops@{self.where}")
                self.proxy._pyroHandshake = self.token
                self.proxy._pyroBind()
        except Pyro5.errors.CommunicationError as exc:
            raise self._refused(exc) from None
        self.proxy._pyroTimeout = self.timeout

    def _refused(self, exc: Exception) -> GatewayError:
        """The handshake's refusal (``… rejected: unauthenticated: …``) or a failure to reach the gateway."""
        text = str(exc)
        if "rejected: " in text:
            return _coded(text.split("rejected: ", 1)[1])
        return _unreachable(self.where, exc)

    def call(self, name: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        import Pyro5.errors

        self.proxy._pyroClaimOwnership()
        try:
            return getattr(self.proxy, name)(*args, **kwargs)
        except Pyro5.errors.TimeoutError as exc:
            raise _unreachable(self.where, TimeoutError(str(exc))) from None
        except Pyro5.errors.CommunicationError as exc:
            raise self._refused(exc) from None
        except AttributeError as exc:
            if str(exc).startswith("method_not_found"):
                raise _coded(str(exc)) from None
            # refused by the Pyro5 client itself, from the gateway's metadata
            raise GatewayError("method_not_found", f"no method named {name!r}") from None
        except Exception as exc:
            raise _classify(exc, self.where) from None

    def close(self) -> None:
        self.proxy._pyroClaimOwnership()
        self.proxy._pyroRelease()


def _token_line(token: str | None) -> bytes:
    from gateway.net.session import token_line

    return token_line(token) if token else b""


class _RPyC(_Backend):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        import rpyc
        from rpyc.core.stream import SocketStream

        from gateway.transports.rpyc import JSON_ENTRY

        super().__init__(*args, **kwargs)
        sock = self.open_socket(_token_line(self.token))
        try:
            self.conn = rpyc.connect_stream(SocketStream(sock), config={"sync_request_timeout": self.timeout})
        except (OSError, EOFError) as exc:
            sock.close()
            raise _unreachable(self.where, exc) from None
        self.entry_name = JSON_ENTRY
        self.entry: Callable[[str, str], str] | None = None  # looked up once: one round trip a call after that

    def call(self, name: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        try:
            if self.entry is None:
                self.entry = getattr(self.conn.root, self.entry_name)
            return json.loads(self.entry(name, json.dumps({"args": list(args), "kwargs": dict(kwargs)})))
        except Exception as exc:
            raise _classify(exc, self.where) from None

    def close(self) -> None:
        self.conn.close()


class _Thrift(_Backend):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        from gateway.idl import thrift_module

        super().__init__(*args, **kwargs)
        self.module = thrift_module()
        self.client: Any = None
        self._connect()

    def _make(self) -> Any:
        from thriftpy2.protocol import TBinaryProtocolFactory
        from thriftpy2.thrift import TClient
        from thriftpy2.transport import TBufferedTransportFactory, TSocket

        sock = TSocket(sock=self.open_socket(_token_line(self.token)))
        transport = TBufferedTransportFactory().get_transport(sock)
        return TClient(self.module.NetOps, TBinaryProtocolFactory().get_protocol(transport))

    def _connect(self) -> Any:
        if self.client is None:
            try:
                self.client = self._make()
            except GatewayError:
                raise
            except Exception as exc:
                raise _unreachable(self.where, exc) from None
        return self.client

    def call(self, name: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        from thriftpy2.thrift import TApplicationException, TDecodeException

        client = self._connect()
        if not hasattr(client, name):
            raise GatewayError("method_not_found", f"no method named {name!r}")
        try:
            return _plain(getattr(client, name)(*args, **kwargs))
        except self.module.NetOpsError as exc:
            raise _coded(exc.message) from None
        except TApplicationException as exc:
            raise GatewayError("method_not_found", str(exc)) from None
        except TDecodeException as exc:  # an argument of the wrong type, refused while encoding
            self.close()  # part of the message may sit in the send buffer
            raise GatewayError("invalid_argument", str(exc)) from None
        except Exception as exc:
            # The stream's state is unknown (a late reply may still arrive): start afresh next call.
            self.close()
            raise _unreachable(self.where, exc) from None

    def multicall(self, calls: list[dict[str, Any]]) -> list[Any]:
        from gateway.idl import args_struct_name
        from gateway.ops import default_registry

        registry = default_registry()
        union = []
        for item in calls:
            op = registry.get(item["methodName"])
            params = item.get("params", [])
            if isinstance(params, (list, tuple)):
                params = dict(zip([p.name for p in op.params], params, strict=False))
            union.append(self.module.Call(**{op.name: getattr(self.module, args_struct_name(op))(**params)}))
        out = []
        for outcome in self.call("system_multicall", [union], {}):
            error = outcome.pop("error")
            out.append(_coded(error["message"]) if error else next(v for v in outcome.values() if v is not None))
        return out

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None


class _GRPC(_Backend):
    """grpcio with the service's messages (built from the registry, as the gateway serves them)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        import grpc

        from gateway.proto import PACKAGE, SERVICE, default_pool

        super().__init__(*args, **kwargs)
        target = f"[{self.host}]:{self.port}" if ":" in self.host else self.where
        # A receive window as large as a result may be, and no probing pings: a call is one round trip. Any
        # result the gateway sends is accepted (grpcio refuses a message over 4 MiB by default: a fetch_url
        # body); the gateway bounds its answers itself (max_body_bytes, max_result_bytes).
        options = [
            ("grpc.http2.lookahead_bytes", 16 * 1024 * 1024),
            ("grpc.http2.bdp_probe", 0),
            ("grpc.max_receive_message_length", -1),
        ]
        if self.tls is not None:
            self.channel = grpc.secure_channel(target, _grpc_credentials(self.tls), options)
        else:
            self.channel = grpc.insecure_channel(target, options)
        self.metadata = (("authorization", f"Bearer {self.token}"),) if self.token else ()
        self.pool, file = default_pool()
        self.service = file.services_by_name[SERVICE]
        self.prefix = f"/{PACKAGE}.{SERVICE}/"
        self.stubs: dict[str, Any] = {}

    def _stub(self, name: str) -> tuple[Any, Any]:
        from google.protobuf.message_factory import GetMessageClass

        from gateway.proto import rpc_name

        if name not in self.stubs:
            method = self.service.methods_by_name.get(rpc_name(name.replace("system_", "system.")))
            if method is None:
                raise GatewayError("method_not_found", f"no method named {name!r}")
            request, response = GetMessageClass(method.input_type), GetMessageClass(method.output_type)
            call = self.channel.unary_unary(self.prefix + method.name, request.SerializeToString, response.FromString)
            self.stubs[name] = (call, request)
        return self.stubs[name]

    def call(self, name: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        import grpc

        call, request = self._stub(name)
        fields = [f.name for f in request.DESCRIPTOR.fields]
        if len(args) > len(fields):
            raise GatewayError("invalid_argument", f"{name} takes at most {len(fields)} arguments")
        arguments = {**dict(zip(fields, args, strict=False)), **kwargs}
        if name == "system_multicall":
            arguments = {"calls": [_grpc_call(c) for c in arguments.get("calls", [])]}
        try:
            message = request(**arguments)
        except (TypeError, ValueError) as exc:
            raise GatewayError("invalid_argument", str(exc)) from None
        try:
            reply = call(message, timeout=self.timeout, metadata=self.metadata)
        except grpc.RpcError as exc:
            raise _grpc_error(exc, self.where) from None
        plain = _message_data(reply)
        if name == "system_multicall":
            return [_grpc_outcome(o) for o in plain["outcomes"]]
        if name in ("system_listMethods", "system_methodHelp"):
            return next(iter(plain.values()))
        if name == "system_methodSignature":
            return [s["types"] for s in plain["signatures"]]
        return plain

    def close(self) -> None:
        self.channel.close()


def _message_data(message: Any) -> Any:
    """A protobuf message as plain data, every field in declared order (as every transport lists them)."""
    out: dict[str, Any] = {}
    for field in message.DESCRIPTOR.fields:
        value = getattr(message, field.name)
        kind = field.message_type
        if kind is not None and kind.GetOptions().map_entry:
            # by key, as the gateway sends maps: protobuf keeps no order in one
            out[field.name] = {k: _message_data(v) if hasattr(v, "DESCRIPTOR") else v for k, v in sorted(value.items())}
        elif field.is_repeated:
            out[field.name] = [_message_data(v) if kind is not None else v for v in value]
        elif kind is not None:
            if field.containing_oneof is not None and not message.HasField(field.name):
                continue  # a oneof holds only the member that is set
            out[field.name] = _message_data(value)
        else:
            out[field.name] = value
    return out


def _grpc_credentials(tls: ssl.SSLContext) -> Any:
    import grpc

    ca_file, cert_file, key_file = getattr(tls, "netops_files", (None, None, None))
    if ca_file:
        roots: bytes | None = open(ca_file, "rb").read()
    else:
        roots = "".join(ssl.DER_cert_to_PEM_cert(c) for c in tls.get_ca_certs(binary_form=True)).encode() or None
    chain = open(cert_file, "rb").read() if cert_file else None
    key = open(key_file or cert_file, "rb").read() if cert_file else None
    return grpc.ssl_channel_credentials(roots, key, chain)


def _grpc_call(item: Mapping[str, Any]) -> dict[str, Any]:
    """A multicall element {methodName, params} as the typed Call message's fields."""
    from gateway.proto import default_pool, rpc_name

    name, params = item["methodName"], item.get("params", [])
    pool, _ = default_pool()
    try:
        fields = [f.name for f in pool.FindMessageTypeByName(f"netops.v1.{rpc_name(name)}Request").fields]
    except KeyError:
        raise GatewayError("method_not_found", f"no method named {name!r}") from None
    return {name: dict(params) if isinstance(params, Mapping) else dict(zip(fields, params, strict=False))}


def _grpc_outcome(outcome: Mapping[str, Any]) -> Any:
    """An Outcome as the other transports' multicall elements: [result] or a fault."""
    ((name, value),) = outcome.items()
    if name == "error":
        return {"faultCode": NUMERIC.get(value["code"], NUMERIC[INTERNAL]), "faultString": value["message"]}
    return [value]


def _grpc_error(exc: Any, where: str) -> GatewayError:
    """The gateway's error from a gRPC status (its code in netops-code), else a failure to reach it."""
    import grpc

    trailing = dict(exc.trailing_metadata() or ())
    code = trailing.get("netops-code")
    if code in NUMERIC:
        return GatewayError(code, _coded(exc.details() or "").message)
    if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
        return GatewayUnreachable(TIMEOUT, f"no answer from the gateway at {where} in time")
    if exc.code() == grpc.StatusCode.UNAVAILABLE:
        return GatewayUnreachable(CONNECTION_FAILED, f"cannot reach the gateway at {where}: {exc.details()}")
    return GatewayError(INTERNAL, f"unexpected reply from the gateway at {where}: {exc.code().name}")


def _plain(value: Any) -> Any:
    """Thrift structs to dicts, recursively."""
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if hasattr(value, "thrift_spec"):
        return {spec[1]: _plain(getattr(value, spec[1])) for spec in value.thrift_spec.values()}
    return value


class NetOpsClient:
    """The gateway's operations as methods, on any transport."""

    def __init__(self, backend: _Backend, transport: str) -> None:
        self._backend = backend
        self.transport = transport

    def _name(self, name: str) -> str:
        return name if self._backend.dotted else name.replace(".", "_")

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Call a method by name (``system.*`` names in their dotted form work on every transport)."""
        return self._backend.call(self._name(name), args, kwargs)

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("_"):
            raise AttributeError(name)
        return lambda *args, **kwargs: self.call(name, *args, **kwargs)

    def methods(self) -> list[str]:
        """The names callable on this transport (``system.listMethods``)."""
        return self.call("system.listMethods")

    def help(self, name: str) -> str:
        """A method's description (``system.methodHelp``)."""
        return self.call("system.methodHelp", self._name(name))

    def signature(self, name: str) -> list[list[str]]:
        """A method's signatures (``system.methodSignature``)."""
        return self.call("system.methodSignature", self._name(name))

    def multicall(self, calls: Iterable[Call | Mapping[str, Any]]) -> list[Any]:
        """Run calls concurrently on the gateway: ``[("resolve", ["a.example"]), …]``.

        Returns, in order, each result or the GatewayError of each failure (not raised).
        """
        items = []
        for item in calls:
            if isinstance(item, Mapping):
                items.append({"methodName": item["methodName"], "params": item.get("params", [])})
            else:
                name, params = item
                items.append({"methodName": name, "params": params if isinstance(params, Mapping) else list(params)})
        if not self._backend.dotted:
            items = [{**i, "methodName": self._name(i["methodName"])} for i in items]
        return self._backend.multicall(items)

    def close(self) -> None:
        """Close the connection."""
        self._backend.close()

    def __enter__(self) -> NetOpsClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect(
    url: str, *, timeout: float = 30.0, token: str | None = None, tls: ssl.SSLContext | None = None
) -> NetOpsClient:
    """Open a client: ``<transport>://host[:port]``, for any transport (``jsonrpc``, ``grpc``, ``mcp``, …)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise GatewayError("invalid_argument", f"unknown transport {scheme!r}: use one of {', '.join(SCHEMES)}")
    host = parts.hostname or "127.0.0.1"
    port = parts.port or DEFAULT_PORTS[scheme]
    return NetOpsClient(client_class(scheme)(host, port, timeout, token, tls), scheme)
