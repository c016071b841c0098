"""Scale-out: two gateways behind HAProxy (deploy/haproxy.cfg, used as committed); one dies, calls go on.

The gateways listen on 127.0.0.1 and 127.0.0.2 with the same ports, as two hosts would.
Outside CI the test skips when HAProxy is not installed.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from gateway.client import connect
from gateway.config import TRANSPORTS
from gateway.errors import GatewayError
from tests.conftest import require_tool

ROOT = Path(__file__).resolve().parents[2]


def free_ports(count: int, hosts: tuple[str, ...]) -> list[int]:
    """Ports free on every one of ``hosts``."""
    found: list[int] = []
    while len(found) < count:
        with socket.socket() as probe:
            probe.bind((hosts[0], 0))
            port = probe.getsockname()[1]
        try:
            for host in hosts[1:]:
                with socket.socket() as other:
                    other.bind((host, port))
        except OSError:
            continue
        if port not in found:
            found.append(port)
    return found


def wait_for(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():
                return
        except (OSError, GatewayError):
            pass
        assert time.monotonic() < deadline, "not ready in time"
        time.sleep(0.1)


def start_gateway(host: str, ports: dict[str, int]) -> subprocess.Popen:
    flags = [f"--{name}-port={port}" for name, port in ports.items()]
    return subprocess.Popen(
        [sys.executable, "server.py", "--host", host, *flags],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_calls_survive_the_loss_of_one_gateway():
    haproxy = require_tool("haproxy", "apt-get install haproxy, or run scripts/setup-tools")
    backend = dict(zip(TRANSPORTS, free_ports(len(TRANSPORTS), ("127.0.0.1", "127.0.0.2")), strict=True))
    front = dict(zip(TRANSPORTS, free_ports(len(TRANSPORTS), ("127.0.0.1",)), strict=True))
    env = {
        **os.environ,
        "GW1": "127.0.0.1",
        "GW2": "127.0.0.2",
        "LISTEN": "127.0.0.1",
        **{f"{name.upper()}_PORT": str(port) for name, port in backend.items()},
        **{f"FRONT_{name.upper()}": str(port) for name, port in front.items()},
    }
    gateways = [start_gateway("127.0.0.1", backend), start_gateway("127.0.0.2", backend)]
    # HAProxy's first health check must find both gateways listening: a refused check marks a server down,
    # and it takes `rise` good checks (2 s) to come back, which the rounds before the crash do not wait for.
    for host in ("127.0.0.1", "127.0.0.2"):
        for port in backend.values():
            wait_for(lambda host=host, port=port: socket.create_connection((host, port), timeout=1).close() is None)
    proxy = subprocess.Popen(
        [haproxy, "-db", "-f", str(ROOT / "deploy" / "haproxy.cfg")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    urls = {name: f"{name}://127.0.0.1:{port}" for name, port in front.items()}

    def call(name: str) -> bool:
        """One call on a new connection (so the balancer chooses a gateway for it)."""
        with connect(urls[name], timeout=5) as client:
            return client.resolve("127.0.0.1")["addresses"][0]["address"] == "127.0.0.1"

    try:
        for name in TRANSPORTS:  # both gateways up and the balancer routing to them
            wait_for(lambda name=name: call(name))
        outcomes: dict[str, list[bool]] = {name: [] for name in TRANSPORTS}
        for round_ in range(40):
            if round_ == 10:
                gateways[0].send_signal(signal.SIGKILL)  # a crash, mid-run
                gateways[0].wait(10)
            for name in TRANSPORTS:
                try:
                    outcomes[name].append(call(name))
                except GatewayError:
                    outcomes[name].append(False)
        for name, results in outcomes.items():
            assert all(results[:10]), f"{name} failed before any gateway died"
            assert all(results[-10:]), f"{name} does not recover after the loss: {results}"
            assert results.count(False) <= 1, f"{name}: more than the in-flight call failed: {results}"
    finally:
        proxy.terminate()
        proxy.wait(10)
        for gateway in gateways:
            gateway.kill()
            gateway.wait(10)
