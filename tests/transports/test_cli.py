"""The netops command: output for people and for scripts, and its exit codes."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest

from gateway.cli import main, parse_value
from gateway.transports import TRANSPORTS, codec_class, row


def run(*argv: str, stdin: str | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    if stdin is not None:
        old, sys.stdin = sys.stdin, io.StringIO(stdin)
    try:
        status = main(list(argv), out, err)
    finally:
        if stdin is not None:
            sys.stdin = old
    return status, out.getvalue(), err.getvalue()


@pytest.fixture
def url(running, transport):
    return f"{transport}://127.0.0.1:{running.port(transport)}"


def test_call_prints_a_readable_result(url):
    status, out, err = run("call", "--url", url, "mx_lookup", "example.test")
    assert status == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].split() == ["domain", "example.test"]
    assert "preference  exchange               addresses" in out
    assert "10          mx2.example.test       192.0.2.26, 2001:db8::26" in out
    assert "\033[" not in out  # no colour when not on a terminal


def test_call_json_is_the_result(url, gateway):
    status, out, _ = run("call", "--url", url, "--json", "resolve", "www.example.test", "ipv6")
    assert status == 0
    result = json.loads(out)
    assert result["addresses"] == [{"family": "ipv6", "address": "2001:db8::10"}]


def test_call_named_and_typed_arguments(running, http_server):
    url = f"jsonrpc://127.0.0.1:{running.port('jsonrpc')}"
    status, out, _ = run(
        "call",
        "--url",
        url,
        "--json",
        "fetch_url",
        f"http://web.local.test:{http_server.port}/big",
        "-p",
        "max_bytes=10",
    )
    assert status == 0 and json.loads(out)["body"] == "0123456789"
    status, out, _ = run("call", "--url", url, "--json", "tcp_connect", "web.local.test", str(http_server.port))
    assert status == 0 and json.loads(out)["connected"] is True


def test_error_is_one_line_and_exit_1(url):
    status, out, err = run("call", "--url", url, "resolve", "nope.example.test")
    assert status == 1 and out == ""
    assert err == "error: not_found: no such domain: nope.example.test\n"


def test_unreachable_gateway_exits_2(closed_port):
    status, _, err = run("call", "--url", f"jsonrpc://127.0.0.1:{closed_port}", "resolve", "x")
    assert status == 2 and err.startswith("error: connection_failed: cannot reach the gateway")


def test_methods_lists_signatures_and_help(url):
    status, out, _ = run("methods", "--url", url)
    assert status == 0
    assert 'resolve(host: string, family: string="any") -> ResolveResult' in out
    assert "    Look up the addresses of a host name" in out
    status, out, _ = run("methods", "--url", url, "--json")
    typed = codec_class(url.partition(":")[0]).typed  # rpc.discover has no fixed type for Thrift and MCP
    assert len(json.loads(out)) == (11 if typed else 12)


def test_multicall_from_standard_input(url):
    lines = '["resolve", "www.example.test", "ipv6"]\n\n{"methodName": "resolve", "params": ["nope.example.test"]}\n'
    status, out, _ = run("multicall", "--url", url, "--json", stdin=lines)
    assert status == 1  # one call failed
    results = [json.loads(line) for line in out.splitlines()]
    assert results[0]["result"]["addresses"][0]["address"] == "2001:db8::10"
    assert results[1] == {"error": {"code": "not_found", "message": "no such domain: nope.example.test"}}


def test_multicall_from_a_file(url, tmp_path):
    calls = tmp_path / "calls.jsonl"
    calls.write_text('["resolve", "127.0.0.1"]\n["mx_lookup", "nullmx.example.test"]\n')
    status, out, _ = run("multicall", "--url", url, str(calls))
    assert status == 0 and "[0]" in out and "null_mx" in out


def test_multicall_bad_line_is_a_usage_error(url):
    status, _, err = run("multicall", "--url", url, stdin="not json\n")
    assert status == 64 and "line 1 is not JSON" in err


@pytest.mark.parametrize("argv", [["--help"], ["call", "--help"], ["methods", "--help"], ["multicall", "--help"]])
def test_help_everywhere(argv):
    result = subprocess.run([sys.executable, "-m", "gateway.cli", *argv], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and "usage: netops" in result.stdout


def test_the_installed_command(running):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "call",
            "--url",
            f"thrift://127.0.0.1:{running.port('thrift')}",
            "resolve",
            "127.1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and "127.0.0.1" in result.stdout


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("42", 42),
        ("true", True),
        ('{"a": "b"}', {"a": "b"}),
        ("example.com", "example.com"),
        ('"42"', '"42"'),
        ("null", "null"),
    ],
)
def test_arguments_parse_as_json_values_or_strings(text, value):
    assert parse_value(text) == value


def test_help_describes_a_method_from_the_gateway(url):
    status, out, _ = run("help", "--url", url, "mx_lookup")
    assert status == 0
    assert out.startswith("mx_lookup(domain: string) -> MxResult\n\nFind where mail for a domain goes")
    status, out, _ = run("help", "--url", url)
    assert status == 0 and "resolve(host: string" in out


def test_options_go_before_or_after_the_command(url):
    before = run("--url", url, "--json", "call", "resolve", "127.0.0.1")
    after = run("call", "--url", url, "--json", "resolve", "127.0.0.1")
    assert before[0] == after[0] == 0
    assert json.loads(before[1])["addresses"] == json.loads(after[1])["addresses"]
    mixed = run("--json", "call", "--url", url, "resolve", "127.0.0.1")
    assert mixed[0] == 0 and json.loads(mixed[1])["host"] == "127.0.0.1"


@pytest.mark.parametrize(
    ("url", "hint"),
    [
        ("http://127.0.0.1:7002/", f"use {'|'.join(TRANSPORTS)}://host:port, e.g. jsonrpc://127.0.0.1:7002"),
        ("127.0.0.1:7002", f"use {'|'.join(TRANSPORTS)}://host:port"),
        ("jsonrpc://127.0.0.1:7002/rpc", "give host:port only, e.g. jsonrpc://127.0.0.1:7002"),
    ],
)
def test_a_url_no_transport_speaks_is_a_usage_error_with_a_hint(url, hint):
    status, out, err = run("call", "--url", url, "resolve", "x")
    assert status == 64 and out == "" and hint in err and err.count("\n") == 1


def test_a_bad_flag_is_a_usage_error():
    result = subprocess.run([sys.executable, "-m", "gateway.cli", "call", "--nope"], capture_output=True, timeout=30)
    assert result.returncode == 2  # argparse's own code for a command line it cannot read
    status = subprocess.run([sys.executable, "-m", "gateway.cli", "nope"], capture_output=True, timeout=30)
    assert status.returncode == 2


def test_a_call_is_one_call(running, transport):
    """Only arguments whose type is in doubt make netops ask for the method's parameters first."""
    url = f"{transport}://127.0.0.1:{running.port(transport)}"
    metrics = running.metrics

    def count(method: str) -> float:
        name = method if row(transport).style == "dotted" else method.replace(".", "_")
        return sum(
            s.value for m in metrics.registry.collect() if m.name == "netops_calls" for s in m.samples
            if s.name == "netops_calls_total" and s.labels["method"] == name and s.labels["transport"] == transport
        )  # fmt: skip

    helps = count("system.methodHelp")
    assert run("call", "--url", url, "resolve", "www.example.test")[0] == 0
    assert count("system.methodHelp") == helps  # strings only: no question asked
    assert run("call", "--url", url, "resolve", "127.1")[0] == 0  # reads as a number: the type is asked, once
    assert count("system.methodHelp") == helps + 1


def test_completion_scripts_name_every_command():
    for shell in ("bash", "zsh"):
        status, out, _ = run("completion", shell)
        assert status == 0 and "complete -F _netops netops" in out
        assert all(command in out for command in ("call", "help", "methods", "multicall", "bench"))
        assert "--url" in out and "--json" in out
