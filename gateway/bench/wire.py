"""What a call costs on a real network: bytes and round trips counted on the wire, and a delaying relay.

A :class:`Relay` sits between a client and one gateway port on 127.0.0.1 and
forwards bytes both ways.  It counts the bytes each way and the *exchanges*:
each time the server speaks after the client has.  An exchange is a round trip
(the client waited for the server before it could go on) unless the client sent
without waiting, as RPyC does when it releases a reference.  Given a one-way delay it holds every chunk
that long before forwarding it, so a call through it meets a real round-trip
time; the benchmark uses that to check its projection (round trips x RTT + the
loopback time) against a measurement.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import queue
import socket
import ssl
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from gateway.client import connect

_QUICKACK = getattr(socket, "TCP_QUICKACK", 12)

__all__ = [
    "RPYC_PATTERNS",
    "Counts",
    "Held",
    "Relay",
    "by_value",
    "calling",
    "delay_check",
    "held",
    "measure",
    "multicalling",
    "opening",
    "projected_ms",
    "rpyc_reading",
    "self_signed",
    "setup",
    "wire_workload",
]


@dataclass
class Counts:
    """Bytes each way and exchanges seen on the wire since the last reset."""

    sent: int = 0  # client to server
    received: int = 0  # server to client
    exchanges: int = 0  # the server speaking after the client has


class Relay:
    """A counting (and optionally delaying) TCP relay from a free port on 127.0.0.1 to ``target``."""

    def __init__(self, target: int, one_way_delay: float = 0.0) -> None:
        self.target = target
        self.delay = one_way_delay
        self.counts = Counts()
        self._lock = threading.Lock()
        self._client_spoke = False  # the client has sent since the server last did
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._open: list[socket.socket] = []
        self._closed = False
        threading.Thread(target=self._accept, name="relay", daemon=True).start()

    def reset(self) -> Counts:
        """Return the counts so far and start again from zero."""
        with self._lock:
            counts, self.counts = self.counts, Counts()
            self._client_spoke = False
        return counts

    def close(self) -> None:
        """Stop accepting and drop every relayed connection."""
        self._closed = True
        self._listener.close()
        for sock in self._open:
            try:
                sock.close()
            except OSError:
                pass

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                client.close()
                continue
            for sock in (client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self._open.append(sock)
            self._pipe(client, server, upstream=True)
            self._pipe(server, client, upstream=False)

    def _pipe(self, source: socket.socket, sink: socket.socket, upstream: bool) -> None:
        held: queue.SimpleQueue[tuple[float, bytes]] = queue.SimpleQueue()

        def read() -> None:
            while True:
                try:
                    data = source.recv(65536)
                    if upstream:
                        # Acknowledge at once, as the gateway does: a client with Nagle on (RPyC's) would
                        # otherwise wait for a delayed ACK here, a stall of the relay's, not of the protocol.
                        source.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
                except OSError:
                    data = b""
                if data:
                    self._count(len(data), upstream)
                held.put((time.monotonic() + self.delay, data))
                if not data:
                    return

        def write() -> None:
            while True:
                due, data = held.get()
                wait = due - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                try:
                    if not data:
                        sink.shutdown(socket.SHUT_WR)
                        return
                    sink.sendall(data)
                except OSError:
                    return

        threading.Thread(target=read, daemon=True).start()
        threading.Thread(target=write, daemon=True).start()

    def _count(self, size: int, upstream: bool) -> None:
        with self._lock:
            if upstream:
                self.counts.sent += size
                self._client_spoke = True
            else:
                self.counts.received += size
                if self._client_spoke:
                    self.counts.exchanges += 1
                    self._client_spoke = False


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key, written into ``directory`` (the client trusts it)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "netops bench")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "bench-cert.pem", directory / "bench-key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file


# -- the measurements -------------------------------------------------------------------------------------
SMALL = ("resolve", ("127.0.0.1",))  # a small struct result, no DNS query (an IP literal)
RTTS_MS = (1, 20, 100)
PROBE_RTT = 0.05  # seconds: the delay that tells round trips apart from the loopback time
CHECK_RTT_MS = 20.0
SETTLE = 0.05  # seconds for answers to messages a client sent without waiting (RPyC's releases) to arrive

Step = Callable[[], Any]
Work = Callable[[int], tuple[Step, Callable[[], None]]]  # relay port -> (the step to measure, its closer)


def _through(port: int, delay: float, work: Work, rounds: int) -> tuple[float, Counts]:
    """Median seconds of ``work``'s step through a relay delaying ``delay`` each way, and the last step's counts
    (with the answers to what it sent without waiting)."""
    relay = Relay(port, delay)
    counts = Counts()
    try:
        step, close = work(relay.port)
        try:
            step()  # warm: the connection is open, classes and names are cached
            times = []
            for last in [False] * (rounds - 1) + [True]:
                if last:
                    time.sleep(SETTLE)  # the previous step's late answers are not this one's
                relay.reset()
                began = time.perf_counter()
                step()
                times.append(time.perf_counter() - began)
            time.sleep(SETTLE)
            counts = relay.reset()
        finally:
            close()
    finally:
        relay.close()
    return statistics.median(times), counts


def measure(port: int, work: Work, rounds: int = 3) -> dict[str, float]:
    """Bytes each way, exchanges (the server speaking after the client) and round trips of one step.

    Round trips are the times the client waited for the server: the step's extra time through a relay that
    adds :data:`PROBE_RTT` per round trip, divided by it. Exchanges can be more (RPyC releases references
    with messages it does not wait for).
    """
    quiet, counts = _through(port, 0.0, work, rounds)
    delayed, _ = _through(port, PROBE_RTT / 2, work, rounds)
    return {
        "request_bytes": counts.sent,
        "response_bytes": counts.received,
        "exchanges": counts.exchanges,
        "round_trips": max(0, round((delayed - quiet) / PROBE_RTT)),
        "loopback_us": round(quiet * 1e6, 1),
    }


def calling(
    transport: str, method: str, *args: Any, tls: ssl.SSLContext | None = None, token: str | None = None
) -> Work:
    """A step that calls ``method`` on one open connection."""

    def work(port: int) -> tuple[Step, Callable[[], None]]:
        client = connect(f"{transport}://127.0.0.1:{port}", tls=tls, token=token)
        return (lambda: client.call(method, *args)), client.close

    return work


def multicalling(transport: str, size: int = 10) -> Work:
    """A step that makes one multicall of ``size`` small calls."""
    calls = [(SMALL[0], list(SMALL[1]))] * size

    def work(port: int) -> tuple[Step, Callable[[], None]]:
        client = connect(f"{transport}://127.0.0.1:{port}")
        return (lambda: client.multicall(calls)), client.close

    return work


def opening(transport: str, tls: ssl.SSLContext | None = None, token: str | None = None) -> Work:
    """A step that opens a connection (TLS and token if given), makes one call and closes."""

    def work(port: int) -> tuple[Step, Callable[[], None]]:
        def step() -> None:
            with connect(f"{transport}://127.0.0.1:{port}", tls=tls, token=token) as client:
                client.call("system.listMethods")

        return step, lambda: None

    return work


def setup(transport: str, port: int, tls: ssl.SSLContext | None = None, token: str | None = None) -> dict[str, float]:
    """What opening a connection costs before its first call: round trips (TCP's handshake, which the relay
    answers itself, is one), bytes, and the extra time on loopback."""
    opened = measure(port, opening(transport, tls, token))
    call = measure(port, calling(transport, "system.listMethods", tls=tls, token=token))
    return {
        "round_trips": 1 + opened["round_trips"] - call["round_trips"],
        "bytes": opened["request_bytes"] + opened["response_bytes"] - call["request_bytes"] - call["response_bytes"],
        "ms": round((opened["loopback_us"] - call["loopback_us"]) / 1000, 2),
    }


class Held(NamedTuple):
    """What each RPyC access pattern reads through, on one stock client's connection."""

    root: Any  # rpyc.connect(...).root
    r: Any  # root.resolve("127.0.0.1"): a struct result
    listing: Any  # root.system_listMethods, looked up once and held
    resolving: Any  # root.resolve, looked up once and held


