"""MCP as its specification asks: sessions, versions, Origin, tools from the registry, errors; and on stdio.

The parity suite runs MCP through the official SDK's client like any transport; this file tests what only
MCP has, at the HTTP level where the SDK would hide it, and the stdio server `netops mcp` through the SDK's
stdio client.
"""

from __future__ import annotations

import http.client
import json
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from gateway.server import Running
from gateway.transports.mcp import MODERN, VERSIONS
from tests.transports.clients import MCPClient, RemoteError

LATEST = VERSIONS[-1]


class Raw:
    """MCP by hand: one keep-alive HTTP connection, the session header once initialize gave one."""

    def __init__(self, port: int, token: str = "") -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self.next_id = 0

    def send(self, body: Any, method: str = "POST", **headers: str) -> tuple[int, dict[str, str], Any]:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.conn.request(method, "/mcp", data if method == "POST" else None, {**self.headers, **headers})
        response = self.conn.getresponse()
        raw = response.read()
        if response.getheader("Connection") == "close":
            self.conn.close()
        content = json.loads(raw) if raw and response.getheader("Content-Type") == "application/json" else raw
        return response.status, dict(response.getheaders()), content

    def request(self, method: str, params: Any = None, **headers: str) -> tuple[int, dict[str, str], Any]:
        self.next_id += 1
        message = {"jsonrpc": "2.0", "id": self.next_id, "method": method}
        if params is not None:
            message["params"] = params
        return self.send(message, **headers)

    def initialize(self, version: str = LATEST) -> str:
        status, headers, answer = self.request(
            "initialize", {"protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}
        )
        assert status == 200, answer
        session = headers["Mcp-Session-Id"]
        self.headers.update({"Mcp-Session-Id": session, "MCP-Protocol-Version": answer["result"]["protocolVersion"]})
        assert self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})[0] == 202
        return session


@pytest.fixture
def raw(running: Running) -> Raw:
    return Raw(running.port("mcp"))


def test_initialize_negotiates_the_revision(raw):
    for version in VERSIONS:
        status, _, answer = raw.request("initialize", {"protocolVersion": version, "capabilities": {}})
        assert status == 200 and answer["result"]["protocolVersion"] == version
    status, headers, answer = raw.request("initialize", {"protocolVersion": "1999-01-01", "capabilities": {}})
    result = answer["result"]
    assert result["protocolVersion"] == LATEST  # a revision the client does not know: it may then disconnect
    assert result["capabilities"] == {"tools": {"listChanged": False}}
    assert result["serverInfo"]["name"] == "netops-gateway" and "system_multicall" in result["instructions"]
    assert len(headers["Mcp-Session-Id"]) >= 32  # a secret: it is the session's only credential besides a token


def test_a_session_is_required_known_and_ends_on_delete(raw):
    status, _, answer = raw.request("tools/list")
    assert status == 400 and answer["error"]["code"] == -32600 and "Mcp-Session-Id" in answer["error"]["message"]
    status, _, _ = raw.request("ping", **{"Mcp-Session-Id": "made-up", "MCP-Protocol-Version": LATEST})
    assert status == 404  # the client starts a new session
    session = raw.initialize()
    assert raw.request("ping")[2]["result"] == {}
    assert raw.send(b"", method="DELETE")[0] == 204
    assert raw.request("ping")[0] == 404
    assert raw.send(b"", method="DELETE", **{"Mcp-Session-Id": session})[0] == 404


def test_protocol_version_header_is_checked(raw):
    raw.initialize()
    status, _, answer = raw.request("ping", **{"MCP-Protocol-Version": "2099-12-31"})
    assert status == 400 and "2025-11-25" in answer["error"]["message"]


def test_origin_from_another_site_is_refused_before_the_body(raw, running):
    """DNS rebinding: a page of another site reaching the gateway through a browser gets 403."""
    status, _, body = raw.request("initialize", {"protocolVersion": LATEST}, Origin="http://attacker.example:7005")
    assert status == 403 and b"Origin" in body
    raw = Raw(running.port("mcp"))
    for origin in ("http://localhost:3000", "http://127.0.0.1", f"http://127.0.0.1:{running.port('mcp')}"):
        assert raw.request("initialize", {"protocolVersion": LATEST}, Origin=origin)[0] == 200, origin


def test_allowed_origins_are_a_setting(transport_settings):
    settings = transport_settings.replace(transports=("mcp",), mcp_origins=("https://console.example",))
    running = Running(settings)
    running.start()
    try:
        raw = Raw(running.port("mcp"))
        assert raw.request("initialize", {}, Origin="https://console.example")[0] == 200
        assert Raw(running.port("mcp")).request("initialize", {}, Origin="https://other.example")[0] == 403
    finally:
        running.stop()


