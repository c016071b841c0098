"""One conformance suite, run once per transport, through each transport's standard client."""

from __future__ import annotations

import re
import threading
import time

import pytest

from gateway.registry import conforms
from gateway.transports import TRANSPORTS, codec_class
from tests.servers.http import long_text
from tests.transports.clients import RemoteError, connect

OPERATIONS = ["dns_query", "fetch_url", "mx_lookup", "resolve", "reverse_lookup", "tcp_connect", "tls_check"]
SYSTEM = ["listMethods", "methodHelp", "methodSignature", "multicall"]
VOLATILE = {"elapsed_ms", "timings", "date"}  # differ from one call to the next


def stable(value):
    """The result without the fields that change between two identical calls."""
    if isinstance(value, dict):
        return {k: stable(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [stable(v) for v in value]
    return value


def error(client, method, *args, **kwargs) -> RemoteError:
    with pytest.raises(RemoteError) as info:
        client.call(method, *args, **kwargs)
    return info.value


def calls_for(http_server, https_server):
    """One representative call of every operation (positional arguments), and results with absent parts."""
    return [
        ("resolve", ["alias.example.test", "ipv6"]),
        ("reverse_lookup", ["192.0.2.10"]),
        ("dns_query", ["txt.example.test", "TXT"]),
        ("mx_lookup", ["example.test"]),
        ("tls_check", ["expired.local.test", https_server.port]),
        ("tls_check", ["badcert.local.test", https_server.port]),  # a certificate left absent: "", [] and 0
        ("tls_check", ["ctlname.local.test", https_server.port]),  # names with control characters, escaped
        ("fetch_url", [f"http://web.local.test:{http_server.port}/headers"]),
        ("fetch_url", [f"http://web.local.test:{http_server.port}/controls-in-head"]),
        ("tcp_connect", ["web.local.test", http_server.port]),
    ]


# -- introspection -----------------------------------------------------------------------
def test_list_methods_names_exactly_what_is_callable(client):
    names = client.call("system.listMethods")
    separator = "." if client.dotted else "_"
    discover = [] if codec_class(client.name).typed else [f"rpc{separator}discover"]  # Thrift, MCP type each result
    assert names == sorted(OPERATIONS + [f"system{separator}{n}" for n in SYSTEM] + discover)
    for name in names:
        help_text = client.call("system.methodHelp", name)
        assert help_text.strip()
        signatures = client.call("system.methodSignature", name)
        assert signatures and all(isinstance(s, list) and s for s in signatures)


def test_every_listed_method_is_callable(client):
    """Calling each listed name with no arguments reaches it: never method_not_found."""
    for name in client.call("system.listMethods"):
        if client.idl_typed:
            continue  # Thrift and gRPC clients cannot omit arguments: the IDL signature is the contract
        dotted = name.replace("system_", "system.")
        try:
            client.call(dotted)
        except RemoteError as exc:
            assert exc.code == "invalid_argument", (name, exc)


def test_method_signature_convention(client):
    assert client.call("system.methodSignature", "resolve") == [["struct", "string"], ["struct", "string", "string"]]


def test_method_help_is_the_registry_doc(client, gateway):
    assert client.call("system.methodHelp", "mx_lookup") == gateway.lookup("mx_lookup").help()


def test_unknown_method(client):
    if client.name == "thrift":
        from thriftpy2.thrift import TApplicationException

        exc = client.raw_call("nope")
        assert exc.type == TApplicationException.UNKNOWN_METHOD
        assert client.call("system.listMethods")  # the gateway still serves
        return
    err = error(client, "nope")
    assert client.name == "pyro" or err.code == "method_not_found"  # Pyro5's client refuses it from the metadata


# -- every operation, same data on every transport -----------------------------------------
def test_every_operation_matches_the_service_layer(client, gateway, http_server, https_server):
    for name, args in calls_for(http_server, https_server):
        remote = client.call(name, *args)
        assert conforms(remote, gateway.lookup(name).result), (name, remote)
        assert stable(remote) == stable(gateway.call(name, args)), name


def test_named_arguments(client, http_server):
    if not client.named_arguments:
        pytest.skip("XML-RPC has no named arguments")
    result = client.call("tcp_connect", port=http_server.port, host="web.local.test")
    assert result["connected"] is True
    assert client.call("resolve", host="www.example.test", family="ipv6")["addresses"] == [
        {"family": "ipv6", "address": "2001:db8::10"}
    ]


def test_defaults_apply_when_arguments_are_left_out(client, http_server):
    result = client.call("fetch_url", f"http://web.local.test:{http_server.port}/big")
    assert result["body_bytes"] == 1024 * 1024 and result["truncated"] is True


def test_a_long_text_body_arrives_exactly(client, http_server):
    """Long strings are encoded apart from the rest of a result (gateway.transports.long_strings): quotes,
    backslashes and non-ASCII across its chunk boundaries arrive as they were sent."""
    chars = 700_000  # beyond two 256 KiB chunks
    result = client.call("fetch_url", f"http://web.local.test:{http_server.port}/long-text?size={chars}")
    assert result["body_encoding"] == "text" and result["body"] == long_text(chars)


# -- errors on the wire ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "args", "code"),
    [
        ("resolve", ["nope.example.test"], "not_found"),
        ("resolve", [42], "invalid_argument"),
        ("resolve", ["www.example.test", "ipv5"], "invalid_argument"),
        ("tcp_connect", ["10.0.0.1", 80], "forbidden_target"),
        ("fetch_url", ["ftp://example.test/"], "invalid_argument"),
        ("dns_query", ["example.test", "BOGUS"], "invalid_argument"),
        ("tcp_connect", ["127.0.0.1", 0], "invalid_argument"),
    ],
)
def test_errors_carry_their_stable_code(client, method, args, code):
    if client.idl_typed and args and not isinstance(args[0], str):
        pytest.skip("a Thrift or gRPC client cannot send an int where the IDL says string")
    err = error(client, method, *args)
    assert err.code == code
    assert err.message.startswith(f"{code}: ")


def test_timeout_and_redirect_errors(client, http_server):
    assert error(client, "resolve", "blackhole.example.test").code == "timeout"
    assert error(client, "fetch_url", f"http://web.local.test:{http_server.port}/loop").code == "too_many_redirects"


def test_refused_connection_error(client, closed_port):
    assert error(client, "tls_check", "127.0.0.1", closed_port).code == "connection_failed"


def test_errors_leak_nothing_internal(client, http_server):
    leaks = re.compile(r"Traceback \(most recent|File \"|\.py\b|site-packages|/work/|gateway\.|<class ")
    for method, args in [
        ("resolve", ["nope.example.test"]),
        ("fetch_url", [f"http://web.local.test:{http_server.port}/loop"]),
        ("tcp_connect", ["10.0.0.1", 80]),
        ("resolve", ["a..b"]),
    ]:
        err = error(client, method, *args)
        assert not leaks.search(err.message), err.message
        if client.name == "pyro":
            assert not getattr(err.native, "_pyroTraceback", None)


# -- multicall ------------------------------------------------------------------------------
def test_multicall_results_and_faults_in_order(client, http_server):
    out = client.multicall(
        [
            ("resolve", ["www.example.test", "ipv6"]),
            ("resolve", ["nope.example.test"]),
            ("tcp_connect", ["web.local.test", http_server.port]),
            ("tcp_connect", ["10.0.0.1", 80]),
        ]
    )
    assert out[0]["addresses"] == [{"family": "ipv6", "address": "2001:db8::10"}]
    assert isinstance(out[1], RemoteError) and out[1].code == "not_found"
    assert out[2]["connected"] is True
    assert isinstance(out[3], RemoteError) and out[3].code == "forbidden_target"


def test_multicall_runs_concurrently(client, dns_server):
    dns_server.authority.max_in_flight = 0
    out = client.multicall([("resolve", ["slow.example.test", "ipv4"])] * 20)
    assert all(r["addresses"] == [{"family": "ipv4", "address": "192.0.2.50"}] for r in out)
    assert dns_server.authority.max_in_flight >= 10


def test_multicall_over_the_limit_is_refused_whole(client):
    if client.name == "thrift":
        err = error(client, "system.multicall", [client.module.Call(resolve=client.module.ResolveArgs(host="x"))] * 51)
    elif client.idl_typed:
        err = error(client, "system.multicall", [{"methodName": "resolve", "params": ["x"]}] * 51)
    else:
        err = error(client, "system.multicall", [{"methodName": client.method("system.listMethods")}] * 51)
    assert err.code == "invalid_argument" and "at most 50" in err.message


def test_nested_multicall_is_a_fault_for_that_element(client):
    if client.idl_typed:
        pytest.skip("a typed Call (Thrift, gRPC) cannot hold a multicall")
    nested = client.method("system.multicall")
    out = client.call(
        "system.multicall",
        [{"methodName": nested, "params": [[]]}, {"methodName": client.method("system.listMethods"), "params": []}],
    )
    assert out[0]["faultCode"] == -32602 and "cannot be nested" in out[0]["faultString"]
    assert isinstance(out[1], list)


# -- concurrency ------------------------------------------------------------------------------
def test_a_slow_call_does_not_hold_up_others(running, client, transport, dns_server):
    """While a call waits on a silent nameserver, other calls on this and every transport are answered."""
    slow_client = connect(running, transport)
    others = [connect(running, name) for name in TRANSPORTS]
    seen = dns_server.authority.blackhole_queries
    outcome: list[BaseException] = []
    slow = threading.Thread(target=record_error, args=(outcome, slow_client.call, "resolve", "blackhole.example.test"))
    slow.start()
    try:
        wait_until(lambda: dns_server.authority.blackhole_queries > seen)  # the slow call is in flight
        assert client.call("resolve", "127.0.0.1")["addresses"]
        for other in others:
            assert other.call("system.listMethods")
        assert slow.is_alive()  # answered while the slow call was still waiting
    finally:
        slow.join()
        for c in [slow_client, *others]:
            c.close()
    assert isinstance(outcome[0], RemoteError) and outcome[0].code == "timeout"


def record_error(outcome: list[BaseException], func, *args) -> None:
    """Run func in a thread and keep what it raised, for the test to assert on after join()."""
    try:
        func(*args)
    except BaseException as exc:
        outcome.append(exc)


def wait_until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)
