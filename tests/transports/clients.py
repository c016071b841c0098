"""Each transport's standard client behind one small test interface.

``call`` returns plain data (dicts, lists, scalars) and raises ``RemoteError``
with the stable code read from the transport's native error; names are given
in the registry's dotted form and translated for the underscore transports.
"""

from __future__ import annotations

import contextvars
import http.client
import json
import re
import xmlrpc.client
from pathlib import Path
from typing import Any

import Pyro5.api
import rpyc
import thriftpy2
from thriftpy2.rpc import make_client

from gateway.client import _plain as struct_to_dict  # Thrift structs to plain data, as the client reads them
from gateway.errors import code_for_number
from gateway.idl import args_struct_name
from gateway.ops import default_registry
from gateway.server import Running
from gateway.transports.mcp import TEXT_LIMIT

IDL = Path(__file__).resolve().parents[2] / "idl" / "netops.thrift"
REGISTRY = default_registry()


# What must never reach a remote caller: tracebacks, source files and paths, class and module names,
# memory addresses. Every error a test receives through a standard client is checked here.
LEAKS = re.compile(
    r"Traceback \(most recent|File \"|\.py\b|site-packages|/work/|/usr/|/tmp/|<class |<module |<function |"
    r"\bgateway\.[a-z_]+\.|\bPyro5\.|\brpyc\.|\bthriftpy2\.|0x[0-9a-f]{6,}"
)


# What the caller itself sent (a test's generated arguments): an error may quote it back, and that is no leak.
ECHOED: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar("echoed", default=())


def assert_no_leak(message: str) -> None:
    """Fail the test that received ``message`` if it carries anything internal."""
    for sent in ECHOED.get():
        if LEAKS.search(sent):  # only input that itself looks like a leak is taken out of the message
            message = message.replace(repr(sent)[1:-1], "").replace(sent, "")
    leak = LEAKS.search(message)
    assert leak is None, f"an error leaks {leak.group(0)!r}: {message!r}"


class RemoteError(Exception):
    """A failure as the client saw it: the stable code and the message (checked for leaks)."""

    def __init__(self, code: str, message: str, native: Any = None) -> None:
        super().__init__(f"{code}: {message}")
        assert_no_leak(message)
        self.code, self.message, self.native = code, message, native


def code_of(message: str) -> str:
    return message.split(":", 1)[0]


class Client:
    name = ""
    named_arguments = True
    dotted = True
    idl_typed = False  # calls are typed by an IDL (Thrift, gRPC): no missing fields, no wrong types, no free names

    def method(self, name: str) -> str:
        return name if self.dotted else name.replace(".", "_")

    def multicall(self, calls: list[tuple[str, list[Any]]]) -> list[Any]:
        """[result] per success, RemoteError per failure."""
        out = self.call("system.multicall", [{"methodName": self.method(m), "params": p} for m, p in calls])
        return [r[0] if isinstance(r, list) else RemoteError(code_of(r["faultString"]), r["faultString"]) for r in out]

    def close(self) -> None:
        pass


class XMLRPCClient(Client):
    name = "xmlrpc"
    named_arguments = False

    def __init__(self, port: int) -> None:
        self.proxy = xmlrpc.client.ServerProxy(f"http://127.0.0.1:{port}/RPC2")

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        assert not kwargs, "XML-RPC has no named arguments"
        try:
            return getattr(self.proxy, method)(*args)
        except xmlrpc.client.Fault as fault:
            raise RemoteError(code_of(fault.faultString), fault.faultString, fault) from None

    def close(self) -> None:
        self.proxy("close")()


class JSONRPCClient(Client):
    name = "jsonrpc"

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.next_id = 0

    def post(self, body: Any) -> tuple[int, Any]:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.conn.request("POST", "/", data, {"Content-Type": "application/json"})
        response = self.conn.getresponse()
        raw = response.read()
        return response.status, (json.loads(raw) if raw else None)

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        assert not (args and kwargs), "JSON-RPC takes positional or named parameters, not both"
        self.next_id += 1
        status, answer = self.post(
            {"jsonrpc": "2.0", "method": method, "params": kwargs or list(args), "id": self.next_id}
        )
        assert status == 200 and answer["id"] == self.next_id
        if "error" in answer:
            raise RemoteError(answer["error"]["data"]["code"], answer["error"]["message"], answer["error"])
        return answer["result"]

    def close(self) -> None:
        self.conn.close()