def test_get_is_405_no_stream_and_notifications_are_202(raw):
    assert raw.send(b"", method="GET")[0] == 405
    raw.initialize()
    assert raw.send({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 1}})[0] == 202
    assert raw.send({"jsonrpc": "2.0", "id": 99, "result": {}})[0] == 202  # a response: we never asked, dropped


@pytest.mark.parametrize(
    ("body", "number"),
    [
        (b"{not json", -32700),
        (b"[" * 10_000 + b"]" * 10_000, -32700),  # too deep for the parser
        (json.dumps([{"jsonrpc": "2.0", "id": 1, "method": "ping"}]).encode(), -32600),  # batches left MCP
        (json.dumps({"jsonrpc": "1.0", "id": 1, "method": "ping"}).encode(), -32600),
        (json.dumps({"jsonrpc": "2.0", "id": 1, "method": "ping", "params": [1]}).encode(), -32600),
        (json.dumps({"jsonrpc": "2.0", "id": 1, "method": "x", "params": {"v": [[[[]]]] * 60_000}}).encode(), -32600),
        (b'{"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"n": NaN}}', -32700),
        (b'{"jsonrpc": "2.0", "id": 1, "method": "p\xffing"}', -32700),  # not UTF-8
    ],
    ids=["parse", "deep", "batch", "version", "params", "budget", "nan", "utf8"],
)
def test_malformed_messages_are_json_rpc_errors(raw, body, number):
    status, _, answer = raw.send(body)
    assert status == 400 and answer["error"]["code"] == number
    assert raw.request("initialize", {"protocolVersion": LATEST})[0] == 200  # and the connection still serves


def test_unknown_methods_and_tools_are_protocol_errors(raw):
    raw.initialize()
    _, _, answer = raw.request("resources/list")
    assert answer["error"]["code"] == -32601
    _, _, answer = raw.request("tools/call", {"name": "nope", "arguments": {}})
    assert answer["error"]["code"] == -32602 and answer["error"]["data"]["code"] == "method_not_found"
    _, _, answer = raw.request("tools/call", {"name": "resolve", "arguments": ["localhost"]})
    assert answer["error"]["code"] == -32602


def test_tools_are_the_registry_with_valid_schemas(raw, gateway):
    raw.initialize()
    _, _, answer = raw.request("tools/list")
    tools = {t["name"]: t for t in answer["result"]["tools"]}
    assert set(tools) == set(gateway.method_names("underscore")) - {"rpc_discover"}
    for name, spec in tools.items():
        op = gateway.lookup(name, "underscore")
        assert spec["description"].startswith(op.doc)
        assert spec["inputSchema"]["type"] == spec["outputSchema"]["type"] == "object"
        assert list(spec["inputSchema"]["properties"]) == [p.name for p in op.params]
        jsonschema.Draft202012Validator.check_schema(spec["inputSchema"])
        jsonschema.Draft202012Validator.check_schema(spec["outputSchema"])
    example = {"host": "www.example.test"}
    jsonschema.validate(example, tools["resolve"]["inputSchema"])
    _, _, answer = raw.request("tools/call", {"name": "resolve", "arguments": example})
    result = answer["result"]
    jsonschema.validate(result["structuredContent"], tools["resolve"]["outputSchema"])
    assert json.loads(result["content"][0]["text"]) == result["structuredContent"] and not result["isError"]


def test_operation_errors_are_tool_results_with_the_stable_code(raw):
    raw.initialize()
    _, _, answer = raw.request("tools/call", {"name": "resolve", "arguments": {"host": "nxdomain.example.test"}})
    result = answer["result"]
    assert result["isError"] and result["_meta"] == {"netops/code": "not_found"}
    assert result["content"][0]["text"].startswith("not_found: ") and "structuredContent" not in result
    _, _, answer = raw.request("tools/call", {"name": "resolve", "arguments": {"hots": "x"}})
    assert answer["result"]["_meta"] == {"netops/code": "invalid_argument"}  # the model can correct itself


def test_multicall_is_a_tool(running):
    client = MCPClient(running.port("mcp"))
    try:
        calls = [{"methodName": "resolve", "params": ["www.example.test"]}, {"methodName": "nope", "params": []}]
        outcomes = client.call("system.multicall", calls)
        assert outcomes[0][0]["host"] == "www.example.test"
        assert outcomes[1]["faultString"].startswith("method_not_found")
    finally:
        client.close()


