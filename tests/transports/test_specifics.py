"""What each transport does beyond the shared suite: its own framing, its own traps."""

from __future__ import annotations

import http.client
import json
import socket
import struct
import xmlrpc.client
from typing import Any

import pytest
import rpyc

from gateway.idl import render
from gateway.observe import Caller
from gateway.ops import default_registry
from gateway.server import Running
from gateway.transports.jsonrpc import _JSONRPCApp
from tests.servers.http import long_text
from tests.test_core import Recorder, coroutine_gateway, multicall_threads
from tests.transports.clients import IDL, assert_no_leak, connect
from tests.transports.test_conformance import wait_until


def _own_client(name: str):
    """A fixture giving each test its own connection of one transport."""

    @pytest.fixture
    def fixture(running):
        client = connect(running, name)
        yield client
        client.close()

    return fixture


jsonrpc = _own_client("jsonrpc")
thrift = _own_client("thrift")


# -- JSON-RPC 2.0 ----------------------------------------------------------------------------


def test_jsonrpc_batch_answers_each_element(jsonrpc):
    status, answers = jsonrpc.post(
        [
            {"jsonrpc": "2.0", "method": "resolve", "params": ["127.0.0.1"], "id": 1},
            {"jsonrpc": "2.0", "method": "resolve", "params": {"host": "nope.example.test"}, "id": "two"},
            {"jsonrpc": "2.0", "method": "resolve", "params": ["127.0.0.1"]},  # a notification: no answer
            {"method": "resolve", "id": 4},  # invalid: no "jsonrpc"
            42,  # invalid
        ]
    )
    assert status == 200
    assert [a["id"] for a in answers] == [1, "two", 4, None]
    assert answers[0]["result"]["addresses"] == [{"family": "ipv4", "address": "127.0.0.1"}]
    assert answers[1]["error"]["code"] == -32001 and answers[1]["error"]["data"]["code"] == "not_found"
    assert answers[2]["error"]["code"] == -32600 and answers[3]["error"]["code"] == -32600


def test_jsonrpc_notifications_get_no_response(jsonrpc):
    assert jsonrpc.post({"jsonrpc": "2.0", "method": "resolve", "params": ["127.0.0.1"]}) == (204, None)
    assert jsonrpc.post([{"jsonrpc": "2.0", "method": "system.listMethods"}]) == (204, None)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{not json", -32700),
        (b'{"jsonrpc": "2.0", "method": "resolve", "params": [NaN], "id": 1}', -32700),
        (b"[]", -32600),
        (b'{"jsonrpc": "2.0", "method": 5, "id": 1}', -32600),
        (b'{"jsonrpc": "2.0", "method": "resolve", "params": "x", "id": 1}', -32600),
        (b'{"jsonrpc": "2.0", "method": "resolve", "extra": 1, "id": 1}', -32600),
        (b'{"jsonrpc": "1.0", "method": "resolve", "id": 1}', -32600),
        (b'{"jsonrpc": "2.0", "method": "nope", "id": 1}', -32601),
        (b'{"jsonrpc": "2.0", "method": "resolve", "params": [], "id": 1}', -32602),
        (b"[" * 100_000 + b"]" * 100_000, -32700),
    ],
)
def test_jsonrpc_error_codes(jsonrpc, body, code):
    status, answer = jsonrpc.post(body)
    assert status == 200 and answer["error"]["code"] == code
    assert jsonrpc.call("system.listMethods")  # the same connection keeps working


def test_jsonrpc_batch_over_the_limit(jsonrpc):
    _, answer = jsonrpc.post([{"jsonrpc": "2.0", "method": "system.listMethods", "id": i} for i in range(51)])
    assert answer["error"]["code"] == -32602 and "at most 50" in answer["error"]["message"]


def test_jsonrpc_batch_runs_concurrently(jsonrpc, dns_server):
    dns_server.authority.max_in_flight = 0
    batch = [
        {"jsonrpc": "2.0", "method": "resolve", "params": ["slow.example.test", "ipv4"], "id": i} for i in range(20)
    ]
    _, answers = jsonrpc.post(batch)
    assert sorted(a["id"] for a in answers) == list(range(20))
    assert dns_server.authority.max_in_flight >= 10


