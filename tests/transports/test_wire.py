"""Bytes and round trips on the wire, counted by the benchmark's relay between a stock client and the gateway."""

from __future__ import annotations

import collections.abc
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import rpyc

from gateway.bench.fixtures import PAGE_BYTES, WebPage
from gateway.bench.wire import RPYC_PATTERNS, Counts, Relay, held, projected_ms
from gateway.client import connect
from gateway.server import Running
from gateway.transports import TRANSPORTS

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def page() -> Iterator[WebPage]:
    served = WebPage()
    yield served
    served.close()


def counted(relay: Relay, step) -> tuple[Counts, object]:
    """The wire's counts for one step, after what earlier steps left in flight has settled, with the answers
    to what the step sent without waiting (RPyC's releases), which would otherwise race the count."""
    time.sleep(0.1)
    relay.reset()
    value = step()  # held until counted: dropping an RPyC reference sends a message of its own
    time.sleep(0.1)
    return relay.reset(), value


def wire_of(running: Running, transport: str, step_of) -> Counts:
    relay = Relay(running.port(transport))
    try:
        with connect(f"{transport}://127.0.0.1:{relay.port}") as client:
            step = step_of(client)
            step()  # warm: connected, names looked up
            return counted(relay, step)[0]
    finally:
        relay.close()


@pytest.fixture(scope="module")
def small(running: Running) -> dict[str, Counts]:
    return {t: wire_of(running, t, lambda c: lambda: c.resolve("127.0.0.1")) for t in TRANSPORTS}


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_call_and_a_multicall_are_one_round_trip_each(running, transport, small):
    assert small[transport].exchanges == 1
    multicall = wire_of(running, transport, lambda c: lambda: c.multicall([("resolve", ["127.0.0.1"])] * 10))
    assert multicall.exchanges == 1
    assert small[transport].sent < multicall.sent < 10 * small[transport].sent + 200  # one request, not ten


def test_bytes_on_the_wire_have_each_encodings_shape(small):
    # Thrift's binary fields are the smallest; HTTP's headers cost more; XML-RPC's markup the most.
    assert small["thrift"].sent < small["pyro"].sent < small["jsonrpc"].sent < small["xmlrpc"].sent
    assert small["thrift"].received < small["jsonrpc"].received < small["xmlrpc"].received
    assert small["xmlrpc"].received > 2 * small["jsonrpc"].received  # <member><name>… around every field


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_large_result_costs_its_size_on_every_transport(running, transport, page):
    counts = wire_of(running, transport, lambda c: lambda: c.fetch_url(page.url, "GET", {}, PAGE_BYTES))
    assert counts.exchanges == 1
    # The page is random text: no transport can shrink it much (RPyC compresses, base64 keeps 6 bits a byte).
    assert PAGE_BYTES * 0.7 < counts.received < PAGE_BYTES * 1.3


@pytest.fixture(scope="module")
def rpyc_wire(running: Running):
    """A stock RPyC client through the relay: root, a struct result, held methods."""
    relay = Relay(running.port("rpyc"))
    conn = rpyc.connect("127.0.0.1", relay.port)
    handles = held(conn.root)
    for read in RPYC_PATTERNS.values():
        read(handles)  # warm: what rpyc asks once a connection (the root's class) is asked before counting
    yield relay, handles
    conn.close()
    relay.close()


# What each access pattern the README lists costs a stock client: round trips (it waits for the answer), and
# releases (rpyc tells the server it dropped a reference, and goes on without waiting; the answer still comes).
EXPECTED_ROUND_TRIPS = {
    "root.system_listMethods()": (2, 1),  # rpyc looks the attribute up, then calls it; the method is released
    "listing()": (1, 0),  # a held method: the call, its list result by value in the reply
    'root.resolve("127.0.0.1")': (2, 1),  # look-up, call (the view named as a builtin: no question about it)
    'resolving("127.0.0.1")': (1, 0),  # a held method: a struct result in the call's reply
    'r["host"]': (1, 0),
    "json.loads(str(r))": (1, 0),  # the whole result as JSON text, by value
    "dict(r.items())": (2, 1),  # look-up, call: every key and value in the reply; the method is released
}

