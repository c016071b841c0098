"""gateway.client: one Python client, the same results and the same exception on all five transports."""

from __future__ import annotations

import pytest

from gateway import GatewayError
from gateway.client import GatewayUnreachable, connect
from gateway.transports import TRANSPORTS, codec_class
from tests.transports.test_conformance import calls_for, stable


@pytest.fixture
def url(running, transport):
    return f"{transport}://127.0.0.1:{running.port(transport)}"


def test_every_operation_gives_the_service_layer_result(url, gateway, http_server, https_server):
    with connect(url) as client:
        for name, args in calls_for(http_server, https_server):
            assert stable(client.call(name, *args)) == stable(gateway.call(name, args)), name
            assert stable(getattr(client, name)(*args)) == stable(gateway.call(name, args)), name


def test_identical_results_across_transports(running, http_server):
    results = {}
    for transport in TRANSPORTS:
        with connect(f"{transport}://127.0.0.1:{running.port(transport)}") as client:
            results[transport] = stable(client.fetch_url(f"http://web.local.test:{http_server.port}/json"))
    assert len({repr(r) for r in results.values()}) == 1


def test_errors_are_gateway_errors_with_codes(url):
    with connect(url) as client:
        with pytest.raises(GatewayError) as info:
            client.resolve("nope.example.test")
        assert info.value.code == "not_found" and info.value.message == "no such domain: nope.example.test"
        with pytest.raises(GatewayError) as info:
            client.tcp_connect("10.0.0.1", 80)
        assert info.value.code == "forbidden_target" and not isinstance(info.value, GatewayUnreachable)
        with pytest.raises(GatewayError) as info:
            client.nope()
        assert info.value.code == "method_not_found"


def test_introspection(url, transport):
    with connect(url) as client:
        names = client.methods()
        assert "resolve" in names and len(names) == (11 if codec_class(transport).typed else 12)
        assert client.help("resolve").startswith("Look up the addresses")
        assert client.help("system.listMethods").startswith("List the names")
        assert client.signature("tcp_connect") == [["struct", "string", "int"]]


def test_multicall_returns_results_and_errors_in_order(url, http_server):
    with connect(url) as client:
        out = client.multicall(
            [
                ("resolve", ["www.example.test", "ipv6"]),
                ("resolve", ["nope.example.test"]),
                ("tcp_connect", {"host": "web.local.test", "port": http_server.port}),
                {"methodName": "mx_lookup", "params": ["nullmx.example.test"]},
            ]
        )
    assert out[0]["addresses"] == [{"family": "ipv6", "address": "2001:db8::10"}]
    assert isinstance(out[1], GatewayError) and out[1].code == "not_found"
    assert out[2]["connected"] is True
    assert out[3]["null_mx"] is True


def test_named_arguments(url, transport, http_server):
    with connect(url) as client:
        if transport == "xmlrpc":
            with pytest.raises(GatewayError) as info:
                client.tcp_connect(host="web.local.test", port=http_server.port)
            assert info.value.code == "invalid_argument"
        else:
            assert client.tcp_connect(host="web.local.test", port=http_server.port)["connected"] is True


def test_per_call_timeout_then_the_client_still_works(url):
    """The gateway waits 2 s on a silent nameserver; the client gives up after 0.5 s and carries on."""
    with connect(url, timeout=0.5) as client:
        with pytest.raises(GatewayUnreachable) as info:
            client.resolve("blackhole.example.test")
        assert info.value.code == "timeout"
    with connect(url, timeout=5) as client:
        assert client.resolve("127.0.0.1")["addresses"]


def test_connection_is_reused(running):
    with connect(f"jsonrpc://127.0.0.1:{running.port('jsonrpc')}") as client:
        client.methods()
        sock = client._backend.conn.sock
        client.methods()
        assert client._backend.conn.sock is sock


def test_unreachable_gateway(transport, closed_port):
    with pytest.raises(GatewayUnreachable) as info:
        with connect(f"{transport}://127.0.0.1:{closed_port}", timeout=2) as client:
            client.methods()
    assert info.value.code == "connection_failed"


def test_unknown_scheme():
    with pytest.raises(GatewayError) as info:
        connect("smtp://127.0.0.1:25")
    assert info.value.code == "invalid_argument"


def test_thrift_argument_of_the_wrong_type_is_invalid_argument(running):
    with connect(f"thrift://127.0.0.1:{running.port('thrift')}") as client:
        with pytest.raises(GatewayError) as info:
            client.resolve(127.1)
        assert info.value.code == "invalid_argument" and not isinstance(info.value, GatewayUnreachable)
        assert client.resolve("127.1")["addresses"] == [{"family": "ipv4", "address": "127.0.0.1"}]
