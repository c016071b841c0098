"""gRPC as its users expect: the .proto and the served service agree, numbers never move, reflection, health,
status codes with our stable code, deadlines, tokens before parsing, malformed messages, caps."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gateway import wire_ids
from gateway.core import SYSTEM_OPERATIONS
from gateway.idl import render as render_thrift
from gateway.idl import scopes
from gateway.ops import default_registry
from gateway.proto import descriptor, messages
from gateway.proto import render as render_proto
from gateway.registry import Operation, Param, Registry, Schema, describe
from gateway.server import Running
from gateway.transports.grpc import STATUS
from tests.transports.clients import GRPCClient, RemoteError

ROOT = Path(__file__).resolve().parents[2]
SYSTEM = [describe(f) for f in SYSTEM_OPERATIONS]


# -- the IDL and its numbers -----------------------------------------------------------------------
def test_proto_file_is_current():
    assert (ROOT / "idl" / "netops.proto").read_text() == render_proto(default_registry(), SYSTEM), (
        "idl/netops.proto is stale: run python -m gateway.idl"
    )


def test_protoc_compiles_the_proto_to_the_served_descriptor(tmp_path):
    out = tmp_path / "netops.pb"
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", f"-I{ROOT / 'idl'}", f"--descriptor_set_out={out}", "netops.proto"],
        check=True,
    )
    (compiled,) = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file
    assert compiled == descriptor(default_registry(), SYSTEM)


def test_the_lock_holds_every_number():
    assert wire_ids.pending(scopes(default_registry())) == {}, "new names: run python -m gateway.idl to pin them"


def test_published_numbers_never_move():
    """Every number any committed version of the lock gave is the same now (the lock only grows)."""
    lock = json.loads(wire_ids.LOCK.read_text())
    try:
        commits = subprocess.run(
            ["git", "log", "--format=%H", "--", "gateway/wire_ids.json"],
            cwd=ROOT, capture_output=True, text=True, check=True,
        ).stdout.split()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("no git history here")
    for commit in commits:
        old = json.loads(
            subprocess.run(
                ["git", "show", f"{commit}:gateway/wire_ids.json"], cwd=ROOT, capture_output=True, text=True, check=True
            ).stdout
        )
        for scope, entries in old.items():
            for name, number in entries.items():
                assert lock.get(scope, {}).get(name) == number, f"{scope}.{name} moved from {number} (in {commit})"
    for scope, entries in lock.items():
        assert len(set(entries.values())) == len(entries), f"{scope} gives one number twice"


def test_the_idls_use_the_locked_numbers():
    thrift = render_thrift(default_registry())
    proto = {m.name: {f.name: f.number for f in m.fields} for m in messages(default_registry())}
    lock = json.loads(wire_ids.LOCK.read_text())
    for field, number in lock["struct:MxResult"].items():
        assert f"  {number}: " in thrift and proto["MxResult"][field] == number
    for op, number in lock["call"].items():
        assert proto["Call"][op] == proto["Outcome"][op] == number


def test_a_field_added_in_the_middle_moves_nothing():
    """A new parameter declared first and a new operation declared first get new numbers; the others keep theirs."""
    resolve = default_registry().get("resolve")
    new_param = Param("timeout_ms", Schema("int", doc="a new parameter"), 0)
    changed = Operation(**{**resolve.__dict__, "params": (new_param, *resolve.params)})
    newcomer = Operation(**{**resolve.__dict__, "name": "whois", "params": resolve.params})
    registry = Registry([newcomer, changed, *[op for op in default_registry() if op.name != "resolve"]])
    before = {m.name: {f.name: f.number for f in m.fields} for m in messages(default_registry())}
    after = {m.name: {f.name: f.number for f in m.fields} for m in messages(registry)}
    assert after["ResolveRequest"] == {"timeout_ms": 3, **before["ResolveRequest"]}
    for message in ("Call", "Outcome"):
        assert {k: v for k, v in after[message].items() if k != "whois"} == before[message]
        assert after[message]["whois"] == max(before["Call"].values()) + 1
    assert "1: i32 timeout_ms" not in render_thrift(registry) and "3: i32 timeout_ms" in render_thrift(registry)


# -- the service -----------------------------------------------------------------------------------
@pytest.fixture
def grpc_client(running: Running):
    client = GRPCClient(running.port("grpc"))
    yield client
    client.close()


def test_reflection_alone_lists_and_calls(grpc_client):
    """No .proto: the service, methods and messages come from server reflection."""
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

    services = ProtoReflectionDescriptorDatabase(grpc_client.channel).get_services()
    assert set(services) >= {"netops.v1.NetOps", "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"}
    assert set(grpc_client.service.methods_by_name) >= {"Resolve", "MxLookup", "ListMethods", "Multicall"}
    assert grpc_client.call("resolve", "www.example.test")["addresses"]
    outcomes = grpc_client.multicall([("resolve", ["www.example.test"]), ("resolve", ["nxdomain.example.test"])])
    assert outcomes[0]["host"] == "www.example.test" and outcomes[1].code == "not_found"


def test_each_connection_is_one_caller(running, caplog):
    """Without tokens the gateway makes a caller once per connection, not once per call: each call is still
    logged with the address and port of the connection it came on."""
    target = f"127.0.0.1:{running.port('grpc')}"
    own = [("grpc.use_local_subchannel_pool", 1)]  # a connection of its own, not one shared by the process
    clients = [GRPCClient(0, channel=grpc.insecure_channel(target, options=own)) for _ in range(2)]
    try:
        with caplog.at_level(logging.INFO, logger="gateway.access"):
            for client in clients * 2:
                client.call("system_listMethods")
    finally:
        for client in clients:
            client.close()
    seen = [
        r.netops["client"] for r in caplog.records if r.name == "gateway.access" and r.netops["transport"] == "grpc"
    ]
    assert len(seen) == 4 and seen[0] == seen[2] and seen[1] == seen[3] and seen[0] != seen[1]
    assert all(client.startswith("127.0.0.1:") for client in seen)


def test_health_service(running):
    with grpc.insecure_channel(f"127.0.0.1:{running.port('grpc')}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for service in ("", "netops.v1.NetOps"):
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.parametrize(
    ("rpc", "arguments", "code"),
    [
        ("Resolve", {"host": "nxdomain.example.test"}, "not_found"),
        ("Resolve", {"host": "www.example.test", "family": "ipv5"}, "invalid_argument"),
        ("TcpConnect", {"host": "10.0.0.1", "port": 80}, "forbidden_target"),
        ("MethodHelp", {"name": "nope"}, "method_not_found"),
    ],
)
def test_errors_are_status_codes_with_the_stable_code(grpc_client, rpc, arguments, code):
    stub, request, _ = grpc_client.stub(rpc)
    with pytest.raises(grpc.RpcError) as caught:
        stub(request(**arguments), timeout=10)
    assert caught.value.code() == STATUS[code]
    assert dict(caught.value.trailing_metadata())["netops-code"] == code
    assert caught.value.details().startswith(f"{code}: ")


def test_an_unknown_rpc_is_unimplemented(grpc_client):
    with pytest.raises(RemoteError) as caught:
        grpc_client.call("nope")
    assert caught.value.code == "method_not_found"


def test_a_client_deadline_shorter_than_the_operation_is_honoured(running, grpc_client):
    """A resolve the nameserver never answers: the client's 1 s deadline ends it, not the 10 s limit."""
    stub, request, _ = grpc_client.stub("Resolve")
    start = time.monotonic()
    with pytest.raises(grpc.RpcError) as caught:
        stub(request(host="blackhole.example.test"), timeout=1.0)
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - start < 5
    assert grpc_client.call("system.listMethods")  # the connection still serves


