"""MCP, the Model Context Protocol, for AI agents: Streamable HTTP at ``/mcp``, one tool per operation.

The tools are the registry's operations under their underscore names
(``resolve``, ``mx_lookup``, ``system_multicall``…), with ``inputSchema``
and ``outputSchema`` built from the same JSON Schemas as the OpenRPC
document.  A result comes back twice, as MCP asks: ``structuredContent``
(the struct itself, or ``{"result": value}`` for a list or a scalar) and a
JSON text rendering.  An operation's failure is a tool result with
``isError`` and the stable code leading the text (``not_found: …``) and in
``_meta`` (``netops/code``); an unknown tool and malformed requests are
JSON-RPC errors.  Multicall is the ``system_multicall`` tool: MCP dropped
JSON-RPC batches in its 2025-06-18 revision.

:class:`Protocol` is the protocol without I/O: the HTTP app below and
``netops mcp`` (MCP on stdio, forwarding to a remote gateway) share it.
Both eras of the Streamable HTTP transport are served.  The current,
stateless revision (2026-07-28): no handshake and no session, each request
carries its revision and the client's capabilities in ``params._meta`` and
repeats its revision, method and tool name in headers, checked in the
specification's order; ``server/discover`` says what is served.  The
handshake era (2024-11-05 to 2025-11-25, negotiated at ``initialize``): a
session per ``initialize`` (``Mcp-Session-Id``, bound to the caller's token,
bounded in number and idle time).  In both, answers are JSON rather than
event streams (a call has one answer), ``GET`` is 405 (the gateway sends
nothing unasked), and the ``Origin`` check the specification requires
against DNS rebinding comes first.  Everything else (tokens, TLS, caps, metrics) is the connection
layer's, as on every transport.
"""

from __future__ import annotations

import base64
import collections
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import urlsplit

from gateway import __version__
from gateway.core import UNDERSCORE, Gateway, fault
from gateway.errors import INVALID_ARGUMENT, METHOD_NOT_FOUND, GatewayError
from gateway.net.budget import MAX_DEPTH, MAX_ITEMS, json_within_budget, nested_within
from gateway.net.session import Link
from gateway.observe import Caller
from gateway.openrpc import json_schema
from gateway.registry import Operation
from gateway.transports._http import App, HTTPCodec, Reply, text_response
from gateway.transports.base import dump_json, guarded, load_json

if TYPE_CHECKING:
    from gateway.client import NetOpsClient

__all__ = ["MODERN", "VERSIONS", "MCPCodec", "Protocol", "serve_stdio", "tool"]

VERSIONS = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")  # handshake era, oldest to newest
MODERN = ("2026-07-28",)  # the stateless revisions: no initialize, no session, each request carries its version
UNVERSIONED = "2025-03-26"  # a request without MCP-Protocol-Version is read as this (the specification's rule)
MAX_SESSIONS = 10_000  # the oldest idle session goes first when more are opened
SESSION_IDLE = 3600.0  # seconds a session lives unused
STRUCTURED = "2025-06-18"  # the first revision with structuredContent
VERSION_KEY = "io.modelcontextprotocol/protocolVersion"  # a stateless request's _meta: its revision…
CAPABILITIES_KEY = "io.modelcontextprotocol/clientCapabilities"  # …and its client's capabilities
LIST_TTL_MS = 300_000  # how long a client may cache tools/list and server/discover (the tools change on restart)
# The text rendering of a result repeats structuredContent for clients that read only text; from the revision
# with structuredContent on, it stops after this many characters, so a 10 MiB body is not sent twice.
TEXT_LIMIT = 16 * 1024
INSTRUCTIONS = (
    "Networking diagnostics: DNS resolution and reverse lookups, MX lookups (RFC 5321 order), TLS certificate "
    "checks, HTTP(S) fetches and TCP port checks, under the gateway's target policy. Call several at once "
    "with system_multicall."
)

# JSON-RPC 2.0 error numbers, and MCP's for stateless requests
PARSE_ERROR, INVALID_REQUEST, NO_METHOD, INVALID_PARAMS = -32700, -32600, -32601, -32602
HEADER_MISMATCH, UNSUPPORTED_VERSION = -32020, -32022
MODERN_STATUS = {NO_METHOD: 404}  # a stateless error's HTTP status besides 400 (200 for a result)
LOCAL_ORIGINS = frozenset({"localhost", "127.0.0.1", "::1"})
SERVER_INFO = {"name": "netops-gateway", "title": "NetOps Gateway", "version": __version__}


