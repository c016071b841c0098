"""The clients in clients/ (Node.js, shell, Thrift-generated Python and Node.js) against a live gateway.

Outside CI a test skips, saying what to install, when its tool is missing; in CI (CI=true) a missing
tool fails the test, since .ci/run installs them all (scripts/setup-tools).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.server import Running
from tests.conftest import require, require_tool

ROOT = Path(__file__).resolve().parents[2]
CLIENTS = ROOT / "clients"
NODE_MODULES = CLIENTS / "node" / "node_modules"


def need_node_packages() -> None:
    require_tool("node", "apt-get install nodejs, or run scripts/setup-tools")
    require(NODE_MODULES.is_dir(), "clients/node/node_modules", "run scripts/setup-tools")


def run(*argv: str | Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})}
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_node_mcp_sdk(running):
    """The official TypeScript MCP SDK: list the tools, call resolve and mx_lookup, and a failing call."""
    need_node_packages()
    url = f"http://127.0.0.1:{running.port('mcp')}/mcp"
    out = json.loads(run("node", CLIENTS / "node" / "mcp_demo.mjs", url, "www.example.test", "example.test"))
    assert out["server"] == "netops-gateway" and "mx_lookup" in out["tools"] and "rpc_discover" not in out["tools"]
    assert out["resolve"]["canonical_name"] == "www.example.test"
    assert [mx["exchange"] for mx in out["mx_lookup"]["mx"]][:2] == ["mx1.example.test", "mx2.example.test"]
    failed = out["failed"]
    assert failed["isError"] and failed["code"] == "not_found" and failed["text"].startswith("not_found: no such")


def test_node_grpc_js_with_the_proto(running):
    """@grpc/grpc-js with @grpc/proto-loader on idl/netops.proto: listing, a call, a multicall, an error code."""
    need_node_packages()
    out = json.loads(
        run(
            "node", CLIENTS / "node" / "grpc_demo.js", ROOT / "idl" / "netops.proto",
            f"127.0.0.1:{running.port('grpc')}", "www.example.test",
        )
    )  # fmt: skip
    assert "mx_lookup" in out["methods"] and "rpc_discover" not in out["methods"]
    assert out["resolve"]["canonical_name"] == "www.example.test" and out["resolve"]["addresses"]
    assert out["multicall"] == [{"host": "www.example.test"}, {"error": "not_found"}]
    assert out["error"]["status"] == "PERMISSION_DENIED" and out["error"]["code"] == "forbidden_target"
    assert out["error"]["details"].startswith("forbidden_target: ")


def test_mcp_inspector_cli_lists_and_calls(running, tmp_path):
    """MCP Inspector's CLI mode, as people poke at an MCP server from a terminal."""
    need_node_packages()
    inspector = NODE_MODULES / ".bin" / "mcp-inspector"
    url = f"http://127.0.0.1:{running.port('mcp')}/mcp"
    env = {"MCP_CATALOG_PATH": str(tmp_path / "catalog.json"), "HOME": str(tmp_path)}
    listed = json.loads(run(inspector, "--cli", url, "--transport", "http", "--method", "tools/list", env=env))
    assert {t["name"] for t in listed["tools"]} >= {"resolve", "mx_lookup", "system_multicall"}
    called = json.loads(
        run(
            inspector, "--cli", url, "--transport", "http", "--method", "tools/call",
            "--tool-name", "resolve", "--tool-arg", "host=www.example.test", env=env,
        )
    )  # fmt: skip
    assert called["structuredContent"]["host"] == "www.example.test"


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    """Python and Node.js code generated from idl/netops.thrift by the Apache Thrift compiler."""
    require_tool("thrift", "apt-get install thrift-compiler, or run scripts/setup-tools")
    out = tmp_path_factory.mktemp("thrift-gen")
    run("sh", CLIENTS / "thrift" / "generate.sh", out)
    return out


