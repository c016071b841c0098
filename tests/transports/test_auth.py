"""Who may call: tokens and TLS (mutual TLS too) on all five transports, through each transport's standard library."""

from __future__ import annotations

import base64
import logging
import random
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.client import connect, tls_context
from gateway.config import TRANSPORTS, Settings
from gateway.errors import GatewayError
from gateway.server import Running
from tests.servers.pki import PKI
from tests.transports.clients import assert_no_leak

TOKEN = "s3cret-token-of-the-ops-team-0123456789"
OTHER = "another-token-for-the-batch-jobs-98765"


def url(running: Running, transport: str) -> str:
    return f"{transport}://127.0.0.1:{running.port(transport)}"


@pytest.fixture(scope="module")
def token_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("auth") / "tokens"
    path.write_text(f"# who may call\nops:{TOKEN}\n\n{OTHER}\n")
    return path


def serve(settings: Settings) -> Iterator[Running]:
    running = Running(settings)
    running.start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def locked(transport_settings: Settings, token_file: Path) -> Iterator[Running]:
    """Tokens required for everything."""
    yield from serve(transport_settings.replace(token_file=str(token_file)))


@pytest.fixture(scope="module")
def half_open(transport_settings: Settings, token_file: Path) -> Iterator[Running]:
    """Tokens required, introspection open."""
    yield from serve(transport_settings.replace(token_file=str(token_file), open_introspection=True))


def refusal(running: Running, transport: str, **kwargs: object) -> GatewayError:
    with pytest.raises(GatewayError) as caught:
        with connect(url(running, transport), timeout=10, **kwargs) as client:  # type: ignore[arg-type]
            client.resolve("www.example.test")
    assert_no_leak(caught.value.message)
    return caught.value


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_named_or_unnamed_token_is_served(locked, transport):
    for token in (TOKEN, OTHER):
        with connect(url(locked, transport), timeout=10, token=token) as client:
            assert client.resolve("www.example.test")["addresses"]
            assert "resolve" in client.methods()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_no_token_is_unauthenticated(locked, transport):
    error = refusal(locked, transport)
    assert error.code == "unauthenticated"
    assert "requires a token" in error.message


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_wrong_token_is_unauthenticated(locked, transport):
    error = refusal(locked, transport, token="not-one-of-the-tokens-at-all")
    assert error.code == "unauthenticated"
    assert "not accepted" in error.message


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_introspection_closed_to_anonymous_callers_by_default(locked, transport):
    with pytest.raises(GatewayError) as caught:
        with connect(url(locked, transport), timeout=10) as client:
            client.methods()
    assert caught.value.code == "unauthenticated"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_open_introspection_serves_listmethods_but_nothing_else(half_open, transport):
    with connect(url(half_open, transport), timeout=10) as client:
        assert "resolve" in client.methods()
        assert "Returns: ResolveResult" in client.help("resolve")
        with pytest.raises(GatewayError) as caught:
            client.resolve("www.example.test")
        assert caught.value.code == "unauthenticated"
        multicall = [("resolve", ["www.example.test"])]
        with pytest.raises(GatewayError) as caught:  # a multicall is not introspection, whatever it holds
            client.multicall(multicall)
        assert caught.value.code == "unauthenticated"
    with connect(url(half_open, transport), timeout=10, token=TOKEN) as client:
        assert client.resolve("www.example.test")["addresses"]


def test_refused_calls_are_logged_with_who_what_why_and_never_the_token(locked, caplog):
    caplog.set_level(logging.INFO, logger="gateway")
    for transport in TRANSPORTS:
        refusal(locked, transport, token="wrong-token-that-must-not-be-logged")
        with connect(url(locked, transport), timeout=10, token=TOKEN) as client:
            client.resolve("www.example.test")
    text = caplog.text
    assert "wrong-token-that-must-not-be-logged" not in text and TOKEN not in text
    for transport in TRANSPORTS:
        assert any(transport in r.getMessage() and "unauthenticated" in r.getMessage() for r in caplog.records)
    assert "ops" in text  # an accepted caller is logged by its token's name


def test_a_token_counts_as_one_client_for_rate_limits(transport_settings, token_file):
    """Limits follow the token, not the address: two connections with one token share one bucket."""
    settings = transport_settings.replace(token_file=str(token_file), rate_limit=0.01, rate_burst=2)
    for running in serve(settings):
        with connect(url(running, "jsonrpc"), token=TOKEN) as a, connect(url(running, "thrift"), token=TOKEN) as b:
            a.methods()
            b.methods()
            with pytest.raises(GatewayError) as caught:
                a.methods()
            assert caught.value.code == "rate_limited"
        with connect(url(running, "rpyc"), token=OTHER) as c:  # another token has its own bucket
            assert c.methods()


