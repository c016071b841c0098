"""Hostile clients on every transport: slow, idle, random, inflating. Each is dropped or answered with an
error; everyone else keeps being served; threads, sockets and memory come back to where they were."""

from __future__ import annotations

import os
import resource
import socket
import struct
import threading
import time
import zlib
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from Pyro5 import protocol, serializers

from gateway.config import TRANSPORTS, Settings
from gateway.server import Running
from tests.transports.clients import connect
from tests.transports.test_conformance import wait_until

IDLE = 2.0  # the hostile gateway's idle_timeout and handshake_timeout: how long a silent or slow client may stay
BODY = 100_000  # what each slow message claims: under every request cap, so only its pace is wrong


def _thrift_message() -> bytes:
    name = b"resolve"
    return (
        b"\x80\x01\x00\x01" + struct.pack("!i", len(name)) + name + struct.pack("!i", 1)
        + b"\x0b\x00\x01" + struct.pack("!i", BODY) + b"a" * BODY
    )  # fmt: skip


def _http_message(path: str, content_type: str) -> bytes:
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\nContent-Length: {BODY}\r\n\r\n"
    return head.encode() + b" " * BODY


def _grpc_message() -> bytes:
    """HTTP/2 as a gRPC client starts it: the preface, SETTINGS, the call's HEADERS, then DATA frames."""

    def frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
        return struct.pack("!I", len(payload))[1:] + bytes([kind, flags]) + struct.pack("!I", stream) + payload

    headers = b"".join(
        b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value  # HPACK literals, no indexing
        for name, value in (
            (b":method", b"POST"), (b":scheme", b"http"), (b":path", b"/netops.v1.NetOps/Resolve"),
            (b":authority", b"x"), (b"content-type", b"application/grpc"), (b"te", b"trailers"),
        )
    )  # fmt: skip
    body = b"\x00" + struct.pack("!I", BODY) + b"a" * BODY  # one gRPC message claiming BODY bytes
    data = b"".join(frame(0, 0, 1, body[i : i + 16384]) for i in range(0, len(body), 16384))
    return b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(4, 0, 0, b"") + frame(1, 4, 1, headers) + data


SLOW_MESSAGES = {
    "xmlrpc": _http_message("/RPC2", "text/xml"),
    "jsonrpc": _http_message("/", "application/json"),
    "pyro": protocol.SendingMessage(
        protocol.MSG_CONNECT, 0, 0, serializers.serializers["serpent"].serializer_id, b"x" * BODY
    ).data,
    "thrift": _thrift_message(),
    "rpyc": struct.pack("!LB", BODY, 0) + b"\x00" * BODY,
    "mcp": _http_message("/mcp", "application/json"),
    "grpc": _grpc_message(),
}


@pytest.fixture(scope="module")
def hostile_gateway(transport_settings: Settings) -> Iterator[Running]:
    running = Running(transport_settings.replace(idle_timeout=IDLE, handshake_timeout=IDLE))
    running.start()
    yield running
    running.stop()


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def closed_by_peer(sock: socket.socket) -> bool:
    """True once the gateway has closed its end (reads see end of file or a reset)."""
    try:
        sock.setblocking(False)
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return True
    except BlockingIOError:
        return False
    except OSError:
        return True


def test_hundreds_of_idle_and_slow_clients_are_dropped_and_others_served(hostile_gateway):
    """40 clients a transport, half silent, half sending a byte every 0.4 s: all of them are closed by the
    gateway within a few idle timeouts, ordinary calls succeed meanwhile, and threads and sockets return."""
    threads_before, fds_before = threading.active_count(), open_fds()
    hostile: list[socket.socket] = []
    slow: list[tuple[socket.socket, bytes]] = []
    for transport in TRANSPORTS:
        for n in range(40):
            sock = socket.create_connection(("127.0.0.1", hostile_gateway.port(transport)))
            hostile.append(sock)
            if n % 2:
                slow.append((sock, SLOW_MESSAGES[transport]))
    stop = threading.Event()

    def trickle() -> None:
        sent = 0
        while not stop.is_set():
            for sock, message in slow:
                try:
                    sock.send(message[sent : sent + 1])
                except OSError:
                    pass  # dropped already
            sent += 1
            stop.wait(0.4)

    trickler = threading.Thread(target=trickle, daemon=True)
    trickler.start()
    try:
        peak_threads = threading.active_count()
        for transport in TRANSPORTS:  # served meanwhile, each on a new connection
            client = connect(hostile_gateway, transport)
            for _ in range(5):
                assert client.call("system.listMethods")
            client.close()
        wait_until(lambda: all(closed_by_peer(s) for s in hostile), timeout=6 * IDLE + 5)
    finally:
        stop.set()
        trickler.join()
        for sock in hostile:
            sock.close()
    assert peak_threads <= threads_before + len(hostile) + 10  # one thread a connection at most, then none
    wait_until(lambda: threading.active_count() <= threads_before + 5, timeout=3 * IDLE + 5)
    wait_until(lambda: open_fds() <= fds_before + 2, timeout=3 * IDLE + 5)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_slow_tls_handshake_is_dropped_too(transport_settings, transport, tmp_path, pki):
    leaf = pki.ca.issue_cert("127.0.0.1")
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    leaf.private_key_pem.write_to_path(str(key))
    settings = transport_settings.replace(
        transports=(transport,), tls_cert=str(cert), tls_key=str(key), handshake_timeout=IDLE
    )
    running = Running(settings)
    running.start()
    try:
        sock = socket.create_connection(("127.0.0.1", running.port(transport)))
        hello = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40  # a ClientHello that never ends
        for byte in hello[:8]:
            sock.send(bytes([byte]))
            time.sleep(0.3)
        wait_until(lambda: closed_by_peer(sock), timeout=3 * IDLE + 5)
        sock.close()
    finally:
        running.stop()


