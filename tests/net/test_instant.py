"""Instant operations (introspection) are answered on the loop thread: they need no free worker."""

from __future__ import annotations

import threading

import pytest

from gateway.core import DOTTED, UNDERSCORE, Gateway
from gateway.server import Running
from gateway.transports import TRANSPORTS
from tests.transports.clients import connect
from tests.transports.test_conformance import record_error, wait_until
from tests.transports.test_rate_limits import post_from


def test_only_introspection_is_instant(gateway: Gateway):
    for style in (DOTTED, UNDERSCORE):
        instant = {name for name in gateway.method_names(style) if gateway.instant(name, style)}
        assert instant == {
            name.replace(".", "_") if style == UNDERSCORE else name
            for name in ("system.listMethods", "system.methodHelp", "system.methodSignature")
        }
    assert not gateway.instant("no_such_method") and not gateway.instant(["system.listMethods"])


@pytest.fixture(scope="module")
def busy_gateway(transport_settings, dns_server):
    """A gateway of two workers, both held for 8 s by a resolve waiting on a silent nameserver."""
    running = Running(transport_settings.replace(call_workers=2, timeout=8.0))
    running.start()
    port = running.port("jsonrpc")
    seen = dns_server.authority.blackhole_queries
    outcomes: list[BaseException] = []
    threads = [
        threading.Thread(
            target=record_error,
            args=(outcomes, post_from, port, "127.0.0.1", {
                "jsonrpc": "2.0", "method": "resolve", "params": ["blackhole.example.test"], "id": i
            }),
        )
        for i in range(2)
    ]  # fmt: skip
    for thread in threads:
        thread.start()
    wait_until(lambda: dns_server.authority.blackhole_queries >= seen + 4)  # A and AAAA for each
    yield running, threads
    running.stop()
    for thread in threads:
        thread.join()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_introspection_answers_while_every_worker_is_busy(busy_gateway, transport):
    running, slow_calls = busy_gateway
    client = connect(running, transport)
    try:
        names = client.call(client.method("system.listMethods"))
        assert client.method("resolve") in names
        assert "resolve" in client.call(client.method("system.methodHelp"), client.method("resolve"))
    finally:
        client.close()
    assert all(thread.is_alive() for thread in slow_calls), "the slow calls ended: no worker was held"
