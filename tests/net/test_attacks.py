"""The attacks of issue 11, each against ``python server.py`` in a subprocess, each asserting its bound.

The gateway runs in its own process so its memory (peak RSS, ``VmHWM``), CPU
time and threads are its own, read from /proc.  Every attack is followed by
an ordinary call that must still be answered.
"""

from __future__ import annotations

import json
import os
import resource
import site
import socket
import struct
import sys
import threading
import time
import urllib.request
import zlib
from collections.abc import Iterator
from pathlib import Path

import Pyro5.api
import Pyro5.errors
import pytest
import rpyc
from Pyro5 import protocol, serializers

from gateway.client import connect
from gateway.config import Settings
from gateway.errors import GatewayError
from gateway.names import DNS_THREADS
from gateway.transports import TRANSPORTS
from tests.test_server import ALL_FREE, ServerProcess
from tests.test_server import gateway_flags as gateway_flags  # the fixture, shared

TOKEN = "attack-tests-token-0123456789abcdef"
ROOT = Path(__file__).resolve().parents[2]
IDL = ROOT / "idl" / "netops.thrift"
MiB = 1024 * 1024


def status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM in KiB, and Threads, of a process."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {k: int(fields[k].split()[0]) for k in ("VmRSS", "VmHWM", "Threads")}


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def closed_within(sock: socket.socket, seconds: float) -> bool:
    """True once the peer has closed (end of file or reset) within ``seconds``."""
    sock.settimeout(seconds)
    try:
        while sock.recv(65536):
            pass
        return True
    except TimeoutError:
        return False
    except OSError:
        return True


def send_refused(sock: socket.socket, data: bytes) -> None:
    """Send ``data`` that the gateway refuses: it closes as soon as it has read enough to refuse, and reads
    nothing more, so the send may end early with the connection reset (a race with the kernel's buffers)."""
    try:
        sock.sendall(data)
    except (BrokenPipeError, ConnectionResetError):
        pass


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "tokens"
    path.write_text(f"ops:{TOKEN}\n")
    path.chmod(0o644)
    return path


def start(*flags: str) -> ServerProcess:
    server = ServerProcess(*ALL_FREE, "--access-log", "false", *flags)
    server.wait_ready(len(TRANSPORTS))
    return server


@pytest.fixture
def server(gateway_flags) -> Iterator[ServerProcess]:
    with start(*gateway_flags) as running:
        yield running


@pytest.fixture
def locked(gateway_flags, token_file) -> Iterator[ServerProcess]:
    with start(*gateway_flags, "--token-file", str(token_file)) as running:
        yield running


@pytest.fixture(params=[None, TOKEN], ids=["open", "tokens"])
def either(request, gateway_flags, token_file) -> Iterator[tuple[ServerProcess, str | None]]:
    """A gateway without tokens, then one requiring them; with the token its own calls present."""
    flags = ["--token-file", str(token_file)] if request.param else []
    with start(*gateway_flags, *flags) as running:
        yield running, request.param


def url(server: ServerProcess, name: str) -> str:
    return f"{name}://127.0.0.1:{server.port(name)}"


def still_serves(server: ServerProcess, token: str | None = None) -> None:
    """An ordinary call on every transport is answered."""
    for name in TRANSPORTS:
        with connect(url(server, name), timeout=10, token=token) as client:
            assert "resolve" in client.methods(), name


def pyro_connect_message(payload: bytes, flags: int = 0) -> bytes:
    """A Pyro5 connect message whose header says what the caller likes (Pyro5 itself would compress honestly)."""
    serpent = serializers.serializers["serpent"].serializer_id
    header = struct.pack(protocol._header_format, b"PYRO", protocol.PROTOCOL_VERSION, protocol.MSG_CONNECT,
                         serpent, flags, 0, len(payload), 0, b"\0" * 16, 0, 0x4DC5)  # fmt: skip
    return header + payload


