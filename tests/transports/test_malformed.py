"""A stock client's own requests, damaged: each transport answers with its error or closes, logs no failure of
its own, and goes on serving. What the damage found is pinned down below, one case each."""

from __future__ import annotations

import http.client
import logging
import marshal
import socket
import struct
import threading
import time
import xmlrpc.client
from collections.abc import Iterator

import grpc
import pytest
import serpent
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from Pyro5 import protocol
from Pyro5.serializers import serializers

from gateway.config import TRANSPORTS, Settings
from gateway.server import Running
from tests.servers.tcp import accept_each
from tests.transports.clients import CLIENTS, Client, RemoteError, connect
from tests.transports.test_conformance import wait_until
from tests.transports.test_hostile import exchange

SERPENT = serializers["serpent"]


@pytest.fixture(scope="module")
def gateway(transport_settings: Settings) -> Iterator[Running]:
    """A gateway of this module's own: one test here stops grpcio's server on purpose."""
    running = Running(transport_settings.replace(idle_timeout=2.0, handshake_timeout=2.0))
    running.start()
    yield running
    running.stop()


class _Recorder:
    """A relay in front of one port that keeps what the client sent."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sent = bytearray()
        self.listener = accept_each(self._relay)

    def _relay(self, client: socket.socket) -> None:
        server = socket.create_connection(("127.0.0.1", self.port))
        threading.Thread(target=self._pipe, args=(server, client, False), daemon=True).start()
        self._pipe(client, server, True)

    def _pipe(self, source: socket.socket, sink: socket.socket, keep: bool) -> None:
        try:
            while chunk := source.recv(65536):
                if keep:
                    self.sent += chunk
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


@pytest.fixture(scope="module")
def conversations(gateway: Running) -> dict[str, bytes]:
    """What each transport's stock client sends for a listing, a help text and a resolve, on one connection."""
    recorded = {}
    for transport in TRANSPORTS:
        recorder = _Recorder(gateway.port(transport))
        client = CLIENTS[transport](recorder.listener.getsockname()[1])
        client.call("system.listMethods")
        client.call("system.methodHelp", "resolve")
        client.call("resolve", "127.0.0.1")
        client.close()
        time.sleep(0.1)  # the relay's last bytes
        recorder.listener.close()
        recorded[transport] = bytes(recorder.sent)
    return recorded


def serves(gateway: Running, transport: str) -> bool:
    """An ordinary call is answered, on a new connection (for gRPC, one whose failures are its own: grpcio's
    channels share connections and their back-off)."""
    port = gateway.port(transport)
    try:
        if transport != "grpc":
            return lists(connect(gateway, transport))
        with grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.use_local_subchannel_pool", 1)]) as channel:
            return lists(CLIENTS[transport](port, channel=channel))
    except (RemoteError, OSError, grpc.RpcError):
        return False


def lists(client: Client) -> bool:
    """``client`` lists the methods; closed after."""
    try:
        return "resolve" in client.call("system.listMethods")
    finally:
        client.close()


def gateway_failures(caplog: pytest.LogCaptureFixture) -> list[str]:
    """What the gateway's own code logged as a failure (an internal error, a session that failed)."""
    return [r.getMessage() for r in caplog.records if r.name.startswith("gateway") and r.levelno >= logging.ERROR]


@st.composite
def damaged(draw: st.DrawFn, whole: bytes) -> bytes:
    """``whole`` with a few bytes changed, inserted or cut, or cut short."""
    data = bytearray(whole)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        how = draw(st.sampled_from(["set", "insert", "delete", "cut"]))
        if how == "set" and data:
            data[at] = draw(st.integers(0, 255))
        elif how == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif how == "delete":
            del data[at : at + draw(st.integers(1, 16))]
        else:
            del data[at:]
    return bytes(data)