def test_node_jsonrpc_and_xmlrpc(running):
    need_node_packages()
    out = json.loads(
        run(
            "node",
            CLIENTS / "node" / "rpc_demo.js",
            f"http://127.0.0.1:{running.port('jsonrpc')}/",
            f"http://127.0.0.1:{running.port('xmlrpc')}/RPC2",
            "www.example.test",
        )
    )
    assert "resolve" in out["jsonrpc_methods"] and len(out["jsonrpc_methods"]) == 12
    assert out["jsonrpc_resolve"]["canonical_name"] == "www.example.test"
    assert out["jsonrpc_batch"] == [{"host": "www.example.test"}, {"error": "not_found"}]
    assert out["jsonrpc_error"] == {"code": -32004, "stable_code": "forbidden_target"}
    assert out["xmlrpc_signature"] == [["struct", "string"], ["struct", "string", "string"]]
    assert {a["address"] for a in out["xmlrpc_resolve"]["addresses"]} == {"192.0.2.10", "192.0.2.11", "2001:db8::10"}
    assert out["xmlrpc_multicall"] == [{"host": "www.example.test"}, {"fault": -32601}]
    assert out["xmlrpc_fault"] == {
        "faultCode": -32001,
        "faultString": "not_found: no such domain: no-such-name.example.test",
    }


def test_shell_curl_examples(running):
    require_tool("curl", "apt-get install curl")
    out = run(
        "sh", CLIENTS / "shell" / "jsonrpc.sh", f"http://127.0.0.1:{running.port('jsonrpc')}/", "www.example.test"
    )
    answers = [json.loads(line) for line in out.splitlines() if not line.startswith("#")]
    assert answers[0]["result"]["canonical_name"] == "www.example.test"
    assert [a["id"] for a in answers[1]] == [1, 2] and answers[1][1]["result"] == [["struct", "string", "int"]]
    assert answers[2]["error"]["data"]["code"] == "forbidden_target"


def test_thrift_generated_python_client(running, generated):
    pytest.importorskip("thrift", reason="the official thrift package is in the test extras")
    out = json.loads(
        run(
            sys.executable,
            CLIENTS / "thrift" / "python_client.py",
            generated,
            "127.0.0.1",
            running.port("thrift"),
            "www.example.test",
        )
    )
    assert "system_multicall" in out["methods"]
    assert out["resolve"]["host"] == "www.example.test" and "2001:db8::10" in out["resolve"]["addresses"]
    assert out["error"] == {"code": "not_found", "message": "not_found: no such domain: no-such-name.example.test"}
    assert out["multicall"] == [{"host": "www.example.test"}, {"error": "not_found"}]


def test_thrift_generated_python_client_with_a_token(transport_settings, generated, tmp_path):
    """The token line written by generated code on the official runtime, before its first call."""
    pytest.importorskip("thrift", reason="the official thrift package is in the test extras")
    token = "generated-clients-can-send-this-line"
    (tmp_path / "tokens").write_text(f"generated:{token}\n")
    locked = Running(transport_settings.replace(transports=("thrift",), token_file=str(tmp_path / "tokens")))
    locked.start()
    try:
        args = [sys.executable, CLIENTS / "thrift" / "python_client.py", generated, "127.0.0.1", locked.port("thrift")]
        out = json.loads(run(*args, "www.example.test", env={"NETOPS_TOKEN": token}))
        assert out["resolve"]["host"] == "www.example.test"
    finally:
        locked.stop()


def test_thrift_generated_node_client(running, generated):
    need_node_packages()
    out = json.loads(
        run(
            "node",
            CLIENTS / "node" / "thrift_demo.js",
            generated / "gen-nodejs",
            "127.0.0.1",
            running.port("thrift"),
            "www.example.test",
            env={"NODE_PATH": str(NODE_MODULES)},
        )
    )
    assert len(out["methods"]) == 11
    assert out["resolve"]["host"] == "www.example.test"
    assert out["error"] == {"isNetOpsError": True, "code": "not_found"}
    assert out["multicall"] == [{"host": "www.example.test"}, {"error": "not_found"}]