def test_a_compressed_pyro_connect_message_is_refused_before_inflating(locked):
    bomb = zlib.compress(b"\0" * (300 * MiB), 9)  # ~300 KB that inflates to 300 MiB
    before = status(locked.proc.pid)
    with socket.create_connection(("127.0.0.1", locked.port("pyro"))) as sock:
        sock.sendall(pyro_connect_message(bomb, protocol.FLAGS_COMPRESSED))
        assert closed_within(sock, 5)
    after = status(locked.proc.pid)
    assert (after["VmHWM"] - before["VmHWM"]) < 50 * 1024
    still_serves(locked, TOKEN)


def stock_rpyc_resolve(server: ServerProcess, argument: object, error: type[Exception], match: str) -> None:
    """A stock rpyc client passes ``argument`` (a list: a reference into the client) to resolve; it fails."""
    conn = rpyc.connect("127.0.0.1", server.port("rpyc"), config={"sync_request_timeout": 10})
    try:
        with pytest.raises(error, match=match):
            conn.root.resolve(argument)
    finally:
        conn.close()


def test_a_megabyte_before_authentication_costs_nothing(locked):
    """A 1 MB Pyro5 connect message, a 1 MB RPyC frame, and a stock RPyC client's 1 MB list argument."""
    before = status(locked.proc.pid)
    literal = repr([0] * 300_000).encode()  # ~1 MB of a Python list literal
    with socket.create_connection(("127.0.0.1", locked.port("pyro"))) as sock:
        send_refused(sock, pyro_connect_message(literal))
        assert closed_within(sock, 5)
    with socket.create_connection(("127.0.0.1", locked.port("rpyc"))) as sock:
        send_refused(sock, struct.pack("!LB", len(literal), 0) + literal + b"\n")
        assert closed_within(sock, 5)
    stock_rpyc_resolve(locked, [0] * 300_000, PermissionError, "unauthenticated")
    after = status(locked.proc.pid)
    assert (after["VmHWM"] - before["VmHWM"]) < 50 * 1024
    still_serves(locked, TOKEN)


def rpyc_frame(payload: bytes) -> bytes:
    return struct.pack("!LB", len(payload), 0) + payload + b"\n"


def test_rpyc_frames_of_a_refused_caller_are_never_decoded(locked):
    """Without an accepted token, a request is answered from its sequence number alone: its arguments here are
    bytes brine cannot read at all, and the answer is still the coded error; a stock client fails at
    ``conn.root`` and closes cleanly."""
    from rpyc.core import brine, consts

    header = bytes([consts.MSG_REQUEST]) + brine.dump((300, (consts.HANDLE_GETATTR, ())))[:-1]  # up to the args
    with socket.create_connection(("127.0.0.1", locked.port("rpyc"))) as sock:
        sock.sendall(rpyc_frame(header + b"\xff" * 1000))
        sock.settimeout(5)
        reply = b""
        while len(reply) < 5 or len(reply) < 6 + struct.unpack("!L", reply[:4])[0]:
            reply += sock.recv(65536)
        message, (seq, ((_, kind), args, *_)) = reply[5], brine.load(reply[6:-1])
        assert (message, seq, kind) == (consts.MSG_EXCEPTION, 300, "PermissionError")
        assert args[0].startswith("unauthenticated")
        sock.sendall(rpyc_frame(b"\x02" + brine.dump((1, None))))  # not a request: the connection ends
        assert closed_within(sock, 5)
    conn = rpyc.connect("127.0.0.1", locked.port("rpyc"), config={"sync_request_timeout": 10})
    with pytest.raises(PermissionError, match=r"^unauthenticated"):
        _ = conn.root
    conn.close()
    still_serves(locked, TOKEN)