def tool(name: str, op: Operation) -> dict[str, Any]:
    """The MCP tool description of operation ``op`` under ``name``."""
    defs: dict[str, Any] = {}
    ref = "#/$defs/"
    properties = {}
    for param in op.params:
        schema = json_schema(param.schema, defs, ref)
        properties[param.name] = schema if param.required else {**schema, "default": param.default}
    inputs = {
        "type": "object",
        "properties": properties,
        "required": [p.name for p in op.params if p.required],
        "additionalProperties": False,
    }
    if op.result.kind == "struct":
        json_schema(op.result, defs, ref)
        outputs = dict(defs.pop(op.result.name))
    else:
        outputs = {
            "type": "object",
            "properties": {"result": json_schema(op.result, defs, ref)},
            "required": ["result"],
        }
    for schema, used in ((inputs, _refs(inputs)), (outputs, _refs(outputs))):
        if used:
            schema["$defs"] = {n: defs[n] for n in sorted(_closure(used, defs))}
    errors = ", ".join(op.errors) or "none"
    return {
        "name": name,
        "description": f"{op.doc}\n\nErrors: {errors}.",
        "inputSchema": inputs,
        "outputSchema": outputs,
        # Every operation only reads; the system ones touch nothing outside the gateway.
        "annotations": {"readOnlyHint": True, "openWorldHint": not op.name.startswith("system.")},
    }


def _refs(schema: Any) -> set[str]:
    if isinstance(schema, dict):
        found = {schema["$ref"].rsplit("/", 1)[1]} if "$ref" in schema else set()
        return found.union(*(_refs(v) for v in schema.values()))
    if isinstance(schema, list):
        return set().union(*(_refs(v) for v in schema))
    return set()


def _closure(names: set[str], defs: Mapping[str, Any]) -> set[str]:
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(_refs(defs[name]))
    return seen


def _error(number: int, message: str, id: Any = None, code: str = "") -> dict[str, Any]:
    error: dict[str, Any] = {"code": number, "message": message}
    if code:
        error["data"] = {"code": code}
    return {"jsonrpc": "2.0", "id": id, "error": error}


def _id(message: Any) -> Any:
    return message.get("id") if isinstance(message, dict) and type(message.get("id")) in (str, int) else None