@pytest.mark.parametrize("transport", TRANSPORTS)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_stock_client_s_requests_damaged_get_an_error_or_a_close(gateway, conversations, transport, data, caplog):
    payload = data.draw(damaged(conversations[transport]))
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        exchange(gateway.port(transport), payload)
        wait_until(lambda: serves(gateway, transport), timeout=5)  # gRPC may be starting again (see below)
    assert not gateway_failures(caplog)


# -- what the damage found -------------------------------------------------------------------------------
def test_a_grpc_method_path_that_is_not_utf8_stops_no_one_else(gateway, caplog):
    """grpcio's asyncio server stops when a call's path is not UTF-8; the gateway serves again on the same
    port at once, and a call in progress on another connection still gets its own answer."""
    port = gateway.port("grpc")
    in_progress: dict[str, str] = {}

    def slow_call() -> None:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            client = CLIENTS["grpc"](port, channel=channel)
            try:
                client.call("resolve", "blackhole.example.test")  # unanswered: ends with its time limit
            except RemoteError as exc:
                in_progress["code"] = exc.code

    blinks = []  # what the server's watchdog would have seen: the gateway not serving (it then exits)
    watching = threading.Event()

    def watch() -> None:
        while not watching.wait(0.0005):
            if not gateway.layer.serving():
                blinks.append(time.monotonic())

    caller, watchdog = threading.Thread(target=slow_call), threading.Thread(target=watch)
    caller.start()
    time.sleep(0.5)
    watchdog.start()
    options = [("grpc.use_local_subchannel_pool", 1)]  # a connection of its own, its failures its own
    with grpc.insecure_channel(f"127.0.0.1:{port}", options=options) as channel:
        with pytest.raises(grpc.RpcError):
            channel.unary_unary(b"/netops.v1.NetOps/\xffListMethods")(b"", timeout=5)
    wait_until(lambda: serves(gateway, "grpc") and not gateway.not_ready(), timeout=5)
    watching.set()
    watchdog.join()
    caller.join(10)
    assert not blinks
    assert in_progress == {"code": "timeout"}
    assert any("serving again" in r.getMessage() for r in caplog.records)
    assert not gateway_failures(caplog)


def pyro_reply(gateway: Running, message: bytes) -> bytes:
    """The gateway's answer to a handshake and then ``message`` on one Pyro5 connection (b"" if closed)."""
    hello = SERPENT.dumps({"handshake": "hello", "object": "netops"})
    with socket.create_connection(("127.0.0.1", gateway.port("pyro")), timeout=5) as sock:
        sock.sendall(protocol.SendingMessage(protocol.MSG_CONNECT, 0, 1, SERPENT.serializer_id, hello).data)
        connected = protocol.recv_stub(_Reader(sock))
        assert connected.type == protocol.MSG_CONNECTOK
        sock.sendall(message)
        try:
            reply = protocol.recv_stub(_Reader(sock))
        except OSError:  # closed
            return b""
        return bytes(reply.data)