def test_rpyc_calls_of_odd_shapes_get_rpyc_answers(server):
    """Call requests no stock client sends (no argument tuple, a target alone) are answered by rpyc with the
    error it raises, and the connection goes on serving: the gateway's look at a call never fails on them."""
    from rpyc.core import consts

    conn = rpyc.connect("127.0.0.1", server.port("rpyc"), config={"sync_request_timeout": 10})
    try:
        entry = getattr(conn.root, "netops.json")  # the JSON entry, an instant call when given a name
        for handler, args in (
            (consts.HANDLE_CALL, (entry,)),  # the target, and not even an empty argument tuple
            (consts.HANDLE_CALL, ()),
            (consts.HANDLE_CALLATTR, (conn.root,)),
        ):
            with pytest.raises(TypeError):
                conn.sync_request(handler, *args)
        assert "resolve" in json.loads(entry("system_listMethods", '{"args": [], "kwargs": {}}'))
    finally:
        conn.close()
    still_serves(server)


def test_a_megabyte_argument_after_authentication_is_refused_within_budget(server):
    before = status(server.proc.pid)
    stock_rpyc_resolve(server, [0] * 300_000, ValueError, "invalid_argument")
    proxy = Pyro5.api.Proxy(f"PYRO:netops@127.0.0.1:{server.port('pyro')}")
    with pytest.raises(ValueError, match="invalid_argument: arguments hold at most"):
        proxy.resolve([0] * 150_000)  # answered without being decoded, then the connection is closed
    after = status(server.proc.pid)
    assert (after["VmHWM"] - before["VmHWM"]) < 50 * 1024
    still_serves(server)


def nested_void_lists(depth: int = 2_000) -> bytes:
    """A Thrift call whose one argument is a list of lists … of VOID, each header claiming 10,000 elements."""
    name = b"resolve"
    body = b"\x0f\x00\x01" + (b"\x0f" + struct.pack("!i", 10_000)) * depth + b"\x01" + struct.pack("!i", 10_000)
    return b"\x80\x01\x00\x01" + struct.pack("!i", len(name)) + name + struct.pack("!i", 1) + body


def test_nested_void_lists_cost_milliseconds(either):
    server, token = either
    before = cpu_seconds(server.proc.pid)
    for _ in range(5):
        with socket.create_connection(("127.0.0.1", server.port("thrift"))) as sock:
            sock.sendall(nested_void_lists())
            assert closed_within(sock, 5)
    assert cpu_seconds(server.proc.pid) - before < 1.0
    still_serves(server, token)


def test_listeners_survive_the_thread_limit(dns_server):
    """With RLIMIT_NPROC a little above what the gateway starts with, 500 idle sockets on each transport
    change nothing: no thread is started per connection, and every listener serves after the flood."""
    calls = Settings().call_workers
    limit = calls + 40  # the loop, the main thread, and a few pool threads for the calls below

    def as_nobody_with_a_thread_limit() -> None:
        if os.geteuid() == 0:  # RLIMIT_NPROC does not bind root
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
        resource.setrlimit(resource.RLIMIT_NPROC, (limit, limit))

    # Run as root, the gateway is started as nobody (root ignores RLIMIT_NPROC) by a Python that nobody may
    # execute: the system's, same version, with this checkout and its virtualenv's packages on the path.
    python, env = sys.executable, None
    if os.geteuid() == 0:
        python = f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}"
        if not os.access(python, os.X_OK):
            pytest.fail(f"{python} is needed to run the gateway as an unprivileged user")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *site.getsitepackages()])}
    server = ServerProcess(
        *ALL_FREE, "--access-log", "false", "--nameserver", dns_server.address, "--max-connections-per-client", "0",
        preexec_fn=as_nobody_with_a_thread_limit, python=python, env=env,
    )  # fmt: skip
    with server:
        server.wait_ready(len(TRANSPORTS))
        flood = [socket.create_connection(("127.0.0.1", server.port(name))) for name in TRANSPORTS for _ in range(500)]
        try:
            assert status(server.proc.pid)["Threads"] <= limit
            still_serves(server)
        finally:
            for sock in flood:
                sock.close()
        still_serves(server)
        ready = urllib.request.urlopen(f"http://127.0.0.1:{server.port('jsonrpc')}/readyz", timeout=10)
        assert ready.status == 200