class Protocol:
    """MCP's requests answered from a set of tools and a way to call them; no I/O."""

    def __init__(self, tools: Iterable[tuple[str, Operation]]) -> None:
        self.operations = dict(tools)
        self.tools = [tool(name, op) for name, op in sorted(self.operations.items())]

    def initialize(self, params: Any) -> dict[str, Any]:
        """The answer to ``initialize``: the client's protocol revision if served, else the newest."""
        asked = params.get("protocolVersion") if isinstance(params, dict) else None
        return {
            "protocolVersion": asked if asked in VERSIONS else VERSIONS[-1],
            "capabilities": {"tools": {"listChanged": False}},
            "serverInfo": SERVER_INFO,
            "instructions": INSTRUCTIONS,
        }

    def handle(
        self, message: dict[str, Any], call: Callable[[str, dict[str, Any]], Any], version: str = UNVERSIONED
    ) -> dict[str, Any]:
        """The response to one JSON-RPC request in a session of protocol ``version``; ``call(tool, arguments)``
        runs a tool (raises GatewayError)."""
        method, params, id = message["method"], message.get("params", {}), message["id"]
        if method == "initialize":
            result = self.initialize(params)
        elif method == "server/discover" and version in MODERN:
            result = {
                "supportedVersions": list(MODERN),
                "capabilities": {"tools": {"listChanged": False}},
                "serverInfo": SERVER_INFO,
                "instructions": INSTRUCTIONS,
            }
        elif method == "ping":
            result = {}
        elif method == "tools/list":
            result = {"tools": self.tools}
        elif method == "tools/call":
            if not (isinstance(params, dict) and type(params.get("name")) is str):
                return _error(INVALID_PARAMS, "tools/call takes a tool name and its arguments", id)
            arguments = params.get("arguments") or {}
            if not isinstance(arguments, dict):
                return _error(INVALID_PARAMS, "a tool's arguments are an object", id)
            try:
                structured = version in MODERN or VERSIONS.index(version) >= VERSIONS.index(STRUCTURED)
                result = self.call_tool(params["name"], arguments, call, structured)
            except GatewayError as exc:  # no such tool: a protocol error, as the specification asks
                return _error(INVALID_PARAMS, str(exc), id, exc.code)
        else:
            return _error(NO_METHOD, f"method not found: {str(method)[:100]!r}", id)
        if version in MODERN:  # a stateless result says what it is, and how long it may be cached
            result = {**result, "resultType": "complete"}
            if method in ("server/discover", "tools/list"):
                result.update(cacheScope="public", ttlMs=LIST_TTL_MS)
        return {"jsonrpc": "2.0", "id": id, "result": result}

    def call_tool(
        self, name: str, arguments: dict[str, Any], call: Callable[[str, dict[str, Any]], Any], structured: bool
    ) -> dict[str, Any]:
        """A ``tools/call`` result: the structured result and its text, or ``isError`` with the stable code."""
        if name not in self.operations:
            raise GatewayError(METHOD_NOT_FOUND, f"no tool named {name[:100]!r}")
        try:
            value = call(name, arguments)
        except GatewayError as exc:
            if exc.code == METHOD_NOT_FOUND:
                raise
            return {
                "content": [{"type": "text", "text": str(exc)}],
                "isError": True,
                "_meta": {"netops/code": exc.code},
            }
        # Rendered from a copy with long strings cut first: a 10 MiB body is not encoded twice to be cut.
        text = json.dumps(_shortened(value) if structured else value, ensure_ascii=False)
        if structured and (len(text) > TEXT_LIMIT or _longer(value)):
            text = f"{text[:TEXT_LIMIT]}… (cut here: the whole result is in structuredContent)"
        return {
            "content": [{"type": "text", "text": text}],
            "structuredContent": value if isinstance(value, dict) else {"result": value},
            "isError": False,
        }


def _stateless(message: dict[str, Any], headers: Mapping[str, str]) -> bool:
    """Whether a request is of a stateless revision: it names one in its header or carries the envelope."""
    if message["method"] == "server/discover" or headers.get("mcp-protocol-version") in MODERN:
        return True
    meta = (message.get("params") or {}).get("_meta")
    return isinstance(meta, dict) and VERSION_KEY in meta


def _header_value(value: str | None) -> str | None:
    """An Mcp-Name header's value: text outside printable ASCII travels as ``=?base64?…?=``."""
    if value is not None and value.startswith("=?base64?") and value.endswith("?="):
        try:
            return base64.b64decode(value[9:-2], validate=True).decode()
        except (ValueError, UnicodeDecodeError):
            return None
    return value


def _shortened(value: Any, limit: int = TEXT_LIMIT) -> Any:
    """``value`` with every string and list cut to ``limit`` (what a text rendering of that length can show)."""
    if isinstance(value, str):
        return value[:limit]
    if isinstance(value, dict):
        return {k: _shortened(v, limit) for k, v in value.items()}
    if isinstance(value, list):
        return [_shortened(v, limit) for v in value[:limit]]
    return value


def _longer(value: Any, limit: int = TEXT_LIMIT) -> bool:
    """Whether :func:`_shortened` cut anything."""
    if isinstance(value, (str, list)) and len(value) > limit:
        return True
    if isinstance(value, dict):
        return any(_longer(v, limit) for v in value.values())
    if isinstance(value, list):
        return any(_longer(v, limit) for v in value)
    return False


def invalid(message: Any) -> str:
    """Why ``message`` is not a JSON-RPC 2.0 request or notification (""), as the checks the spec makes."""
    if isinstance(message, list):
        return "batches are not part of MCP since 2025-06-18; call several tools with system_multicall"
    if not isinstance(message, dict):
        return "a message must be a JSON object"
    if message.get("jsonrpc") != "2.0":
        return 'a message must have "jsonrpc": "2.0"'
    if "method" not in message:
        return ""  # a response to us: we never ask, so it is acknowledged and dropped
    if not isinstance(message["method"], str):
        return 'a request must have a "method" string'
    if "params" in message and not isinstance(message["params"], dict):
        return '"params" must be an object'
    if type(message.get("id")) not in (str, int, type(None)) or ("id" in message and message["id"] is None):
        return '"id" must be a string or an integer'
    return ""


