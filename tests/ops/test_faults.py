"""Faults outside the gateway: each ends in a clear error (or a bounded result) within its time,
and nothing is left behind: the gateway's threads and open sockets are counted before and after."""

from __future__ import annotations

import os
import socketserver
import threading
import time

import pytest

from gateway.config import Settings
from tests.conftest import checked_call, error_of, make_gateway


class GarbageDNS(socketserver.ThreadingMixIn, socketserver.UDPServer):
    """Answers every query with bytes that are not a DNS message."""

    daemon_threads = True

    def __init__(self) -> None:
        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                _, sock = self.request
                sock.sendto(b"\xde\xad\xbe\xef not dns at all", self.client_address)

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()


@pytest.fixture
def garbage_dns():
    server = GarbageDNS()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_nameserver_answering_garbage_is_a_clear_error(garbage_dns):
    call = checked_call(make_gateway(Settings(nameservers=(garbage_dns,), timeout=1.5)))
    for name, args in (
        ("resolve", ["www.example.test"]),
        ("mx_lookup", ["example.test"]),
        ("dns_query", ["x.test", "TXT"]),
    ):
        assert error_of(call, name, *args).code in ("connection_failed", "timeout")


def test_a_reset_mid_body_is_connection_failed(call, http_server):
    err = error_of(call, "fetch_url", f"http://web.local.test:{http_server.port}/reset")
    assert err.code == "connection_failed"


def test_an_endless_body_is_a_truncated_result(call, http_server):
    result = call("fetch_url", f"http://web.local.test:{http_server.port}/endless", max_bytes=200_000)
    assert result["truncated"] is True and result["body_bytes"] == 200_000


def process_sockets(pid: int) -> int:
    """Sockets a process holds open (file descriptors may close while they are counted)."""
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            count += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
        except OSError:
            continue
    return count


def process_threads(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("Threads:"))


def settled(measure, baseline: int, timeout: float = 5.0) -> int:
    """The measure once it has come down to ``baseline`` (closing is asynchronous), or its last value."""
    deadline = time.monotonic() + timeout
    value = measure()
    while value > baseline and time.monotonic() < deadline:
        time.sleep(0.05)
        value = measure()
    return value


def test_faults_leave_no_threads_or_sockets_behind(
    dns_server, pki, http_server, https_server, silent_port, closed_port
):
    """A gateway process takes rounds of failing calls.

    Its sockets come back to their number after each round, and its threads stop growing (pools may widen
    up to their bounds; a leak of one thread a round would show as growth over four rounds).
    """
    from tests.test_server import ALL_FREE, ServerProcess

    flags = ["--nameserver", dns_server.address, "--allow-target", "127.0.0.0/8", "--ca-file", str(pki.ca_file)]
    web = f"http://web.local.test:{http_server.port}"
    failing = [
        ("fetch_url", [f"{web}/reset"]),
        ("fetch_url", [f"{web}/slow?every=0.05"]),
        ("fetch_url", [f"{web}/loop"]),
        ("fetch_url", [f"{web}/endless", "GET", {}, 1000]),
        ("fetch_url", [f"http://127.0.0.1:{silent_port}/"]),
        ("fetch_url", [f"https://expired.local.test:{https_server.port}/"]),
        ("tls_check", ["127.0.0.1", silent_port]),
        ("tls_check", ["127.0.0.1", closed_port]),
        ("resolve", ["blackhole.example.test"]),
        ("tcp_connect", ["nope.example.test", 80]),
    ]
    with ServerProcess(
        *ALL_FREE, *flags, "--timeout", "1", "--transports", "jsonrpc", "--access-log", "false"
    ) as server:
        server.wait_ready(1)
        pid = server.proc.pid
        baseline_sockets = process_sockets(pid)

        def one_round() -> None:
            from tests.transports.clients import connect

            client = connect(server, "jsonrpc")  # type: ignore[arg-type]
            outcomes = client.call("system.multicall", [{"methodName": n, "params": a} for n, a in failing])
            client.close()
            faults = [o for o in outcomes if isinstance(o, dict)]
            assert len(faults) == len(failing) - 1, outcomes  # every call but the endless body fails cleanly
            assert outcomes[3][0]["truncated"] is True  # the endless body is a truncated result

        threads = []
        for _ in range(5):
            one_round()
            assert settled(lambda: process_sockets(pid), baseline_sockets) == baseline_sockets
            threads.append(process_threads(pid))
        assert threads[-1] - threads[1] < 4, f"threads grow round after round: {threads}"
        assert server.stop() == 0
