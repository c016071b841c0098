"""server.py as a user runs it: the endpoint table, one call per transport, clean stops, clear failures."""

from __future__ import annotations

import http.client
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from gateway.server import Running
from gateway.transports import TRANSPORTS
from tests.transports.clients import RemoteError, connect
from tests.transports.test_conformance import record_error, wait_until

ROOT = Path(__file__).resolve().parents[1]
ALL_FREE = [arg for name in TRANSPORTS for arg in (f"--{name}-port", "0")]


class ServerProcess:
    """``python server.py`` in a subprocess; the endpoint table read from its output."""

    def __init__(self, *args: str, preexec_fn: Any = None, python: str = sys.executable, env: Any = None) -> None:
        self.proc = subprocess.Popen(
            [python, "server.py", *args],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=preexec_fn,
        )
        self.ports: dict[str, int] = {}
        self.lines: list[str] = []

    def wait_ready(self, count: int) -> None:
        """Read the table: a header, a column line, then one line per transport."""
        assert self.proc.stdout is not None
        while len(self.ports) < count:
            line = self.proc.stdout.readline()
            assert line, f"server exited early: {self.proc.stderr.read() if self.proc.stderr else ''}"
            self.lines.append(line.rstrip("\n"))
            parts = line.split()
            if len(parts) >= 3 and parts[1].isdigit():
                self.ports[parts[0]] = int(parts[1])

    def port(self, name: str) -> int:
        return self.ports[name]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        """Signal the server and return its exit status (the timeout only guards against a hang)."""
        self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def gateway_flags(dns_server, pki) -> list[str]:
    return [
        "--nameserver",
        dns_server.address,
        "--allow-target",
        "127.0.0.0/8",
        "--ca-file",
        str(pki.ca_file),
        "--timeout",
        "2",
    ]


def test_starts_every_transport_prints_the_table_and_stops_cleanly(gateway_flags):
    with ServerProcess(*ALL_FREE, *gateway_flags) as server:
        server.wait_ready(len(TRANSPORTS))
        assert server.lines[0].startswith("NetOps Gateway")
        assert f"12 methods on {len(TRANSPORTS)} transports" in server.lines[0]
        assert list(server.ports) == list(TRANSPORTS)
        assert f"http://127.0.0.1:{server.port('xmlrpc')}/RPC2" in "\n".join(server.lines)
        for name in server.ports:
            client = connect(server, name)  # type: ignore[arg-type]
            assert client.call("resolve", "www.example.test", "ipv6")["addresses"] == [
                {"family": "ipv6", "address": "2001:db8::10"}
            ]
            client.close()
        assert server.stop() == 0


def test_sigint_with_a_call_in_flight_exits_zero(gateway_flags, dns_server):
    with ServerProcess(*ALL_FREE, *gateway_flags, "--transports", "jsonrpc") as server:
        server.wait_ready(1)
        client = connect(server, "jsonrpc")  # type: ignore[arg-type]
        outcome: list[BaseException] = []
        slow = threading.Thread(target=record_error, args=(outcome, client.call, "resolve", "blackhole.example.test"))
        seen = dns_server.authority.blackhole_queries
        slow.start()
        wait_until(lambda: dns_server.authority.blackhole_queries > seen)  # the call is in flight
        assert server.stop(signal.SIGINT) == 0
        slow.join(10)
        assert outcome and isinstance(outcome[0], (RemoteError, OSError))  # cut or timed out, not hung


def test_the_gateway_s_threads_show_their_names_to_the_system(gateway_flags):
    with ServerProcess(*ALL_FREE, *gateway_flags) as server:
        server.wait_ready(len(TRANSPORTS))
        client = connect(server, "jsonrpc")  # type: ignore[arg-type]
        # A multicall's connection attempts start the multicall threads; its lookups, the DNS loop.
        port = server.ports["jsonrpc"]
        calls = [("resolve", ["www.example.test"]), ("tcp_connect", ["127.0.0.1", port])] * 2
        assert [type(r) for r in client.multicall(calls)] == [dict] * 4
        client.close()
        names = set()
        for task in Path(f"/proc/{server.proc.pid}/task").iterdir():
            try:
                names.add((task / "comm").read_text().strip())
            except FileNotFoundError:
                continue  # a thread that ended meanwhile (one of grpcio's own)
        # What top -H, ps -L and perf show, and what netops bench counts the gateway's CPU by.
        assert {"netops-io", "call-0", "dns", "multicall_0", "grpc-io"} <= names
        assert server.stop() == 0