def test_a_call_without_a_deadline_runs_under_the_operations_limit(grpc_client):
    """A stock stub called with no timeout (grpcio's default): the call runs, bounded by the gateway's own limit."""
    stub, request, _ = grpc_client.stub("Resolve")
    answer = stub(request(host="www.example.test"))
    assert list(answer.addresses)
    outcomes = grpc_client.multicall([("resolve", ["www.example.test"])])
    assert outcomes[0]["host"] == "www.example.test"


def test_malformed_protobuf_is_invalid_argument(grpc_client):
    raw = grpc_client.channel.unary_unary("/netops.v1.NetOps/Resolve")
    for garbage in (b"\xff\xff\xff\xff", b"\x0a\xff\xff\xff\xff\x0f", b"\x12" + b"\x80" * 20):
        with pytest.raises(grpc.RpcError) as caught:
            raw(garbage, timeout=10)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, garbage
    assert grpc_client.call("resolve", "www.example.test")


def test_an_oversized_message_is_refused(grpc_client, running):
    limit = running.settings.max_request_bytes
    raw = grpc_client.channel.unary_unary("/netops.v1.NetOps/Resolve")
    with pytest.raises(grpc.RpcError) as caught:
        raw(b"\x0a" + b"\xff\xff\x7f" + b"a" * (limit + 10), timeout=10)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert grpc_client.call("resolve", "www.example.test")


