"""A careless or hostile caller's input gets its stable code on every transport: never ``internal``, never a
dropped connection, nothing of the server in the answer."""

from __future__ import annotations

import http.client
import json
import logging

import pytest

from gateway.config import TRANSPORTS
from tests.transports.clients import RemoteError, assert_no_leak, connect


def error_code(client, method: str, *args, **kwargs) -> str:
    with pytest.raises(RemoteError) as info:
        client.call(client.method(method), *args, **kwargs)
    assert_no_leak(info.value.message)
    return info.value.code


@pytest.mark.parametrize("server_name", ["a" * 64, "a..b", "x\x00y", "a" * 300])
def test_a_server_name_tls_cannot_carry_is_invalid_argument(client, transport, server_name):
    if "\x00" in server_name and transport == "xmlrpc":
        pytest.skip("XML cannot carry NUL")
    assert error_code(client, "tls_check", "127.0.0.1", 443, server_name) == "invalid_argument"


def test_fetch_of_an_https_ip_literal_checks_the_certificate_s_addresses(client, https_server):
    # The test certificate names 127.0.0.1 among its addresses: no SNI is sent, the address is checked.
    result = client.call("fetch_url", f"https://127.0.0.1:{https_server.port}/text")
    assert result["status"] == 200 and result["tls"]["verified"] is True


def post(running, body: bytes) -> tuple[int, object]:
    conn = http.client.HTTPConnection("127.0.0.1", running.port("jsonrpc"), timeout=10)
    try:
        conn.request("POST", "/", body, {"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def test_introspection_takes_its_parameter_by_name_on_json_rpc(running):
    body = {"jsonrpc": "2.0", "method": "system.methodHelp", "params": {"name": "resolve"}, "id": 1}
    _, answer = post(running, json.dumps(body).encode())
    assert answer["result"].startswith("Look up the addresses")


@pytest.mark.parametrize("params", [{"self": 1}, {"name": "resolve", "self": 1}, {"method": "x"}])
def test_parameters_named_like_the_server_s_own_are_invalid_arguments(running, params):
    body = {"jsonrpc": "2.0", "method": "system.methodHelp", "params": params, "id": 1}
    _, answer = post(running, json.dumps(body).encode())
    assert answer["error"]["data"]["code"] == "invalid_argument"
    assert_no_leak(json.dumps(answer))


def test_a_lone_surrogate_id_is_answered(running):
    status, answer = post(running, b'{"jsonrpc": "2.0", "method": "system.listMethods", "id": "\\ud800"}')
    assert status == 200 and answer["id"] == "\ud800" and "resolve" in answer["result"]


@pytest.mark.parametrize("transport", [t for t in TRANSPORTS if t != "thrift"])  # Thrift: names are IDL's
def test_a_method_name_cannot_forge_a_log_line(running, transport, caplog):
    client = connect(running, transport)
    try:
        with caplog.at_level(logging.DEBUG):
            with pytest.raises(RemoteError):
                client.call("nope\nFORGED 127.0.0.1 resolve ok")
    finally:
        client.close()
    for record in caplog.records:
        assert "\n" not in record.getMessage(), record.getMessage()


def test_the_docs_redirect_goes_to_the_gateway_s_own_address(running):
    conn = http.client.HTTPConnection("127.0.0.1", running.port("xmlrpc"), timeout=10)
    try:
        conn.request("GET", "/", headers={"Host": "evil.example:666"})
        response = conn.getresponse()
        response.read()
    finally:
        conn.close()
    assert response.status == 302
    assert response.getheader("Location") == f"http://127.0.0.1:{running.port('jsonrpc')}/"


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"method": "resolve", "id": 1}, '"jsonrpc": "2.0"'),
        ({"jsonrpc": "2.0", "id": 1}, '"method" string'),
        ({"jsonrpc": "2.0", "method": "resolve", "params": "x", "id": 1}, '"params" must be'),
        ({"jsonrpc": "2.0", "method": "resolve", "id": 1.5}, '"id" must be'),
        ({"jsonrpc": "2.0", "method": "resolve", "extra": 1, "id": 1}, "unknown member 'extra'"),
    ],
)
def test_an_invalid_json_rpc_request_is_told_what_is_wrong(running, body, says):
    _, answer = post(running, json.dumps(body).encode())
    assert answer["error"]["code"] == -32600 and says in answer["error"]["message"]


def test_an_unsupported_http_method_gets_a_short_text_error(running):
    conn = http.client.HTTPConnection("127.0.0.1", running.port("jsonrpc"), timeout=10)
    try:
        conn.request("PUT", "/", b"{}", {"Content-Type": "application/json"})
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    assert response.status == 405 and response.getheader("Content-Type") == "text/plain"
    assert b"<html" not in body.lower() and body.startswith(b"use POST")