def test_transports_flag_starts_a_subset(gateway_flags):
    with ServerProcess(*ALL_FREE, *gateway_flags, "--transports", "xmlrpc,thrift") as server:
        server.wait_ready(2)
        assert list(server.ports) == ["xmlrpc", "thrift"]
        assert "on 2 transports" in server.lines[0]
        assert server.stop() == 0


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_busy_port_is_a_one_line_error(transport):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        flags = [*ALL_FREE]
        flags[flags.index(f"--{transport}-port") + 1] = str(port)
        result = subprocess.run(
            [sys.executable, "server.py", *flags], cwd=ROOT, capture_output=True, text=True, timeout=30
        )
    assert result.returncode == 1
    assert result.stderr.strip() == f"error: cannot start {transport} on 127.0.0.1 port {port}: address already in use"
    assert result.stdout == ""


def test_a_bad_setting_is_a_one_line_error():
    result = subprocess.run(
        [sys.executable, "server.py", "--timeout", "soon"], cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error: setting timeout: bad value 'soon'")


def test_running_in_process_releases_its_ports(transport_settings):
    first = Running(transport_settings.replace(xmlrpc_port=0, transports=("xmlrpc",)))
    first.start()
    port = first.port("xmlrpc")
    first.stop()
    again = Running(transport_settings.replace(xmlrpc_port=port, transports=("xmlrpc",)))
    again.start()  # the port is free again
    again.stop()


def worker_pids(parent: int) -> list[int]:
    """Processes whose parent is ``parent``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == parent:
                    found.append(int(entry.name))
            except (OSError, ValueError, IndexError):
                continue
    return found


def test_workers_share_the_ports_and_stop_together(gateway_flags):
    with ServerProcess(*ALL_FREE, *gateway_flags, "--workers", "2") as server:
        server.wait_ready(5)
        assert "2 worker processes" in server.lines[0]
        workers = worker_pids(server.proc.pid)
        assert len(workers) == 2
        for name in server.ports:  # every transport answers on its one port
            client = connect(server, name)  # type: ignore[arg-type]
            assert client.call("resolve", "127.0.0.1")["addresses"][0]["address"] == "127.0.0.1"
            client.close()
        assert server.stop() == 0
        assert not any(Path(f"/proc/{pid}").exists() for pid in workers)  # reaped by the supervisor


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_workers_never_share_a_port_between_transports(gateway_flags):
    """The supervisor binds every port itself and hands the sockets over: no port is picked, released and
    picked again, so two transports cannot land on one port however often it starts."""
    for _ in range(5):
        with ServerProcess(*ALL_FREE, *gateway_flags, "--workers", "2") as server:
            server.wait_ready(5)
            assert len(set(server.ports.values())) == 5, server.ports
            client = connect(server, "thrift")  # type: ignore[arg-type]
            for _ in range(6):  # every call reaches a Thrift listener, whichever worker accepts it
                assert client.call("system.listMethods")
            client.close()
            assert server.stop() == 0


def test_workers_exit_when_their_supervisor_is_killed(gateway_flags):
    with ServerProcess(*ALL_FREE, *gateway_flags, "--workers", "2") as server:
        server.wait_ready(5)
        workers = worker_pids(server.proc.pid)
        assert len(workers) == 2
        server.proc.kill()  # SIGKILL: the supervisor cannot tell anyone
        server.proc.wait()
        deadline = time.monotonic() + 5
        while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_alive(pid) for pid in workers)


def test_a_supervisor_refuses_to_start_beside_a_running_gateway(gateway_flags):
    with ServerProcess(*ALL_FREE, *gateway_flags, "--transports", "jsonrpc") as first:
        first.wait_ready(1)
        port = str(first.port("jsonrpc"))
        second = subprocess.run(
            [sys.executable, "server.py", *gateway_flags, "--transports", "jsonrpc", "--jsonrpc-port", port,
             "--workers", "2"],
            cwd=ROOT, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert second.returncode == 1 and "address already in use" in second.stderr
        assert first.stop() == 0


def test_metrics_count_every_worker_s_calls(gateway_flags):
    with ServerProcess(*ALL_FREE, *gateway_flags, "--workers", "2") as server:
        server.wait_ready(5)
        calls = 40
        for _ in range(calls):  # a connection each: the kernel spreads them over both workers
            client = connect(server, "jsonrpc")  # type: ignore[arg-type]
            client.call("resolve", "127.0.0.1")
            client.close()
        seen = set()
        for _ in range(6):  # each scrape is answered by one worker or the other: all must show every call
            conn = http.client.HTTPConnection("127.0.0.1", server.port("jsonrpc"), timeout=10)
            conn.request("GET", "/metrics")
            text = conn.getresponse().read().decode()
            conn.close()
            total = sum(
                float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                if line.startswith("netops_calls_total{") and 'method="resolve"' in line
            )  # fmt: skip
            seen.add(total)
        assert seen == {calls}
        assert server.stop() == 0