class PyroClient(Client):
    name = "pyro"
    dotted = False

    def __init__(self, port: int) -> None:
        self.proxy = Pyro5.api.Proxy(f"PYRO:netops@127.0.0.1:{port}")

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        self.proxy._pyroClaimOwnership()  # a Pyro5 proxy belongs to one thread at a time
        try:
            return getattr(self.proxy, self.method(method))(*args, **kwargs)
        except Exception as exc:
            raise RemoteError(code_of(str(exc)), str(exc), exc) from None

    def close(self) -> None:
        self.proxy._pyroClaimOwnership()
        self.proxy._pyroRelease()


def plain(value: Any) -> Any:
    """Read an RPyC result view into plain data, the way a caller would (dict(r), list(r))."""
    if isinstance(value, (str, int, float, bool)):
        return value
    if hasattr(value, "keys"):
        return {k: plain(v) for k, v in dict(value).items()}
    return [plain(v) for v in list(value)]


class RPyCClient(Client):
    name = "rpyc"
    dotted = False

    def __init__(self, port: int) -> None:
        self.conn = rpyc.connect("127.0.0.1", port, config={"sync_request_timeout": 30})

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return plain(getattr(self.conn.root, self.method(method))(*args, **kwargs))
        except Exception as exc:
            message = str(exc).split("\n\n", 1)[0]
            raise RemoteError(code_of(message), message, exc) from None

    def close(self) -> None:
        self.conn.close()


class ThriftClient(Client):
    name = "thrift"
    dotted = False
    idl_typed = True

    def __init__(self, port: int) -> None:
        self.port = port
        self.module = thriftpy2.load(str(IDL), module_name="netops_client_thrift")
        self.client = make_client(self.module.NetOps, "127.0.0.1", port, timeout=30_000)

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return struct_to_dict(getattr(self.client, self.method(method))(*args, **kwargs))
        except self.module.NetOpsError as exc:
            raise RemoteError(exc.code, exc.message, exc) from None

    def multicall(self, calls: list[tuple[str, list[Any]]]) -> list[Any]:
        union = []
        for name, params in calls:
            op = REGISTRY.get(name)
            names = [p.name for p in op.params][: len(params)]
            args = getattr(self.module, args_struct_name(op))(**dict(zip(names, params, strict=True)))
            union.append(self.module.Call(**{name: args}))
        out = []
        for outcome in self.call("system.multicall", union):
            if outcome["error"] is not None:
                out.append(RemoteError(outcome["error"]["code"], outcome["error"]["message"]))
            else:
                out.append(next(v for k, v in outcome.items() if v is not None))
        return out

    def raw_call(self, name: str) -> Any:
        """Send a call of any name (the generated client only sends the IDL's) and read the reply."""
        from thriftpy2.protocol.binary import TBinaryProtocol
        from thriftpy2.thrift import TApplicationException, TMessageType
        from thriftpy2.transport.buffered import TBufferedTransport
        from thriftpy2.transport.socket import TSocket

        trans = TBufferedTransport(TSocket("127.0.0.1", self.port))
        trans.open()
        try:
            proto = TBinaryProtocol(trans)
            proto.write_message_begin(name, TMessageType.CALL, 1)
            trans.write(b"\x00")  # an empty argument struct
            trans.flush()
            _, kind, _ = proto.read_message_begin()
            assert kind == TMessageType.EXCEPTION
            exc = TApplicationException()
            proto.read_struct(exc)
            return exc
        finally:
            trans.close()

    def close(self) -> None:
        self.client.close()


class MCPClient(Client):
    """The official MCP SDK's client (Streamable HTTP), driven from this thread through an anyio portal."""

    name = "mcp"
    dotted = False

    def __init__(self, port: int, url: Any = "", **options: Any) -> None:
        import mcp
        from anyio.from_thread import start_blocking_portal

        self._portal = start_blocking_portal()
        self.portal = self._portal.__enter__()
        self._session = self.portal.wrap_async_context_manager(
            mcp.Client(url or f"http://127.0.0.1:{port}/mcp", **options)
        )
        self.session = self._session.__enter__()
        tools = self.portal.call(self.session.list_tools)
        self.tools = {t.name: t for t in tools.tools}

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        from mcp.shared.exceptions import MCPError

        name = self.method(method)
        names = list(self.tools[name].input_schema["properties"]) if name in self.tools else []
        names += [f"extra{i}" for i in range(len(args) - len(names))]  # too many: the gateway says so
        arguments = {**dict(zip(names, args, strict=False)), **kwargs}
        try:
            result = self.portal.call(self.session.call_tool, name, arguments)
        except MCPError as exc:
            data = exc.error.data if isinstance(exc.error.data, dict) else {}
            raise RemoteError(data.get("code", "protocol_error"), exc.error.message, exc) from None
        text = result.content[0].text
        if result.is_error:
            raise RemoteError(result.meta["netops/code"], text, result)
        structured = result.structured_content
        value = structured["result"] if list(self.tools[name].output_schema["properties"]) == ["result"] else structured
        if len(text) <= TEXT_LIMIT:  # the text rendering is the same result, unless it was too long to repeat
            assert json.loads(text) == value
        return value

    def close(self) -> None:
        self._session.__exit__(None, None, None)
        self._portal.__exit__(None, None, None)