class _Reader:
    """A socket as Pyro5's recv_stub reads it."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def recv(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = self.sock.recv(size - len(data))
            if not chunk:
                raise ConnectionError("closed")
            data += chunk
        return data


def invoke(payload: bytes, kind: int = protocol.MSG_INVOKE, serializer: int = SERPENT.serializer_id) -> bytes:
    return protocol.SendingMessage(kind, 0, 7, serializer, payload).data


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        (b"# serpent utf-8 python3.2\n('netops', '\xff', (), {})", "ValueError('invalid_argument: "),  # not UTF-8
        (b"# serpent utf-8 python3.2\n('netops', 'resolve', (", "ValueError('invalid_argument: "),  # cut short
        (b"# serpent utf-8 python3.2\n('netops', 'res\x00olve', (), {})", "ValueError('invalid_argument: "),
        (b"# serpent utf-8 python3.2\n('netops', 'resolve')", "ValueError('invalid_argument: "),  # two of four
        (serpent.dumps(("nobody", "resolve", (), {})), "LookupError('not_found: no such object"),
    ],
    ids=["not-utf8", "cut-short", "nul-byte", "two-of-four", "no-such-object"],
)
def test_a_pyro_call_serpent_cannot_read_is_invalid_argument(gateway, caplog, payload, error):
    with caplog.at_level(logging.WARNING):
        reply = SERPENT.loads(pyro_reply(gateway, invoke(payload)))
    assert repr(reply).startswith(error), reply
    assert not gateway_failures(caplog)


def test_a_pyro_call_flagged_compressed_that_is_not_zlib_is_invalid_argument(gateway, caplog):
    body = b"x" * 64  # (Pyro5's SendingMessage compresses a body itself, or clears the flag: the header by hand)
    header = struct.pack(
        protocol._header_format, b"PYRO", protocol.PROTOCOL_VERSION, protocol.MSG_INVOKE, SERPENT.serializer_id,
        protocol.FLAGS_COMPRESSED, 7, len(body), 0, bytes(16), 0, protocol._magic_number,
    )  # fmt: skip
    with caplog.at_level(logging.WARNING):
        reply = SERPENT.loads(pyro_reply(gateway, header + body))
    assert repr(reply).startswith("ValueError('invalid_argument: the compressed body is not zlib"), reply
    assert not gateway_failures(caplog)


@pytest.mark.parametrize("annotations", [{}, {"BLBI": marshal.dumps(("info", "netops", "resolve"))}])
def test_a_pyro_call_with_arguments_kept_serialized_is_refused_unread(gateway, caplog, annotations):
    """A SerializedBlob's description is read by Pyro5 with marshal.loads: it never sees a caller's bytes."""
    kept = protocol.FLAGS_KEEPSERIALIZED
    payload = serpent.dumps(("netops", "resolve", ("127.0.0.1",), {}))
    message = protocol.SendingMessage(protocol.MSG_INVOKE, kept, 7, SERPENT.serializer_id, payload, annotations)
    with caplog.at_level(logging.WARNING):
        reply = SERPENT.loads(pyro_reply(gateway, message.data))
    assert repr(reply).startswith("ValueError('invalid_argument: arguments kept serialized"), reply
    assert not gateway_failures(caplog)


@pytest.mark.parametrize(
    "message",
    [
        invoke(b"", kind=protocol.MSG_RESULT),  # not a message a client sends
        invoke(b"", kind=protocol.MSG_CONNECT),  # a second handshake
        invoke(serpent.dumps(("netops", "resolve", (), {})), serializer=85),  # no such serializer
    ],
    ids=["result", "connect", "serializer"],
)
def test_a_pyro_message_the_daemon_cannot_take_closes_the_connection(gateway, caplog, message):
    with caplog.at_level(logging.WARNING):
        assert pyro_reply(gateway, message) == b""
    assert serves(gateway, "pyro")
    assert not gateway_failures(caplog)


@pytest.mark.parametrize(
    "value",
    [b"<strigg>x</strigg>", b"<bigdecimal>abc</bigdecimal>", b"<struct><member><name>a</name></member></struct>"],
    ids=["unknown-element", "bigdecimal", "lone-member"],
)
def test_an_xmlrpc_value_the_stdlib_cannot_read_is_a_parse_error(gateway, caplog, value):
    body = b"<methodCall><methodName>resolve</methodName><params><param><value>%s</value></param></params></methodCall>"
    with caplog.at_level(logging.WARNING):
        connection = http.client.HTTPConnection("127.0.0.1", gateway.port("xmlrpc"), timeout=5)
        connection.request("POST", "/RPC2", body % value, {"Content-Type": "text/xml"})
        answer = connection.getresponse().read()
        connection.close()
    with pytest.raises(xmlrpc.client.Fault) as raised:
        xmlrpc.client.loads(answer)
    assert raised.value.faultCode == -32700
    assert not gateway_failures(caplog)