def test_jsonrpc_batch_runs_its_lookups_together_on_the_dns_loop_and_the_rest_on_threads(
    transport_settings, dns_server, http_server
):
    """As a multicall's: lookups take no thread each, whatever their number, the other elements run on the
    multicall threads, and every answer keeps its id and its place."""
    gateway = Running(transport_settings.replace(transports=["jsonrpc"]))  # a fresh multicall pool
    gateway.start()
    client = connect(gateway, "jsonrpc")
    try:
        before = multicall_threads()
        dns_server.authority.max_in_flight = 0
        lookups = [
            {"jsonrpc": "2.0", "method": "resolve", "params": ["slow.example.test", "ipv4"], "id": i} for i in range(20)
        ]
        _, answers = client.post(lookups)
        assert [a["id"] for a in answers] == list(range(20))
        assert all(a["result"]["addresses"] == [{"family": "ipv4", "address": "192.0.2.50"}] for a in answers)
        assert dns_server.authority.max_in_flight >= 10  # all at once
        assert multicall_threads() == before
        port = http_server.port
        mixed = [
            {"jsonrpc": "2.0", "method": "tcp_connect", "params": ["127.0.0.1", port], "id": "a"},
            {"jsonrpc": "2.0", "method": "mx_lookup", "params": ["example.test"], "id": "b"},
            {"jsonrpc": "2.0", "method": "resolve", "params": ["nope.example.test"]},  # a notification: no answer
            {"jsonrpc": "2.0", "method": "resolve", "params": {"hostname": "x"}, "id": "c"},
            {"jsonrpc": "2.0", "method": "resolve", "params": ["nope.example.test"], "id": "d"},
            {"jsonrpc": "2.0", "method": "resolve", "params": ["www.example.test"], "id": 5, "extra": 1},
            {"jsonrpc": "2.0", "method": "tcp_connect", "params": ["127.0.0.1", port], "id": "e"},
        ]
        _, answers = client.post(mixed)
        assert [a["id"] for a in answers] == ["a", "b", "c", "d", 5, "e"]
        assert answers[0]["result"]["connected"] and answers[5]["result"]["connected"]
        assert answers[1]["result"]["mx"]
        codes = [(a["error"]["code"], a["error"]["data"]["code"]) for a in answers[2:5]]
        assert codes == [(-32602, "invalid_argument"), (-32001, "not_found"), (-32600, "invalid_argument")]
        assert multicall_threads() - before  # the connections were made on the multicall threads
    finally:
        client.close()
        gateway.stop()


class _Exploding(Recorder):
    def started(self, caller: Caller, method: str) -> None:
        raise ValueError("secret detail in /srv/gateway/observer.py")


@pytest.mark.parametrize("method", ["doze", "explode_later"])
def test_a_stray_exception_in_a_jsonrpc_batch_s_lookup_is_internal_and_shows_nothing(settings, caplog, method):
    """Whether it comes from the operation or from the door (an observer here), on the DNS loop: an
    ``internal`` error with an incident id for that element, the operator's log in full, the rest answered."""
    gw = coroutine_gateway(settings, _Exploding()) if method == "doze" else coroutine_gateway(settings)
    app, caller = _JSONRPCApp(gw), Caller("jsonrpc", "127.0.0.1:1")
    batch = [{"jsonrpc": "2.0", "method": method, "params": [0] if method == "doze" else [], "id": 1}]
    batch.append({"jsonrpc": "2.0", "method": "system.listMethods", "id": 2})
    answers = json.loads(app.answer(app.decode(json.dumps(batch).encode(), caller, {}), caller))
    error = answers[0]["error"]
    assert error["data"]["code"] == "internal" and "incident" in error["message"]
    assert "secret" not in json.dumps(answers) and "ValueError" not in json.dumps(answers)
    assert answers[1]["result"]  # an instant call tells the observers only at its end: answered
    assert "secret detail" in caplog.text
    gw.close()