class GRPCClient(Client):
    """grpcio knowing nothing in advance: the service, its methods and messages come from server reflection."""

    name = "grpc"
    dotted = False
    idl_typed = True
    SYSTEM = {
        "system_listMethods": "ListMethods",
        "system_methodHelp": "MethodHelp",
        "system_methodSignature": "MethodSignature",
        "system_multicall": "Multicall",
    }

    def __init__(self, port: int, target: str = "", channel: Any = None) -> None:
        import grpc
        from google.protobuf.descriptor_pool import DescriptorPool
        from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

        self.channel = channel or grpc.insecure_channel(target or f"127.0.0.1:{port}")
        self.pool = DescriptorPool(ProtoReflectionDescriptorDatabase(self.channel))
        self.service = self.pool.FindServiceByName("netops.v1.NetOps")

    def rpc(self, name: str) -> str:
        return self.SYSTEM.get(name) or "".join(part.capitalize() for part in name.split("_"))

    def stub(self, rpc: str) -> tuple[Any, Any, Any]:
        from google.protobuf.message_factory import GetMessageClass

        method = self.service.methods_by_name[rpc]
        request, result = GetMessageClass(method.input_type), GetMessageClass(method.output_type)
        path = f"/netops.v1.NetOps/{rpc}"
        return self.channel.unary_unary(path, request.SerializeToString, result.FromString), request, method

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        import grpc
        from google.protobuf.json_format import MessageToDict

        name = self.method(method)
        rpc = self.rpc(name)
        try:
            if rpc not in self.service.methods_by_name:  # a name the service does not have, sent anyway
                self.channel.unary_unary(f"/netops.v1.NetOps/{rpc}")(b"", timeout=30)
            stub, request, descriptor = self.stub(rpc)
            fields = [f.name for f in descriptor.input_type.fields]
            if len(args) > len(fields):  # a generated stub cannot send more fields than the message has
                raise RemoteError("invalid_argument", f"{rpc} takes {len(fields)} fields")
            arguments = {**dict(zip(fields, args, strict=False)), **kwargs}
            if rpc == "Multicall":
                arguments = {"calls": [self.typed_call(c) for c in arguments["calls"]]}
            reply = stub(request(**arguments), timeout=30)
        except grpc.RpcError as exc:
            code = dict(exc.trailing_metadata() or ()).get("netops-code")
            if code is None and exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                code = "method_not_found"
            raise RemoteError(code or exc.code().name, exc.details() or "", exc) from None
        plain = MessageToDict(reply, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
        if rpc in ("ListMethods", "MethodHelp"):
            return next(iter(plain.values()))
        if rpc == "MethodSignature":
            return [s["types"] for s in plain["signatures"]]
        if rpc == "Multicall":
            return [
                {"faultCode": -1, "faultString": o["error"]["message"]} if "error" in o else [next(iter(o.values()))]
                for o in plain["outcomes"]
            ]
        return plain

    def typed_call(self, item: Any) -> dict[str, Any]:
        name, params = item["methodName"], item.get("params", [])
        fields = [f.name for f in self.service.methods_by_name[self.rpc(name)].input_type.fields]
        return {name: dict(params) if isinstance(params, dict) else dict(zip(fields, params, strict=False))}

    def multicall(self, calls: list[tuple[str, list[Any]]]) -> list[Any]:
        out = self.call("system.multicall", [{"methodName": self.method(m), "params": p} for m, p in calls])
        return [r[0] if isinstance(r, list) else RemoteError(code_of(r["faultString"]), r["faultString"]) for r in out]

    def close(self) -> None:
        self.channel.close()


CLIENTS = {
    c.name: c for c in (XMLRPCClient, JSONRPCClient, PyroClient, ThriftClient, RPyCClient, MCPClient, GRPCClient)
}


def connect(running: Running, name: str) -> Client:
    return CLIENTS[name](running.port(name))


def fault_number(error: RemoteError) -> str:
    return code_for_number(error.native.faultCode) if isinstance(error.native, xmlrpc.client.Fault) else error.code