def test_thrift_an_invented_name_without_a_token_is_unauthenticated(locked):
    """As on the other transports, not a dropped connection: a name the IDL does not declare has no result
    struct to carry the error, so Thrift's own exception does, led by the stable code."""
    import struct

    from thriftpy2.thrift import TApplicationException, TMessageType

    from tests.transports.test_specifics import thrift_reply

    call = struct.pack("!iI", -2147418111, 8) + b"invented" + struct.pack("!i", 7) + b"\x00"  # no arguments
    name, kind, seqid, proto = thrift_reply(locked.port("thrift"), call)
    assert (name, kind, seqid) == ("invented", TMessageType.EXCEPTION, 7)
    exc = TApplicationException()
    proto.read_struct(exc)
    assert exc.message == "unauthenticated: this gateway requires a token"


def test_http_refuses_before_reading_the_body(locked):
    """401 with the scheme named (RFC 6750) and the coded error, on a body the gateway never read."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", locked.port("jsonrpc"), timeout=10)
    conn.putrequest("POST", "/")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Content-Length", "1000000")
    conn.endheaders()
    response = conn.getresponse()
    assert response.status == 401
    assert response.getheader("WWW-Authenticate") == 'Bearer realm="netops"'
    assert b'"code":-32007' in response.read()


def test_token_file_errors_stop_the_start(transport_settings, tmp_path):
    short = tmp_path / "short"
    short.write_text("ops:tooshort\n")
    with pytest.raises(ValueError, match="line 1"):
        Running(transport_settings.replace(token_file=str(short)))
    with pytest.raises(ValueError, match="cannot read token file"):
        Running(transport_settings.replace(token_file=str(tmp_path / "missing")))


# -- TLS -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def server_pem(pki: PKI, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    directory = tmp_path_factory.mktemp("tls")
    leaf = pki.ca.issue_cert("127.0.0.1", "localhost")
    cert, key = directory / "gateway.pem", directory / "gateway.key"
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    leaf.private_key_pem.write_to_path(str(key))
    return str(cert), str(key)


@pytest.fixture(scope="module")
def client_pem(pki: PKI, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    directory = tmp_path_factory.mktemp("client")
    leaf = pki.ca.issue_cert("batch-client@ops.local.test")
    cert, key = directory / "client.pem", directory / "client.key"
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    leaf.private_key_pem.write_to_path(str(key))
    return str(cert), str(key)


@pytest.fixture(scope="module")
def tls_gateway(transport_settings: Settings, server_pem: tuple[str, str]) -> Iterator[Running]:
    cert, key = server_pem
    # A long handshake timeout: the test of silent clients would fail if they held up anyone for it.
    yield from serve(transport_settings.replace(tls_cert=cert, tls_key=key, handshake_timeout=60.0))


@pytest.fixture(scope="module")
def mtls_gateway(
    transport_settings: Settings, server_pem: tuple[str, str], pki: PKI, token_file: Path
) -> Iterator[Running]:
    cert, key = server_pem
    settings = transport_settings.replace(
        tls_cert=cert, tls_key=key, tls_client_ca=str(pki.ca_file), token_file=str(token_file)
    )
    yield from serve(settings)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_tls_on_every_transport(tls_gateway, pki, transport):
    with connect(url(tls_gateway, transport), timeout=10, tls=tls_context(str(pki.ca_file))) as client:
        assert client.resolve("www.example.test")["addresses"]
        assert client.multicall([("resolve", ["www.example.test"])])[0]["addresses"]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_large_answer_over_tls_arrives_whole(tls_gateway, pki, http_server, transport):
    """A 1 MiB body through TLS: its long string is encoded a chunk at a time as the TLS transport drains."""
    size = 1024 * 1024
    target = f"http://web.local.test:{http_server.port}/big?size={size}&noise=1"
    with connect(url(tls_gateway, transport), timeout=30, tls=tls_context(str(pki.ca_file))) as client:
        result = client.fetch_url(target, "GET", {}, size)
    assert result["body"] == base64.b64encode(random.Random(size).randbytes(size))[:size].decode()  # the server's


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_plaintext_client_on_a_tls_port_fails_and_others_are_served(tls_gateway, pki, transport):
    with pytest.raises(GatewayError) as caught:
        with connect(url(tls_gateway, transport), timeout=5) as client:
            client.methods()
    assert caught.value.code in ("connection_failed", "timeout")
    with connect(url(tls_gateway, transport), timeout=10, tls=tls_context(str(pki.ca_file))) as client:
        assert client.methods()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_client_that_does_not_trust_the_certificate_refuses_it(tls_gateway, transport):
    with pytest.raises(GatewayError) as caught:
        with connect(url(tls_gateway, transport), timeout=5, tls=tls_context()) as client:  # system store only
            client.methods()
    assert caught.value.code == "connection_failed"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_silent_connections_do_not_block_other_handshakes(tls_gateway, pki, transport):
    """Twenty connections that never start TLS: a new client's handshake still completes at once (handshakes
    run side by side on the event loop; done one at a time on an accept loop, it would wait 60 s for each)."""
    port = tls_gateway.port(transport)
    silent = [socket.create_connection(("127.0.0.1", port)) for _ in range(20)]
    try:
        with connect(url(tls_gateway, transport), timeout=10, tls=tls_context(str(pki.ca_file))) as client:
            assert client.methods()
    finally:
        for sock in silent:
            sock.close()


def test_failed_handshakes_give_their_connection_slot_back(transport_settings, server_pem, pki):
    """Plaintext clients and clients silent past the handshake timeout free their place under
    max_connections_per_client: after many of them, a TLS client is still admitted on every transport."""
    cert, key = server_pem
    settings = transport_settings.replace(
        tls_cert=cert, tls_key=key, handshake_timeout=0.5, max_connections_per_client=4
    )
    for running in serve(settings):
        for transport in TRANSPORTS:
            port = running.port(transport)
            for _ in range(6):
                with socket.create_connection(("127.0.0.1", port)) as plain:
                    plain.sendall(b"GET / HTTP/1.0\r\n\r\n")
                    plain.settimeout(5)
                    while plain.recv(4096):
                        pass
            silent = [socket.create_connection(("127.0.0.1", port)) for _ in range(4)]
            for sock in silent:
                sock.settimeout(5)
                assert sock.recv(4096) == b""  # closed by the gateway at the handshake timeout
                sock.close()
            with connect(url(running, transport), timeout=10, tls=tls_context(str(pki.ca_file))) as client:
                assert client.methods()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_mutual_tls_requires_a_client_certificate(mtls_gateway, pki, client_pem, transport):
    trusted = tls_context(str(pki.ca_file), *client_pem)
    with connect(url(mtls_gateway, transport), timeout=10, token=TOKEN, tls=trusted) as c:
        assert c.resolve("www.example.test")["addresses"]
    with pytest.raises(GatewayError) as caught:
        with connect(url(mtls_gateway, transport), timeout=5, token=TOKEN, tls=tls_context(str(pki.ca_file))) as c:
            c.methods()
    assert caught.value.code == "connection_failed"
    stranger = pki.stranger.issue_cert("intruder.local.test")
    context = tls_context(str(pki.ca_file))
    stranger.configure_cert(context)
    with pytest.raises(GatewayError) as caught:
        with connect(url(mtls_gateway, transport), timeout=5, token=TOKEN, tls=context) as c:
            c.methods()
    assert caught.value.code == "connection_failed"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_tls_and_a_token_together(mtls_gateway, pki, client_pem, transport):
    """A client certificate alone is not a token: with both required, both are checked."""
    context = tls_context(str(pki.ca_file), *client_pem)
    with pytest.raises(GatewayError) as caught:
        with connect(url(mtls_gateway, transport), timeout=10, tls=context) as client:
            client.resolve("www.example.test")
    assert caught.value.code == "unauthenticated"


def test_tls_handshakes_run_concurrently_with_calls(tls_gateway, pki):
    """Many TLS clients at once on all transports: every call answered."""
    errors: list[BaseException] = []

    def work(transport: str) -> None:
        try:
            for _ in range(3):
                with connect(url(tls_gateway, transport), timeout=20, tls=tls_context(str(pki.ca_file))) as c:
                    c.resolve("www.example.test")
        except BaseException as exc:  # every failure is reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in TRANSPORTS for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_bad_tls_settings_stop_the_start(transport_settings, tmp_path):
    with pytest.raises(ValueError, match="tls_cert and tls_key"):
        transport_settings.replace(tls_cert="x.pem")
    with pytest.raises(ValueError, match="cannot load the TLS"):
        Running(transport_settings.replace(tls_cert=str(tmp_path / "no.pem"), tls_key=str(tmp_path / "no.key")))


@pytest.mark.parametrize("transport", ["jsonrpc", "rpyc"])
def test_the_netops_command_with_a_token_file_and_tls(mtls_gateway, pki, client_pem, tmp_path, transport, monkeypatch):
    from tests.transports.test_cli import run

    monkeypatch.delenv("NETOPS_TOKEN", raising=False)
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    cert, key = client_pem
    target = ["--url", url(mtls_gateway, transport), "--ca-file", str(pki.ca_file), "--cert", cert, "--key", key]
    status, out, _ = run("call", "resolve", "www.example.test", "--json", "--token-file", str(token), *target)
    assert status == 0 and "addresses" in out
    status, _, err = run("call", "resolve", "www.example.test", *target)
    assert status == 1 and "unauthenticated" in err
    monkeypatch.setenv("NETOPS_TOKEN", TOKEN)
    status, out, _ = run("methods", *target)
    assert status == 0 and "resolve" in out


def test_http_pages_need_a_token_too_except_health(locked, half_open):
    import http.client

    def get(running: Running, path: str, token: str | None = None) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", running.port("jsonrpc"), timeout=10)
        conn.request("GET", path, headers={"Authorization": f"Bearer {token}"} if token else {})
        response = conn.getresponse()
        response.read()
        return response.status

    for path in ("/", "/openrpc.json", "/metrics"):
        assert get(locked, path) == 401
        assert get(locked, path, TOKEN) == 200
        assert get(half_open, path) == 200  # open introspection opens the descriptions too
    for path in ("/healthz", "/readyz"):
        assert get(locked, path) == 200


def test_a_stock_pyro_proxy_without_a_token_is_told_one_is_required(locked):
    import Pyro5.api
    import Pyro5.errors

    proxy = Pyro5.api.Proxy(f"PYRO:netops@127.0.0.1:{locked.port('pyro')}")
    with pytest.raises(Pyro5.errors.CommunicationError, match="unauthenticated: this gateway requires a token"):
        proxy._pyroBind()
    proxy._pyroRelease()
    proxy._pyroHandshake = TOKEN
    assert proxy.resolve("www.example.test")["addresses"]
    proxy._pyroRelease()


class _Spy:
    """A list the caller passes by reference: the gateway would have to call back to read it."""

    def __init__(self) -> None:
        self.asked = 0

    def __repr__(self) -> str:
        self.asked += 1
        return "['www.example.test']"


def test_rpyc_asks_an_anonymous_caller_for_nothing_before_refusing_it(half_open):
    import rpyc

    spy = _Spy()
    conn = rpyc.connect("127.0.0.1", half_open.port("rpyc"), service=rpyc.Service)
    try:
        root = conn.root
        assert repr(root) == "<netops gateway>"
        assert "_gateway" not in dir(root) and "_call" not in dir(root)
        with pytest.raises(PermissionError, match=r"^unauthenticated"):
            root.system_multicall(spy)
    finally:
        conn.close()
    assert spy.asked == 0  # refused before its argument was copied in


def test_pyro_daemon_object_answers_only_what_a_proxy_needs(half_open):
    import Pyro5.api
    import Pyro5.errors

    daemon = Pyro5.api.Proxy(f"PYRO:Pyro.Daemon@127.0.0.1:{half_open.port('pyro')}")
    try:
        daemon.ping()
        assert "system_listMethods" in daemon.get_metadata("netops")["methods"]
        assert "info" not in daemon._pyroMethods and "registered" not in daemon._pyroMethods
        for name in ("info", "registered", "get_next_stream_item"):  # sent anyway, as a hostile client would
            with pytest.raises(Exception) as info:
                daemon._pyroInvoke(name, (), {})
            assert str(info.value).startswith("method_not_found")
        with pytest.raises(Exception, match=r"^not_found"):
            daemon.get_metadata("nope")
    finally:
        daemon._pyroRelease()
    with Pyro5.api.Proxy(f"PYRO:netops@127.0.0.1:{half_open.port('pyro')}") as proxy:
        assert "resolve" in proxy.system_listMethods()  # a stock proxy still binds (it asks for the metadata)