def test_tokens_bind_the_session(transport_settings, tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text("a:token-of-the-first-caller-0123456789\nb:token-of-the-second-caller-987654321\n")
    running = Running(transport_settings.replace(transports=("mcp",), token_file=str(tokens)))
    running.start()
    try:
        port = running.port("mcp")
        status, headers, answer = Raw(port).request("initialize", {"protocolVersion": LATEST})
        assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer")
        assert answer["error"]["data"]["code"] == "unauthenticated"
        first = Raw(port, "token-of-the-first-caller-0123456789")
        session = first.initialize()
        assert first.request("ping")[0] == 200
        second = Raw(port, "token-of-the-second-caller-987654321")
        second.headers.update({"Mcp-Session-Id": session, "MCP-Protocol-Version": LATEST})
        assert second.request("ping")[0] == 404  # another caller's session is no session
    finally:
        running.stop()


def test_sdk_in_both_eras_reads_the_same_results(running):
    """The SDK's default probes server/discover and speaks the stateless 2026-07-28 revision; its legacy mode
    the initialize handshake of 2025-11-25. Same tools, same results."""
    results = {}
    for mode, version in (("auto", MODERN[-1]), ("legacy", VERSIONS[-1])):
        client = MCPClient(running.port("mcp"), mode=mode)
        try:
            assert client.session.session.protocol_version == version
            result = client.call("mx_lookup", "example.test")
            results[mode] = {k: v for k, v in result.items() if k != "elapsed_ms"}
            with pytest.raises(RemoteError) as failed:
                client.call("resolve", "nxdomain.example.test")
            assert failed.value.code == "not_found"
        finally:
            client.close()
    assert results["auto"] == results["legacy"]


# -- the stateless revision (2026-07-28), by hand ------------------------------------------------------
def stateless(raw: Raw, method: str, params: dict[str, Any] | None = None, version: str = MODERN[-1], **headers: str):
    meta = {
        "io.modelcontextprotocol/protocolVersion": version,
        "io.modelcontextprotocol/clientCapabilities": {},
    }
    wanted = {"MCP-Protocol-Version": version, "Mcp-Method": method, **headers}
    if params and "name" in params and method == "tools/call":
        wanted.setdefault("Mcp-Name", params["name"])
    return raw.request(method, {**(params or {}), "_meta": meta}, **wanted)


def test_stateless_results_are_the_specifications_shapes(raw):
    from mcp_types import _v2026_07_28 as modern

    status, headers, answer = stateless(raw, "server/discover")
    assert status == 200 and "Mcp-Session-Id" not in headers  # no session in this revision
    discovered = modern.DiscoverResult.model_validate(answer["result"])
    assert discovered.supported_versions == list(MODERN) and discovered.result_type == "complete"
    status, _, answer = stateless(raw, "tools/list")
    listed = modern.ListToolsResult.model_validate(answer["result"])
    assert {t.name for t in listed.tools} >= {"resolve", "system_multicall"} and listed.ttl_ms > 0
    status, _, answer = stateless(raw, "tools/call", {"name": "resolve", "arguments": {"host": "www.example.test"}})
    called = modern.CallToolResult.model_validate(answer["result"])
    assert not called.is_error and called.structured_content["host"] == "www.example.test"


@pytest.mark.parametrize(
    ("case", "status", "number"),
    [("no envelope", 400, -32602), ("header", 400, -32020), ("version", 400, -32022), ("method", 404, -32601)],
)
def test_stateless_requests_are_checked_in_the_specifications_order(raw, case, status, number):
    if case == "no envelope":
        got = raw.request("tools/list", {}, **{"MCP-Protocol-Version": MODERN[-1], "Mcp-Method": "tools/list"})
    elif case == "header":
        got = stateless(raw, "tools/call", {"name": "resolve", "arguments": {"host": "x"}}, **{"Mcp-Name": "mx_lookup"})
    elif case == "version":
        got = stateless(raw, "tools/list", version="2099-01-01", **{"MCP-Protocol-Version": "2099-01-01"})
    else:
        got = stateless(raw, "resources/list")
    assert got[0] == status and got[2]["error"]["code"] == number, got
    if case == "version":
        assert got[2]["error"]["data"] == {"supported": list(MODERN), "requested": "2099-01-01"}


@pytest.mark.parametrize("transport", ["jsonrpc", "thrift", "rpyc", "mcp", "grpc"])
def test_netops_mcp_on_stdio_forwards_to_a_gateway(running, transport):
    """An agent's command setting: `netops mcp --url <any transport>` through the SDK's stdio client."""
    from mcp import StdioServerParameters

    netops = str(Path(sys.executable).with_name("netops"))
    url = f"{transport}://127.0.0.1:{running.port(transport)}"
    client = MCPClient(0, url=StdioServerParameters(command=netops, args=["mcp", "--url", url]))  # type: ignore[arg-type]
    try:
        assert "mx_lookup" in client.tools and "rpc_discover" not in client.tools
        assert client.session.session.protocol_version == MODERN[-1]  # the SDK's probe found the stateless revision
        assert client.call("resolve", "www.example.test")["host"] == "www.example.test"
        assert client.call("mx_lookup", "example.test")["mx"]
        with pytest.raises(Exception) as failed:
            client.call("resolve", "nxdomain.example.test")
        assert failed.value.code == "not_found"  # type: ignore[attr-defined]
        outcomes = client.call("system.multicall", [{"methodName": "resolve", "params": ["www.example.test"]}])
        assert outcomes[0][0]["host"] == "www.example.test"
    finally:
        client.close()