def test_jsonrpc_alternate_path_and_get(running):
    conn = http.client.HTTPConnection("127.0.0.1", running.port("jsonrpc"))
    body = json.dumps({"jsonrpc": "2.0", "method": "system.listMethods", "id": 1})
    conn.request("POST", "/jsonrpc", body, {"Content-Type": "application/json"})
    assert "result" in json.loads(conn.getresponse().read())
    conn.request("GET", "/")
    response = conn.getresponse()
    assert response.status == 200 and b"<h1>NetOps Gateway</h1>" in response.read()  # the docs page
    conn.request("GET", "/nothing-here")
    response = conn.getresponse()
    response.read()
    assert response.status == 404


# -- XML-RPC ---------------------------------------------------------------------------------
def post_xml(running, body: bytes, path: str = "/RPC2", headers: dict | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", running.port("xmlrpc"), timeout=10)
    conn.request("POST", path, body, {"Content-Type": "text/xml", **(headers or {})})
    response = conn.getresponse()
    return response.status, response.read()


def fault_of(body: bytes) -> xmlrpc.client.Fault:
    with pytest.raises(xmlrpc.client.Fault) as info:
        xmlrpc.client.loads(body)
    return info.value


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<methodCall><methodName>resolve</methodName><params><param><value>&lol3;</value></param></params></methodCall>"""
EXTERNAL = b"""<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>
<methodCall><methodName>resolve</methodName><params><param><value>&e;</value></param></params></methodCall>"""


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"<methodCall><methodName>resolve", -32700),
        (b"not xml at all", -32700),
        (BILLION_LAUGHS, -32700),
        (EXTERNAL, -32700),
        (xmlrpc.client.dumps((None,), "resolve", allow_none=True).encode(), -32602),
        (
            b"<methodCall><methodName>tcp_connect</methodName><params><param><value>x</value></param>"
            b"<param><value><i8>1099511627776</i8></value></param></params></methodCall>",
            -32602,
        ),
        (xmlrpc.client.dumps((xmlrpc.client.Binary(b"x"),), "resolve").encode(), -32602),
        (b"<methodCall><methodName>resolve</methodName><params><param>" + b"<value><array><data>" * 5000, -32700),
    ],
)
def test_xmlrpc_hostile_payloads_are_faults(running, body, code):
    status, answer = post_xml(running, body)
    assert status == 200 and fault_of(answer).faultCode == code


def test_xmlrpc_deep_nesting_is_refused(running):
    nested = b"<value><array><data>" * 5000 + b"<value>x</value>" + b"</data></array></value>" * 5000
    body = b"<methodCall><methodName>resolve</methodName><params><param>" + nested + b"</param></params></methodCall>"
    status, answer = post_xml(running, body)
    assert status == 200 and fault_of(answer).faultCode == -32602


def test_xmlrpc_body_over_the_cap_is_too_large_unread(running):
    sock = socket.create_connection(("127.0.0.1", running.port("xmlrpc")))
    sock.sendall(b"POST /RPC2 HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\nContent-Length: 200000000\r\n\r\n")
    reply = b""
    while b"</methodResponse>" not in reply:
        chunk = sock.recv(65536)
        assert chunk
        reply += chunk
    sock.close()
    assert b"too_large" in reply and b"-32006" in reply


def test_xmlrpc_compressed_bodies_are_refused(running):
    status, _ = post_xml(running, b"\x1f\x8b", headers={"Content-Encoding": "gzip"})
    assert status == 411


def test_xmlrpc_root_path_works_too(running):
    status, answer = post_xml(running, xmlrpc.client.dumps((), "system.listMethods").encode(), path="/")
    assert status == 200 and "resolve" in xmlrpc.client.loads(answer)[0][0]


# -- Pyro5 -----------------------------------------------------------------------------------
@pytest.mark.parametrize("serializer", ["marshal", "json", "msgpack"])
def test_pyro_refuses_serializers_other_than_serpent(running, serializer):
    import Pyro5.api
    import Pyro5.errors

    proxy = Pyro5.api.Proxy(f"PYRO:netops@127.0.0.1:{running.port('pyro')}")
    proxy._pyroSerializer = serializer
    with pytest.raises(
        (Pyro5.errors.CommunicationError, Pyro5.errors.ProtocolError, Pyro5.errors.SerializeError, KeyError)
    ):
        proxy.system_listMethods()


def test_pyro_request_over_the_cap_is_refused(running):
    import Pyro5.api
    import Pyro5.errors

    proxy = Pyro5.api.Proxy(f"PYRO:netops@127.0.0.1:{running.port('pyro')}")
    with pytest.raises(Pyro5.errors.CommunicationError):
        proxy.resolve("x" * (2 * 1024 * 1024))
    fresh = connect(running, "pyro")
    assert fresh.call("system.listMethods")
    fresh.close()


def test_pyro_batch_keeps_the_long_strings_of_every_call(running, http_server):
    """A Pyro5 batch is one message of several calls: each result's long strings arrive in the one answer."""
    import Pyro5.api

    url = f"http://web.local.test:{http_server.port}/long-text?size="
    with Pyro5.api.Proxy(f"PYRO:netops@127.0.0.1:{running.port('pyro')}") as proxy:
        batch = Pyro5.api.BatchProxy(proxy)
        batch.fetch_url(url + "300000")
        batch.system_listMethods()
        batch.fetch_url(url + "200000")
        first, listing, second = list(batch())
    assert first["body"] == long_text(300_000) and second["body"] == long_text(200_000)
    assert "resolve" in listing


# -- RPyC ------------------------------------------------------------------------------------
@pytest.fixture
def rpyc_conn(running):
    conn = rpyc.connect("127.0.0.1", running.port("rpyc"))
    yield conn
    conn.close()


def test_rpyc_results_behave_like_dicts_and_lists(rpyc_conn):
    r = rpyc_conn.root.resolve("www.example.test", "ipv6")
    assert r["host"] == "www.example.test"
    assert len(r) == 4 and list(r) == ["host", "canonical_name", "addresses", "elapsed_ms"]
    assert "addresses" in r and "nope" not in r
    plain = dict(r)
    assert plain["canonical_name"] == "www.example.test"
    assert r["addresses"][0]["address"] == "2001:db8::10" and len(r["addresses"]) == 1
    assert [dict(a) for a in r["addresses"]] == [{"family": "ipv6", "address": "2001:db8::10"}]
    assert r["addresses"] == [{"family": "ipv6", "address": "2001:db8::10"}]
    assert r.get("host") == "www.example.test" and dict(r.items())["host"] == "www.example.test"
    assert r.values()[0] == "www.example.test" and list(reversed(r)) == list(reversed(list(r)))
    with pytest.raises(AttributeError, match="'keys' is not available on a result"):
        r["addresses"].keys()  # a read the list view has not: no class of the server named


def test_rpyc_list_and_dict_arguments_are_copied_in(rpyc_conn, http_server):
    url = f"http://web.local.test:{http_server.port}/echo-headers"
    result = rpyc_conn.root.fetch_url(url, headers={"X-From-Rpyc": "yes"})
    assert json.loads(result["body"])["x-from-rpyc"] == "yes"
    calls = [
        {"methodName": "resolve", "params": ["127.0.0.1"]},
        {"methodName": "resolve", "params": ["nope.example.test"]},
    ]
    out = rpyc_conn.root.system_multicall(calls)
    assert out[0][0]["host"] == "127.0.0.1" and out[1]["faultString"].startswith("not_found")


def test_rpyc_str_of_a_result_is_its_json(rpyc_conn):
    r = rpyc_conn.root.resolve("127.0.0.1")
    whole = json.loads(str(r))
    assert whole == {k: (list(map(dict, v)) if k == "addresses" else v) for k, v in dict(r).items()}
    assert whole["addresses"] == [{"family": "ipv4", "address": "127.0.0.1"}]


@pytest.mark.parametrize(
    "reach",
    [
        lambda conn: conn.root._gateway,
        lambda conn: conn.root.exposed_resolve,
        lambda conn: conn.root.resolve.__globals__,
        lambda conn: conn.root.resolve("127.0.0.1")._data,
        lambda conn: conn.root.resolve("127.0.0.1").__dict__,
        lambda conn: conn.root.__dict__,
        lambda conn: conn.modules,
        lambda conn: conn.eval("1+1"),
    ],
)
def test_rpyc_reaches_nothing_but_the_operations(rpyc_conn, reach):
    with pytest.raises(Exception) as info:
        reach(rpyc_conn)
    assert "Traceback (most recent" not in str(info.value)
    assert rpyc_conn.root.system_listMethods()  # still serving


# -- Thrift ----------------------------------------------------------------------------------


def test_thrift_missing_field_is_invalid_argument(thrift):
    with pytest.raises(thrift.module.NetOpsError) as info:
        thrift.client.resolve()
    assert info.value.code == "invalid_argument" and "needs parameter 'host'" in info.value.message


def test_thrift_call_union_needs_exactly_one_field(thrift):
    m = thrift.module
    outcomes = thrift.client.system_multicall(
        [m.Call(), m.Call(resolve=m.ResolveArgs(host="127.0.0.1"), mx_lookup=m.MxLookupArgs(domain="example.test"))]
    )
    assert [o.error.code for o in outcomes] == ["invalid_argument", "invalid_argument"]


def test_thrift_typed_multicall(thrift, http_server):
    m = thrift.module
    outcomes = thrift.client.system_multicall(
        [
            m.Call(mx_lookup=m.MxLookupArgs(domain="nullmx.example.test")),
            m.Call(tcp_connect=m.TcpConnectArgs(host="web.local.test", port=http_server.port)),
            m.Call(resolve=m.ResolveArgs(host="nope.example.test")),
        ]
    )
    assert outcomes[0].mx_lookup.null_mx is True
    assert outcomes[1].tcp_connect.connected is True
    assert outcomes[2].error.code == "not_found"


@pytest.mark.parametrize(
    "payload",
    [
        # resolve(host=<string claiming 2**31-1 bytes>)
        struct.pack("!iI", -2147418111, 7)
        + b"resolve"
        + struct.pack("!i", 1)
        + b"\x0b\x00\x01"
        + struct.pack("!i", 2**31 - 1),
        # system_multicall(calls=<list claiming 2**31-1 elements of VOID>)
        struct.pack("!iI", -2147418111, 16)
        + b"system_multicall"
        + struct.pack("!i", 1)
        + b"\x0f\x00\x01\x01"
        + struct.pack("!i", 2**31 - 1),
        # invented(<string claiming 2**31-1 bytes>): a name the IDL does not declare
        struct.pack("!iI", -2147418111, 8)
        + b"invented"
        + struct.pack("!i", 1)
        + b"\x0b\x00\x01"
        + struct.pack("!i", 2**31 - 1),
    ],
)
def test_thrift_decode_limits_close_the_connection(running, thrift, payload):
    from thriftpy2.thrift import TApplicationException, TMessageType

    name, kind, seqid, proto = thrift_reply(running.port("thrift"), payload)
    # The walk knew the method and sequence id before refusing: the declared error answers that call, or
    # Thrift's own exception, led by the code, a name without a result struct.
    assert seqid == 1
    if name == "invented":
        assert kind == TMessageType.EXCEPTION
        exc = TApplicationException()
        proto.read_struct(exc)
        assert exc.message.startswith(("too_large: ", "invalid_argument: ")), exc.message
    else:
        result = getattr(thrift.module.NetOps, f"{name}_result")()
        result.read(proto)
        assert result.error.code in ("too_large", "invalid_argument")
    assert thrift.call("system.listMethods")  # everyone else is still served


def thrift_reply(port: int, payload: bytes) -> tuple[str, int, int, Any]:
    """Send ``payload`` to the Thrift port, read until the gateway closes: the reply's name, message type,
    sequence id, and a protocol positioned after its header."""
    from thriftpy2.protocol.binary import TBinaryProtocol
    from thriftpy2.transport import TMemoryBuffer

    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(payload)
    reply = b""
    while chunk := sock.recv(65536):  # answered, then closed: not stalled
        reply += chunk
    sock.close()
    proto = TBinaryProtocol(TMemoryBuffer(reply))
    name, kind, seqid = proto.read_message_begin()
    return name, kind, seqid, proto


def test_idl_is_generated_from_the_registry():
    """Regenerate with: python -m gateway.idl"""
    assert IDL.read_text() == render(default_registry())


def test_thrift_idle_connection_stays_open_past_thriftpys_3_seconds(thrift, caplog):
    """thriftpy2 alone drops a client idle for 3 s (and logs a traceback); the gateway keeps it for idle_timeout."""
    import time

    assert thrift.call("system.listMethods")
    time.sleep(3.5)
    assert thrift.call("system.listMethods")  # the same connection
    assert "Traceback" not in caplog.text


def test_a_client_that_disconnects_mid_call_does_not_hurt_the_gateway(running, dns_server):
    """A JSON-RPC client sends a slow call and hangs up; the gateway finishes it and serves the next caller."""
    seen = dns_server.authority.blackhole_queries
    sock = socket.create_connection(("127.0.0.1", running.port("jsonrpc")))
    body = b'{"jsonrpc": "2.0", "method": "resolve", "params": ["blackhole.example.test"], "id": 1}'
    sock.sendall(
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
        % (len(body), body)
    )
    wait_until(lambda: dns_server.authority.blackhole_queries > seen)  # the call is in flight
    sock.close()  # gone before the answer
    client = connect(running, "jsonrpc")
    assert client.call("resolve", "127.0.0.1")["addresses"][0]["address"] == "127.0.0.1"
    client.close()


def test_rpyc_json_entry_takes_and_gives_json_text(running):
    """What gateway.client speaks: arguments and result as JSON text, one round trip, checked like any call."""
    conn = rpyc.connect("127.0.0.1", running.port("rpyc"))
    try:
        entry = getattr(conn.root, "netops.json")
        text = entry("resolve", json.dumps({"args": ["127.0.0.1"], "kwargs": {}}))
        assert type(text) is str and json.loads(text)["addresses"][0]["address"] == "127.0.0.1"
        for name, params, code in [
            ("resolve", "[1, 2", "invalid_argument"),
            ("resolve", json.dumps({"args": []}), "invalid_argument"),
            ("resolve", json.dumps({"args": [[0] * 20_000], "kwargs": {}}), "invalid_argument"),
            ("nope", json.dumps({"args": [], "kwargs": {}}), "method_not_found"),
        ]:
            with pytest.raises(Exception, match=code) as caught:
                entry(name, params)
            assert_no_leak(str(caught.value).split("\n\n", 1)[0])
    finally:
        conn.close()


def test_xmlrpc_answers_in_parts_are_the_stdlib_bytes():
    """XML-RPC answers are written in parts (a long string encoded alone, not joined) by a marshaller for
    plain data: the bytes on the wire are exactly xmlrpc.client.dumps's."""
    import xmlrpc.client

    from gateway.net.session import each_piece
    from gateway.transports.xmlrpc import _response

    for value in (
        "plain", ["a", 1, 2.5, True], {"h": {"k": "v"}, "e": [], "s": ""},
        {"<k&>": (False, -7, 2**31 - 1, 1e-300, [[["deep"]]]), "a&b": "x<y>z"},
        {"body": "x" * 100_000, "escaped": "<&>" * 30_000, "text": "é" * 70_000, "n": 3},
        {"names": ["<a>", "b&c", "é", "x" * 70_000, ""], "k<": "v&", "deep": [{"a": ["<"]}]},
        ["dns_query", "mx_lookup", "é", ""], ("a", "b"), ["only"], [], ["a", 1], ["x" * 40_000, "y" * 40_000],
        {"addresses": ["192.0.2.1", "2001:db8::1"], "none": [], "markup": ["ok", "a>b"]},
    ):  # fmt: skip
        expected = xmlrpc.client.dumps((value,), methodresponse=True, encoding="utf-8").encode()
        answer = _response(value)
        assert (answer if isinstance(answer, bytes) else b"".join(each_piece(answer))) == expected
    for value, error in ((2**31, OverflowError), ({1: "x"}, TypeError)):  # the stdlib's own refusals
        with pytest.raises(error):
            _response(value)
