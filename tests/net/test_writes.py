"""Large answers are handed to the socket a chunk at a time as the client reads: in order, whole, and a
client that reads slowly but steadily is not dropped as idle."""

from __future__ import annotations

import json
import socket
import time

from gateway.server import Running

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


def _read_response_from(prefix: bytes, reader) -> dict:
    """The first response, whose first bytes were already read."""
    head, _, body = prefix.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
    )
    body += reader.read(length - len(body))
    return json.loads(body)