def test_a_full_pyro_port_and_a_trickler_do_not_stop_new_pyro_clients(server):
    silent = [socket.create_connection(("127.0.0.1", server.port("pyro"))) for _ in range(200)]
    trickler = socket.create_connection(("127.0.0.1", server.port("pyro")))
    message = pyro_connect_message(b"x" * 1000)
    stop = threading.Event()

    def trickle() -> None:
        for byte in message:
            if stop.wait(0.5):
                return
            try:
                trickler.send(bytes([byte]))
            except OSError:
                return

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    try:
        for _ in range(5):
            start_time = time.monotonic()
            proxy = Pyro5.api.Proxy(f"PYRO:netops@127.0.0.1:{server.port('pyro')}")
            proxy._pyroTimeout = 5
            assert "resolve" in proxy.system_listMethods()
            proxy._pyroRelease()
            assert time.monotonic() - start_time < 5
    finally:
        stop.set()
        for sock in [*silent, trickler]:
            sock.close()


def test_oneway_pyro_calls_do_not_start_threads(server):
    threads_before = status(server.proc.pid)["Threads"]
    proxy = Pyro5.api.Proxy(f"PYRO:netops@127.0.0.1:{server.port('pyro')}")
    proxy._pyroBind()
    proxy._pyroOneway.add("system_multicall")
    peak = threads_before
    for i in range(2_000):
        proxy.system_multicall([{"methodName": "resolve", "params": ["www.example.test"]}] * 2)
        if i % 200 == 0:
            peak = max(peak, status(server.proc.pid)["Threads"])
    proxy._pyroRelease()
    settings = Settings()
    # The pools fill lazily, to their sizes and no further.
    bound = threads_before + settings.multicall_workers + DNS_THREADS + 8
    assert peak <= bound
    with connect(url(server, "jsonrpc"), timeout=10) as client:
        results = client.multicall([("resolve", ["www.example.test"])] * 10)
        assert all(not isinstance(r, GatewayError) for r in results)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_concurrent_multicalls_obey_calls_per_client(gateway_flags, transport):
    with start(*gateway_flags, "--max-calls-per-client", "1") as server:
        outcomes: list[str] = []
        lock = threading.Lock()
        barrier = threading.Barrier(6)

        def one() -> None:
            with connect(url(server, transport), timeout=10) as client:
                barrier.wait()
                try:
                    client.multicall([("resolve", ["slow.example.test"])] * 2)
                    outcome = "ok"
                except GatewayError as exc:
                    outcome = exc.code
                with lock:
                    outcomes.append(outcome)

        threads = [threading.Thread(target=one) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert len(outcomes) == 6
        assert outcomes.count("rate_limited") >= 1, outcomes
        assert set(outcomes) <= {"ok", "rate_limited"}


@pytest.mark.parametrize("locked_gateway", [False, True], ids=["open", "tokens"])
def test_invented_method_names_leave_metrics_small(gateway_flags, token_file, locked_gateway):
    """30,000 invented names: none becomes a label. With tokens required (introspection open, so the batch
    reaches the core), the calls without a token are refusals, not labelled calls."""
    flags = ["--token-file", str(token_file), "--open-introspection", "true"] if locked_gateway else []
    with start(*gateway_flags, *flags) as server:
        port = server.port("jsonrpc")
        for batch in range(30):
            body = [{"jsonrpc": "2.0", "method": f"m{batch}x{i}", "id": i} for i in range(1000)]
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/", json.dumps(body).encode(), {"Content-Type": "application/json"}
            )
            answers = json.loads(urllib.request.urlopen(request, timeout=30).read())
            expected = "unauthenticated" if locked_gateway else "method_not_found"
            assert {a["error"]["data"]["code"] for a in answers} == {expected}
        metrics = urllib.request.Request(
            f"http://127.0.0.1:{port}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}
        )
        text = urllib.request.urlopen(metrics, timeout=30).read()
        assert len(text) < 200_000
        assert b"m0x0" not in text
