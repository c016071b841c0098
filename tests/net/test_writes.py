"""Large answers are handed to the socket a chunk at a time as the client reads: in order, whole, and a
client that reads slowly but steadily is not dropped as idle; each costs the gateway at most twice its body."""

from __future__ import annotations

import json
import socket
import threading
import time
import xmlrpc.client
from pathlib import Path

from gateway.client import connect
from gateway.server import Running
from gateway.transports import TRANSPORTS
from tests.net.test_attacks import start, status, url
from tests.test_server import gateway_flags as gateway_flags  # the fixture, shared

MiB = 1024 * 1024


def _post(body: dict) -> bytes:
    data = json.dumps(body).encode()
    head = f"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
    return head.encode() + data


def _read_response(reader) -> dict:
    length = 0
    while (line := reader.readline()) not in (b"\r\n", b""):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return json.loads(reader.read(length))


def test_a_large_answer_and_a_small_one_pipelined_arrive_whole_and_in_order(http_server, transport_settings):
    running = Running(transport_settings.replace(transports=("jsonrpc",), idle_timeout=2.0))
    running.start()
    url = f"http://web.local.test:{http_server.port}/big?size={8 * MiB}"
    try:
        with socket.create_connection(("127.0.0.1", running.port("jsonrpc"))) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)  # a slow reader's small window
            big = {"jsonrpc": "2.0", "method": "fetch_url", "params": [url, "GET", {}, 8 * MiB], "id": 1}
            sock.sendall(_post(big) + _post({"jsonrpc": "2.0", "method": "system.listMethods", "id": 2}))
            reader = sock.makefile("rb")
            time.sleep(0.5)
            started = time.monotonic()
            first = b""
            while len(first) < 4 * MiB:  # read for longer than idle_timeout, a little at a time
                first += reader.read1(256 * 1024)
                time.sleep(0.1)
            assert time.monotonic() - started > 2.0
            rest = _read_response_from(first, reader)
            second = _read_response(reader)
        assert rest["id"] == 1 and rest["result"]["body_bytes"] == 8 * MiB
        assert second["id"] == 2 and "resolve" in second["result"]
    finally:
        running.stop()


def test_a_long_string_made_as_it_is_read_arrives_whole_and_before_the_next_answer(http_server, transport_settings):
    """XML-RPC writes a long string as the client reads it (a Deferred part, escaped a chunk at a time): a
    slow reader gets the body whole, the Content-Length announced beforehand matches it, and the answer
    pipelined behind it comes after it, whole."""
    running = Running(transport_settings.replace(transports=("xmlrpc",), idle_timeout=2.0))
    running.start()
    size = 4 * MiB
    target = f"http://web.local.test:{http_server.port}/big?size={size}&noise=1"
    try:
        with socket.create_connection(("127.0.0.1", running.port("xmlrpc"))) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
            calls = [
                xmlrpc.client.dumps((target, "GET", {}, size), "fetch_url"),
                xmlrpc.client.dumps((), "system.listMethods"),
            ]
            head = "POST /RPC2 HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n"
            heads = [head.format(len(call.encode())) for call in calls]
            sock.sendall(b"".join(head.encode() + call.encode() for head, call in zip(heads, calls, strict=True)))
            reader = sock.makefile("rb")
            time.sleep(0.5)
            first = b""
            while len(first) < size // 2:  # slowly: the rest is made only as this reads
                first += reader.read1(256 * 1024)
                time.sleep(0.05)
            head, _, body = first.partition(b"\r\n\r\n")
            length = next(
                int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
            )
            body += reader.read(length - len(body))
            (fetched,), _ = xmlrpc.client.loads(body)
            listing = _read_xmlrpc_response(reader)
        assert fetched["body_bytes"] == size and len(fetched["body"]) == size
        assert "resolve" in listing
    finally:
        running.stop()


def _read_xmlrpc_response(reader) -> object:
    length = 0
    while (line := reader.readline()) not in (b"\r\n", b""):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    (value,), _ = xmlrpc.client.loads(reader.read(length))
    return value


def _read_response_from(prefix: bytes, reader) -> dict:
    """The first response, whose first bytes were already read."""
    head, _, body = prefix.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
    )
    body += reader.read(length - len(body))
    return json.loads(body)


def _reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM starts again from VmRSS


def test_a_large_result_costs_at_most_twice_its_body_on_every_transport(gateway_flags, http_server):
    """Four concurrent 10 MiB fetch_url calls on each transport: the gateway's peak RSS over its RSS at rest,
    per call in flight, is at most twice the body (issue 13); the body is text that does not compress."""
    size, calls = 10 * MiB, 4
    target = f"http://web.local.test:{http_server.port}/big?size={size}&noise=1"
    with start(*gateway_flags, "--timeout", "30") as server:
        pid = server.proc.pid
        for name in TRANSPORTS:
            with connect(url(server, name), timeout=60) as client:
                client.methods()
                rest = status(pid)["VmRSS"]
                _reset_peak(pid)
                failures: list[BaseException] = []

                def fetch(name: str = name, failures: list[BaseException] = failures) -> None:
                    try:
                        with connect(url(server, name), timeout=60) as own:
                            assert own.fetch_url(target, "GET", {}, size)["body_bytes"] == size
                    except BaseException as exc:  # reported below, with the transport
                        failures.append(exc)

                threads = [threading.Thread(target=fetch) for _ in range(calls)]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
                assert failures == [], name
                per_call = (status(pid)["VmHWM"] - rest) * 1024 / calls
                assert per_call <= 2 * size, f"{name}: {per_call / MiB:.1f} MiB per call in flight"
