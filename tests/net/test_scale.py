"""2,800 idle connections over every transport, opened by another process: threads stay flat."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

from gateway.net.session import ServingCodec
from gateway.transports import TRANSPORTS, codec_class
from tests.net.test_attacks import fds, start, status, still_serves
from tests.test_server import gateway_flags as gateway_flags  # the fixture, shared

PER_TRANSPORT = 400
# max_connections caps the connection layer's transports; gRPC's core caps its own at the same number.
LAYERED = [name for name in TRANSPORTS if not issubclass(codec_class(name), ServingCodec)]
CAP = PER_TRANSPORT * len(LAYERED) + 10  # room for one call on each transport, and no more

HOLDER = """
import socket, sys
ports = [int(p) for p in sys.argv[1:]]
held = [socket.create_connection(("127.0.0.1", port)) for port in ports for _ in range({n})]
print("ready", flush=True)
sys.stdin.read()
"""


def wait_until(predicate, seconds: float = 15.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return predicate()


def settled_fds(pid: int) -> int:
    """The gateway's descriptors once they stop changing: a finished call's connection closes on the
    gateway's side a moment after the client is done with it."""
    last = fds(pid)
    for _ in range(50):
        time.sleep(0.1)
        now = fds(pid)
        if now == last:
            return now
        last = now
    return last


def test_two_thousand_idle_connections(gateway_flags):
    flags = ["--max-connections", str(CAP), "--max-connections-per-client", "0"]
    with start(*gateway_flags, *flags) as server:
        pid = server.proc.pid
        still_serves(server)
        base_fds = settled_fds(pid)
        base = status(pid)
        ports = [str(server.port(name)) for name in TRANSPORTS]
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLDER.format(n=PER_TRANSPORT), *ports],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
            assert wait_until(lambda: fds(pid) >= base_fds + PER_TRANSPORT * len(TRANSPORTS))
            held = status(pid)
            assert held["Threads"] <= base["Threads"] + 2, (base, held)
            still_serves(server)  # one more connection on each transport: within the cap
            # Over the cap: refused at once, an HTTP client with a 503, never left hanging.
            extra = [socket.create_connection(("127.0.0.1", server.port("jsonrpc"))) for _ in range(20)]
            answers = []
            for sock in extra:
                sock.settimeout(0.5)
                try:
                    answers.append(sock.recv(100))
                except TimeoutError:
                    answers.append(b"(kept)")
                sock.close()
            refused = [a for a in answers if a.startswith(b"HTTP/1.1 503")]
            assert len(refused) >= 10 and set(answers) - set(refused) <= {b"(kept)"}, answers
        finally:
            holder.stdin.close()  # type: ignore[union-attr]
            holder.wait(30)
        assert wait_until(lambda: fds(pid) <= base_fds + 2), (base_fds, fds(pid))
        after = status(pid)
        assert after["Threads"] <= base["Threads"] + 2
        assert after["VmRSS"] <= base["VmRSS"] + 30 * 1024
        still_serves(server)
