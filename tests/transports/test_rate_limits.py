"""Rate limits on every transport: the same rate_limited error, per client, and a global cap."""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from gateway.server import Running
from gateway.transports import TRANSPORTS
from tests.transports.clients import RemoteError, connect
from tests.transports.test_conformance import record_error, wait_until


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_over_the_rate_is_rate_limited_on_every_transport(transport_settings, transport):
    limited = Running(transport_settings.replace(rate_limit=1.0, rate_burst=3, transports=(transport,)))
    limited.start()  # a gateway of its own: the client's bucket starts full
    client = connect(limited, transport)
    outcomes = []
    try:
        for _ in range(6):
            try:
                client.call("resolve", "127.0.0.1")
                outcomes.append("ok")
            except RemoteError as exc:
                outcomes.append(exc.code)
    finally:
        client.close()
        limited.stop()
    assert outcomes.count("rate_limited") >= 2 and outcomes[0] == "ok"
    assert set(outcomes) <= {"ok", "rate_limited"}


def post_from(port: int, source: str, body: dict) -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))
    conn.request("POST", "/", json.dumps(body), {"Content-Type": "application/json"})
    answer = json.loads(conn.getresponse().read())
    conn.close()
    return answer


@contextmanager
def slow_call_in_flight(settings, dns_server) -> Iterator[int]:
    """A JSON-RPC-only gateway with ``settings``, where 127.0.0.1 has a call waiting on a silent nameserver."""
    gateway = Running(settings.replace(transports=("jsonrpc",)))
    gateway.start()
    port = gateway.port("jsonrpc")
    slow = {"jsonrpc": "2.0", "method": "resolve", "params": ["blackhole.example.test"], "id": 1}
    outcome: list[BaseException] = []
    seen = dns_server.authority.blackhole_queries
    thread = threading.Thread(target=record_error, args=(outcome, post_from, port, "127.0.0.1", slow))
    thread.start()
    try:
        wait_until(lambda: dns_server.authority.blackhole_queries > seen)
        yield port
    finally:
        thread.join()
        gateway.stop()


FAST = {"jsonrpc": "2.0", "method": "resolve", "params": ["127.0.0.1"], "id": 2}


def test_calls_in_flight_are_counted_per_client(transport_settings, dns_server):
    with slow_call_in_flight(transport_settings.replace(max_calls_per_client=1), dns_server) as port:
        assert post_from(port, "127.0.0.1", FAST)["error"]["data"]["code"] == "rate_limited"
        assert post_from(port, "127.0.0.2", FAST)["result"]["host"] == "127.0.0.1"  # another client is not held up


def test_global_cap_on_operations_in_flight(transport_settings, dns_server):
    with slow_call_in_flight(transport_settings.replace(max_outbound=1), dns_server) as port:
        busy = post_from(port, "127.0.0.2", FAST)
        assert busy["error"]["data"]["code"] == "rate_limited" and "limit of 1 operations" in busy["error"]["message"]
        listing = post_from(port, "127.0.0.2", {"jsonrpc": "2.0", "method": "system.listMethods", "id": 3})
        assert "resolve" in listing["result"]  # introspection is never held back


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_results_held_at_once_are_budgeted(transport_settings, http_server, transport):
    """A call whose body would take the gateway over max_result_bytes is refused at once; the budget comes
    back when the call holding it ends, and a multicall's elements count in it too."""
    budget = Running(transport_settings.replace(max_result_bytes=3 * 1024 * 1024, timeout=2.0))
    budget.start()
    slow = f"http://web.local.test:{http_server.port}/slow"
    held: list[BaseException] = []
    holder = connect(budget, transport)
    thread = threading.Thread(target=record_error, args=(held, holder.call, "fetch_url", slow, "GET", {}, 2 << 20))
    try:
        thread.start()
        wait_until(lambda: budget.gateway.services.results.held >= 2 << 20)
        client = connect(budget, transport)
        try:
            with pytest.raises(RemoteError) as refused:
                client.call("fetch_url", slow, "GET", {}, 2 << 20)
            assert refused.value.code == "rate_limited" and "MiB of results" in refused.value.message
            assert client.call("fetch_url", slow.replace("/slow", "/text"), "GET", {}, 1024)["status"] == 200
            thread.join()
            assert budget.gateway.services.results.held == 0  # the slow call timed out and gave it back
            outcomes = client.multicall([("fetch_url", [slow, "GET", {}, 2 << 20])] * 2)
            assert sorted(getattr(o, "code", "ok") for o in outcomes) == ["rate_limited", "timeout"]
        finally:
            client.close()
    finally:
        thread.join()
        holder.close()
        budget.stop()
    assert budget.gateway.services.results.held == 0