def serve_stdio(client: NetOpsClient, stdin: TextIO, stdout: TextIO) -> None:
    """MCP on stdio (one JSON-RPC message per line) for an agent, each tool call forwarded through ``client``.

    The tools are this package's operations that the remote gateway lists, so an agent sees what the gateway
    it reaches serves. A gateway that cannot be reached makes each call an ``isError`` result naming why.
    """
    from gateway.core import SYSTEM_OPERATIONS, public_name
    from gateway.ops import default_registry
    from gateway.registry import describe

    known = [op for op in (*default_registry(), *map(describe, SYSTEM_OPERATIONS)) if not op.untyped]
    try:
        listed = {name.replace(".", "_") for name in client.methods()}
    except GatewayError:
        listed = {public_name(op.name, UNDERSCORE) for op in known}  # unreachable now: say why at each call
    protocol = Protocol(
        (public_name(op.name, UNDERSCORE), op) for op in known if public_name(op.name, UNDERSCORE) in listed
    )
    names = {public_name(op.name, UNDERSCORE): op.name for op in known}

    def call(name: str, arguments: dict[str, Any]) -> Any:
        if names[name] != "system.multicall":
            return client.call(names[name], **arguments)
        calls = arguments.get("calls")
        if not isinstance(calls, list):
            raise GatewayError(INVALID_ARGUMENT, "system_multicall takes calls: a list of {methodName, params}")
        outcomes = client.multicall(calls)
        return [fault(r) if isinstance(r, GatewayError) else [r] for r in outcomes]

    version = UNVERSIONED
    for line in stdin:
        if not line.strip():
            continue
        try:
            message = load_json(line.encode())
        except (ValueError, RecursionError):
            answer: dict[str, Any] | None = _error(PARSE_ERROR, "message is not valid JSON")
        else:
            problem = invalid(message)
            if problem:
                answer = _error(INVALID_REQUEST, problem, _id(message))
            elif "id" not in message or "method" not in message:
                answer = None  # notifications/initialized and the like, or a response
            else:
                meta = (message.get("params") or {}).get("_meta")
                stated = meta.get(VERSION_KEY) if isinstance(meta, dict) else None  # a stateless request
                if stated is not None and stated not in MODERN:
                    answer = _error(UNSUPPORTED_VERSION, "Unsupported protocol version", message["id"])
                    answer["error"]["data"] = {"supported": list(MODERN), "requested": stated}
                else:
                    answer = protocol.handle(message, call, stated or version)
                if message["method"] == "initialize" and "result" in answer:
                    version = answer["result"]["protocolVersion"]
        if answer is not None:
            stdout.write(dump_json(answer).decode() + "\n")
            stdout.flush()


class _Sessions:
    """The sessions ``initialize`` opened: who opened each and its protocol revision; bounded and expiring."""

    def __init__(self) -> None:
        self._open: collections.OrderedDict[str, tuple[str, str, float]] = collections.OrderedDict()
        self._lock = threading.Lock()

    def open(self, principal: str, version: str) -> str:
        """A new session id."""
        session = secrets.token_urlsafe(24)
        with self._lock:
            self._open[session] = (principal, version, time.monotonic())
            while len(self._open) > MAX_SESSIONS:
                self._open.popitem(last=False)
        return session

    def close(self, session: str, principal: str) -> bool:
        """End ``principal``'s session; False if there was none."""
        with self._lock:
            entry = self._open.get(session)
            if entry is None or entry[0] != principal:
                return False
            del self._open[session]
            return True

    def version(self, session: str, principal: str) -> str | None:
        """The session's revision if it is open and ``principal``'s (its use keeps it open), else None."""
        now = time.monotonic()
        with self._lock:
            entry = self._open.get(session)
            if entry is None or entry[0] != principal or now - entry[2] > SESSION_IDLE:
                self._open.pop(session, None)
                return None
            self._open[session] = (entry[0], entry[1], now)
            self._open.move_to_end(session)
            return entry[1]