# -- tokens ----------------------------------------------------------------------------------------
TOKEN = "grpc-token-0123456789abcdef"


@pytest.fixture(scope="module")
def locked(transport_settings, tmp_path_factory):
    tokens = tmp_path_factory.mktemp("grpc") / "tokens"
    tokens.write_text(f"ops:{TOKEN}\n")
    running = Running(transport_settings.replace(transports=("grpc",), token_file=str(tokens)))
    running.start()
    yield running
    running.stop()


def test_without_a_token_nothing_is_parsed(locked):
    """Garbage from a caller without a token is refused as unauthenticated: the message was never read."""
    with grpc.insecure_channel(f"127.0.0.1:{locked.port('grpc')}") as channel:
        raw = channel.unary_unary("/netops.v1.NetOps/Resolve")
        for metadata in ((), (("authorization", "Bearer wrong"),)):
            with pytest.raises(grpc.RpcError) as caught:
                raw(b"\xff\xff\xff\xff", timeout=10, metadata=metadata)
            assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert dict(caught.value.trailing_metadata())["netops-code"] == "unauthenticated"
        with pytest.raises(grpc.RpcError) as caught:  # reflection is introspection: closed too
            GRPCClient(0, channel=channel)
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING  # health is open, like /healthz


def test_with_a_token_everything_works(locked):
    from gateway.client import connect

    with connect(f"grpc://127.0.0.1:{locked.port('grpc')}", token=TOKEN, timeout=10) as client:
        assert client.resolve("www.example.test")["host"] == "www.example.test"
        assert "resolve" in client.methods()


# -- caps ------------------------------------------------------------------------------------------
def test_idle_connections_do_not_grow_threads(running):
    """200 idle HTTP/2 connections: gRPC's core holds them; the process gains no thread per connection."""
    import socket

    before = threading.active_count()
    port = running.port("grpc")
    idle = []
    try:
        for _ in range(200):
            sock = socket.create_connection(("127.0.0.1", port))
            sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
            idle.append(sock)
        time.sleep(0.5)
        assert threading.active_count() <= before + 2
        client = GRPCClient(port)
        try:
            assert client.call("resolve", "www.example.test")
        finally:
            client.close()
    finally:
        for sock in idle:
            sock.close()


def test_connections_over_the_cap_are_closed(transport_settings):
    """max_connections, handed to gRPC's core: a connection over it is closed at once, never left hanging; the
    ones served are told at most 100 concurrent streams."""
    import socket

    running = Running(transport_settings.replace(transports=("grpc",), max_connections=5))
    running.start()
    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
    socks = []
    try:
        for _ in range(10):
            sock = socket.create_connection(("127.0.0.1", running.port("grpc")))
            sock.sendall(preface)
            socks.append(sock)
        answers = []
        for sock in socks:
            sock.settimeout(3)
            try:
                answers.append(sock.recv(100))  # b"": closed by the gateway
            except ConnectionResetError:
                answers.append(b"")
            except TimeoutError:
                answers.append(b"(kept, silent)")
        served = [a for a in answers if a[3:4] == b"\x04"]  # the server's SETTINGS frame
        assert len(served) == 5 and answers.count(b"") == 5, answers
        assert b"\x00\x03\x00\x00\x00\x64" in served[0]  # SETTINGS_MAX_CONCURRENT_STREAMS = 100 a connection
    finally:
        for sock in socks:
            sock.close()
        running.stop()


def test_a_ping_flood_is_sent_away(running):
    """A client pinging far more often than the server allows gets GOAWAY (too_many_pings): its connection
    closes, as gRPC's core does for the keep-alive limits the gateway sets."""
    options = [
        ("grpc.keepalive_time_ms", 200),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
    ]
    states: list[str] = []
    with grpc.insecure_channel(f"127.0.0.1:{running.port('grpc')}", options) as channel:
        channel.subscribe(lambda state: states.append(state.name), try_to_connect=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not ("READY" in states and states[-1] != "READY"):
            time.sleep(0.1)
    ready = states.index("READY")
    assert states[ready + 1 :], f"the flooding connection was never closed: {states}"