def held(root: Any) -> Held:
    """The handles of :class:`Held` on ``root``."""
    return Held(root, root.resolve(*SMALL[1]), root.system_listMethods, root.resolve)


RPYC_PATTERNS: dict[str, Callable[[Held], Any]] = {
    "root.system_listMethods()": lambda h: h.root.system_listMethods(),
    "listing()": lambda h: h.listing(),
    'root.resolve("127.0.0.1")': lambda h: h.root.resolve(*SMALL[1]),
    'resolving("127.0.0.1")': lambda h: h.resolving(*SMALL[1]),
    'r["host"]': lambda h: h.r["host"],
    "dict(r)": lambda h: dict(h.r),
    "dict(r.items())": lambda h: dict(h.r.items()),
    "json.loads(str(r))": lambda h: json.loads(str(h.r)),
}


def rpyc_reading(pattern: str) -> Work:
    """A step of a stock RPyC client: ``pattern`` of :data:`RPYC_PATTERNS` on a result of resolve."""
    import rpyc

    read = RPYC_PATTERNS[pattern]

    def work(port: int) -> tuple[Step, Callable[[], None]]:
        conn = rpyc.connect("127.0.0.1", port)
        handles = held(conn.root)
        return (lambda: read(handles)), conn.close

    return work


def by_value(port: int, pattern: str) -> bool:
    """Whether what ``pattern`` reads arrives as a value (not a reference into the server)."""
    import rpyc

    conn = rpyc.connect("127.0.0.1", port)
    try:
        return not isinstance(RPYC_PATTERNS[pattern](held(conn.root)), rpyc.BaseNetref)
    finally:
        conn.close()