STRUCT_RESULTS = {'root.resolve("127.0.0.1")', 'resolving("127.0.0.1")'}


@pytest.mark.parametrize("pattern", EXPECTED_ROUND_TRIPS)
def test_rpyc_round_trips_of_each_access_pattern(rpyc_wire, pattern):
    relay, handles = rpyc_wire
    counts, value = counted(relay, lambda: RPYC_PATTERNS[pattern](handles))
    round_trips, releases = EXPECTED_ROUND_TRIPS[pattern]
    assert counts.exchanges == round_trips + releases
    assert isinstance(value, rpyc.BaseNetref) == (pattern in STRUCT_RESULTS)  # a view; everything else by value


def test_the_readmes_round_trips_are_the_counted_ones():
    rows = re.findall(r"^\| `([^`]+)`[^|]*\| ([^|]+) \|$", (ROOT / "README.md").read_text(), re.MULTILINE)
    stated = {access: trips for access, trips in rows if access in RPYC_PATTERNS}
    assert stated == {pattern: str(trips) for pattern, (trips, _) in EXPECTED_ROUND_TRIPS.items()} | {
        "dict(r)": "3 + 1 per key"  # counted in the test below
    }


def test_rpyc_list_results_arrive_as_tuples(rpyc_wire):
    _, (root, result, listing, _) = rpyc_wire
    names = listing()
    assert type(names) is tuple and "resolve" in names
    assert type(root.system_methodSignature("tcp_connect")) is tuple
    assert type(result["addresses"]) is not tuple  # a list of structs: a view (RPyC carries no dict by value)


def test_rpyc_reading_a_struct_whole_is_constant_and_dict_is_per_key(rpyc_wire):
    relay, (root, result, _, _) = rpyc_wire
    document = root.rpc_discover()  # a far larger struct than resolve's
    str(document)
    whole_small, _ = counted(relay, lambda: str(result))
    whole_large, _ = counted(relay, lambda: str(document))
    assert whole_small.exchanges == whole_large.exchanges == 1
    for struct in (result, document):
        by_key, copied = counted(relay, lambda struct=struct: dict(struct))
        # dict() looks keys up twice and calls it, then reads one item at a time; a nested view (resolve's
        # addresses, the document's methods) costs no question about its class. rpyc releases the two keys
        # methods without waiting: each release's answer is an exchange of its own when it comes back first.
        round_trips = 3 + len(struct)
        assert len(copied) == len(struct) and round_trips <= by_key.exchanges <= round_trips + 2


def test_rpyc_each_read_into_a_view_is_one_round_trip(rpyc_wire):
    relay, (_, result, _, _) = rpyc_wire
    addresses_read, addresses = counted(relay, lambda: result["addresses"])
    first_read, first = counted(relay, lambda: addresses[0])
    leaf_read, leaf = counted(relay, lambda: first["address"])
    assert addresses_read.exchanges == first_read.exchanges == leaf_read.exchanges == 1  # a read of a view is one
    assert leaf == "127.0.0.1"


def test_rpyc_views_look_like_the_read_only_builtins(rpyc_wire):
    _, (_, result, _, _) = rpyc_wire
    assert isinstance(result, collections.abc.Mapping) and not isinstance(result, dict)
    assert isinstance(result["addresses"], tuple)  # as a list of scalars arrives, by value
    with pytest.raises(TypeError):
        result["host"] = "elsewhere"  # type: ignore[index]
    with pytest.raises(TypeError, match="a result is not hashable"):
        hash(result)


def test_rpyc_root_shows_the_operations_and_nothing_of_the_server(running):
    conn = rpyc.connect("127.0.0.1", running.port("rpyc"))
    try:
        root = conn.root
        assert repr(root) == "<netops gateway>"
        assert sorted(dir(root)) == sorted(n.replace(".", "_") for n in running.gateway.method_names())
    finally:
        conn.close()


def test_projection_is_round_trips_times_rtt_plus_loopback():
    assert projected_ms(3, 500.0, 20) == 60.5