class _Parsed:
    __slots__ = ("headers", "message")

    def __init__(self, message: Any, headers: Mapping[str, str]) -> None:
        self.message = message
        self.headers = headers


class _MCPApp(App):
    paths = frozenset({"/mcp"})
    content_type = "application/json"
    accepts = frozenset({"application/json"})
    transport = "mcp"
    headers = frozenset({b"origin", b"mcp-session-id", b"mcp-protocol-version", b"mcp-method", b"mcp-name"})
    post_only = True  # no server-to-client stream: the gateway sends nothing it was not asked

    def __init__(self, gateway: Gateway) -> None:
        super().__init__(gateway)
        names = gateway.method_names(UNDERSCORE, Caller("mcp", "", typed=True))
        self.protocol = Protocol((name, gateway.lookup(name, UNDERSCORE)) for name in names)
        self.sessions = _Sessions()
        self.origins = frozenset(gateway.services.settings.mcp_origins)

    def check_head(self, headers: Mapping[str, str], link: Link) -> bytes | None:
        """403 to a request whose Origin is neither this host nor an allowed origin (DNS rebinding)."""
        origin = headers.get("origin")
        if origin is None or origin in self.origins:
            return None
        try:
            host = urlsplit(origin).hostname or ""
        except ValueError:
            host = ""
        if host in LOCAL_ORIGINS or host == link.local:
            return None
        return text_response(403, "Origin not allowed (add it to mcp_origins to allow it)")

    def decode(self, body: bytes, caller: Caller, headers: Mapping[str, str]) -> Any:
        too_much = f"a request holds at most {MAX_ITEMS} values, nested at most {MAX_DEPTH} deep"
        if not json_within_budget(body):  # counted before anything is built
            self.gateway.refused(caller, "decode_limit")
            return Reply(400, dump_json(_error(INVALID_REQUEST, too_much, code=INVALID_ARGUMENT)))
        try:
            message = load_json(body)
        except (ValueError, RecursionError):
            self.gateway.refused(caller, "parse_error")
            return Reply(400, dump_json(_error(PARSE_ERROR, "request is not valid JSON")))
        if not nested_within(message, MAX_DEPTH, MAX_ITEMS):
            self.gateway.refused(caller, "decode_limit")
            return Reply(400, dump_json(_error(INVALID_REQUEST, too_much, _id(message), INVALID_ARGUMENT)))
        problem = invalid(message)
        if problem:
            self.gateway.refused(caller, "invalid_request")
            return Reply(400, dump_json(_error(INVALID_REQUEST, problem, _id(message))))
        return _Parsed(message, headers)

    def instant(self, decoded: Any) -> bool:
        """Everything but a tools/call of an operation that does I/O: sessions, lists, refusals, acknowledgements."""
        if type(decoded) is not _Parsed:
            return True  # decode refused it: the reply is written
        message = decoded.message
        if message.get("method") != "tools/call" or "id" not in message:
            return True
        return self.gateway.instant((message.get("params") or {}).get("name"), UNDERSCORE)

    def answer(self, decoded: Any, caller: Caller) -> Reply:
        if type(decoded) is not _Parsed:
            return decoded  # type: ignore[no-any-return]
        message, headers = decoded.message, decoded.headers
        if "id" not in message or "method" not in message:
            return Reply(202)  # a notification or a response: nothing to answer
        if _stateless(message, headers):
            return self._stateless(message, headers, caller)
        if message["method"] == "initialize":
            result = self.protocol.initialize(message.get("params"))
            session = self.sessions.open(caller.principal, result["protocolVersion"])
            body = {"jsonrpc": "2.0", "id": message["id"], "result": result}
            return Reply(200, dump_json(body), (("Mcp-Session-Id", session),))
        asked = headers.get("mcp-protocol-version", UNVERSIONED)
        if asked not in VERSIONS:
            unsupported = f"unsupported MCP-Protocol-Version (served: {', '.join(VERSIONS)})"
            return Reply(400, dump_json(_error(INVALID_REQUEST, unsupported, message["id"])))
        session_id = headers.get("mcp-session-id")
        if session_id is None:
            missing = "send the Mcp-Session-Id that initialize returned"
            return Reply(400, dump_json(_error(INVALID_REQUEST, missing, message["id"])))
        version = self.sessions.version(session_id, caller.principal)
        if version is None:  # 404: the client starts a new session
            return Reply(404, dump_json(_error(INVALID_REQUEST, "no such session; initialize again", message["id"])))

        return Reply(200, dump_json(self.protocol.handle(message, self._caller(caller), version)))

    def _caller(self, caller: Caller) -> Callable[[str, dict[str, Any]], Any]:
        def call(name: str, arguments: dict[str, Any]) -> Any:
            run = lambda: self.gateway.call(name, (), arguments, style=UNDERSCORE, caller=caller)  # noqa: E731
            return guarded(run, f"mcp {name[:50]}")

        return call

    def _stateless(self, message: dict[str, Any], headers: Mapping[str, str], caller: Caller) -> Reply:
        """A request of the 2026-07-28 revision: its envelope checked as the specification orders the checks."""
        id, params = message["id"], message.get("params") or {}
        meta = params.get("_meta")
        if not isinstance(meta, dict) or VERSION_KEY not in meta or CAPABILITIES_KEY not in meta:
            missing = f"params._meta must carry {VERSION_KEY!r} and {CAPABILITIES_KEY!r}"
            return Reply(400, dump_json(_error(INVALID_PARAMS, missing, id)))
        version = meta[VERSION_KEY]
        name = params.get("name") if message["method"] == "tools/call" else None
        if (
            headers.get("mcp-protocol-version") != version
            or headers.get("mcp-method") != message["method"]
            or (name is not None and _header_value(headers.get("mcp-name")) != name)
        ):
            mismatch = "the MCP-Protocol-Version, Mcp-Method and Mcp-Name headers must repeat the request's"
            return Reply(400, dump_json(_error(HEADER_MISMATCH, mismatch, id)))
        if not isinstance(version, str):
            return Reply(400, dump_json(_error(INVALID_PARAMS, "the protocol version is a string", id)))
        if version not in MODERN:
            unsupported = _error(UNSUPPORTED_VERSION, "Unsupported protocol version", id)
            unsupported["error"]["data"] = {"supported": list(MODERN), "requested": version}
            return Reply(400, dump_json(unsupported))
        answer = self.protocol.handle(message, self._caller(caller), version)
        status = MODERN_STATUS.get(answer["error"]["code"], 400) if "error" in answer else 200
        return Reply(status, dump_json(answer))

    def delete(self, headers: Mapping[str, str], caller: Caller) -> Reply:
        """End the caller's session (a client closing cleanly)."""
        ended = self.sessions.close(headers.get("mcp-session-id", ""), caller.principal)
        return Reply(204) if ended else Reply(404, dump_json(_error(INVALID_REQUEST, "no such session")))

    def refuse(self, error: GatewayError) -> bytes:
        return dump_json(_error(INVALID_REQUEST, str(error), code=error.code))


class MCPCodec(HTTPCodec):
    """MCP (Streamable HTTP) on ``/mcp``."""

    name = "mcp"
    path = "/mcp"
    app_class = _MCPApp
    typed = True  # every tool declares its output schema: rpc.discover (any shape) is not a tool

    def snippet(self, host: str, port: int, tls: bool) -> str:
        """The official MCP Python SDK calling the resolve tool."""
        url = repr(self.endpoint(host, port, tls))
        if self.gateway.services.tokens.required:  # the SDK takes headers through its HTTP client
            head = (
                "import asyncio, os\n\nimport httpx2\nfrom mcp import Client\n"
                "from mcp.client.streamable_http import streamable_http_client\n\n"
            )
            auth = "httpx2.AsyncClient(headers={'Authorization': 'Bearer ' + os.environ['NETOPS_TOKEN']})"
            target = f"streamable_http_client({url}, http_client={auth})"
        else:
            head, target = "import asyncio\n\nfrom mcp import Client\n\n", url
        return (
            f"{head}async def main():\n"
            f"    async with Client({target}) as mcp:\n"
            "        result = await mcp.call_tool('resolve', {'host': 'example.com'})\n"
            "        print(result.structured_content)\n\n"
            "asyncio.run(main())"
        )