# -- random and mutated bytes --------------------------------------------------------------------
def exchange(port: int, payload: bytes) -> None:
    """Send ``payload``, end the request side, and read until the gateway answers and closes (or resets)."""
    with socket.create_connection(("127.0.0.1", port), timeout=3 * IDLE + 5) as sock:
        try:
            sock.sendall(payload)
            sock.shutdown(socket.SHUT_WR)
            while sock.recv(65536):
                pass
        except (ConnectionResetError, BrokenPipeError, OSError) as exc:
            assert not isinstance(exc, TimeoutError), "the gateway neither answered nor closed"
            # otherwise closed on us mid-send: a fine answer to garbage


VALID_STARTS = {transport: message[:64] for transport, message in SLOW_MESSAGES.items()}


@pytest.mark.parametrize("transport", TRANSPORTS)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_and_mutated_bytes_get_an_error_or_a_close(hostile_gateway, transport, data):
    """Random bytes, and a valid message start with random bytes spliced in: the gateway answers or closes
    (never hangs once the client has finished sending), and then serves an ordinary call."""
    start = VALID_STARTS[transport]
    payload = data.draw(
        st.one_of(
            st.binary(max_size=2048),
            st.builds(
                lambda cut, noise: start[:cut] + noise,
                st.integers(0, len(start)),
                st.binary(max_size=256),
            ),
        )
    )
    exchange(hostile_gateway.port(transport), payload)
    client = connect(hostile_gateway, transport)
    try:
        assert client.call("system.listMethods")
    finally:
        client.close()


@pytest.mark.parametrize("wrong", TRANSPORTS)
def test_every_protocol_on_every_other_port(hostile_gateway, wrong):
    """A valid first message of one protocol sent to each other transport's port: closed or refused."""
    for transport in TRANSPORTS:
        if transport != wrong:
            exchange(hostile_gateway.port(transport), SLOW_MESSAGES[wrong][:4096])
    for transport in TRANSPORTS:
        client = connect(hostile_gateway, transport)
        assert client.call("system.listMethods")
        client.close()


# -- RPyC frames ---------------------------------------------------------------------------------
def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_rpyc_frame_flagged_compressed_cannot_inflate(hostile_gateway):
    """64 MiB of zeros compressed into ~64 KB (under the request cap), flagged compressed: refused after
    inflating at most the cap, where rpyc itself would inflate all of it (TRANSPORTS.md: 1.7 GB seen)."""
    bomb = zlib.compress(b"\x00" * (64 * 1024 * 1024), 9)
    assert len(bomb) < 1024 * 1024
    before = peak_rss_mb()
    for _ in range(3):
        exchange(hostile_gateway.port("rpyc"), struct.pack("!LB", len(bomb), 1) + bomb + b"\n")
    assert peak_rss_mb() - before < 32  # each attempt would have added 64 MiB
    client = connect(hostile_gateway, "rpyc")
    assert client.call("system.listMethods")
    client.close()


def test_rpyc_frame_claiming_4_gib_is_refused_at_once(hostile_gateway):
    sock = socket.create_connection(("127.0.0.1", hostile_gateway.port("rpyc")))
    sock.sendall(struct.pack("!LB", 2**32 - 1, 0) + b"x" * 1000)
    wait_until(lambda: closed_by_peer(sock), timeout=5)  # no read of 4 GiB is attempted; the frame is refused
    sock.close()