def projected_ms(round_trips: float, loopback_us: float, rtt_ms: float) -> float:
    """A call's latency on a network of ``rtt_ms``: its round trips times the RTT, plus its time on loopback."""
    return round(round_trips * rtt_ms + loopback_us / 1000, 2)


def delay_check(label: str, port: int, work: Work, rtt_ms: float = CHECK_RTT_MS, calls: int = 20) -> dict[str, Any]:
    """The projection for ``rtt_ms`` against the step timed through a relay delaying each way by half of it."""
    quiet = measure(port, work)
    measured, _ = _through(port, rtt_ms / 2000, work, calls)
    projected = projected_ms(quiet["round_trips"], quiet["loopback_us"], rtt_ms)
    return {
        "what": label,
        "rtt_ms": rtt_ms,
        "round_trips": quiet["round_trips"],
        "loopback_us": quiet["loopback_us"],
        "projected_ms": projected,
        "measured_ms": round(measured * 1000, 2),
        "error": round(abs(measured * 1000 - projected) / (measured * 1000), 3),
    }


def wire_workload(
    gateway_ports: dict[str, int], secured_ports: dict[str, int] | None, tls: ssl.SSLContext | None, token: str,
    page_url: str,
) -> dict[str, Any]:  # fmt: skip
    """Every figure of the comparison: per transport bytes, round trips, set-up and projections; RPyC's
    access patterns; one projection checked through a delaying relay."""
    out: dict[str, Any] = {"transports": {}, "rtts_ms": list(RTTS_MS), "probe_rtt_ms": PROBE_RTT * 1000}
    for transport, port in gateway_ports.items():
        small = measure(port, calling(transport, SMALL[0], *SMALL[1]))
        row: dict[str, Any] = {
            "small": small,
            "large": measure(port, calling(transport, "fetch_url", page_url, "GET", {}, 262144)),
            "multicall_10": measure(port, multicalling(transport)),
            "setup": setup(transport, port),
            "projected_ms": {
                str(rtt): projected_ms(small["round_trips"], small["loopback_us"], rtt) for rtt in RTTS_MS
            },
        }
        if secured_ports is not None:
            row["setup_tls_token"] = setup(transport, secured_ports[transport], tls, token)
        out["transports"][transport] = row
    if "rpyc" in gateway_ports:
        port = gateway_ports["rpyc"]
        out["rpyc_patterns"] = {
            pattern: {**measure(port, rpyc_reading(pattern)), "by_value": by_value(port, pattern)}
            for pattern in RPYC_PATTERNS
        }
        pattern = 'root.resolve("127.0.0.1")'
        out["check"] = delay_check(f"rpyc, stock client: {pattern}", port, rpyc_reading(pattern))
    else:
        transport, port = next(iter(gateway_ports.items()))
        out["check"] = delay_check(f"{transport}: {SMALL[0]}", port, calling(transport, SMALL[0], *SMALL[1]))
    return out
