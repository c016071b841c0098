"""Shared test bed: a DNS server, a test CA with TLS servers, HTTP servers, and gateways over them.

Everything listens on 127.0.0.1 on free ports; nothing here reaches the internet.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from gateway import GatewayError
from gateway.config import Settings
from gateway.context import Services
from gateway.core import Gateway
from gateway.ops import default_registry
from gateway.registry import conforms
from tests.servers import zones
from tests.servers.dns import Authority, DNSServer
from tests.servers.http import Server
from tests.servers.pki import PKI


@pytest.fixture(scope="session")
def dns_server() -> Iterator[DNSServer]:
    server = DNSServer(Authority(zones.zones(), zones.SLOW, zones.BLACKHOLES, zones.REBINDING))
    yield server
    server.close()


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return PKI(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def http_server() -> Iterator[Server]:
    server = Server()
    yield server
    server.close()


@pytest.fixture(scope="session")
def https_server(pki: PKI) -> Iterator[Server]:
    server = Server(tls=pki.server_context())
    yield server
    server.close()


@pytest.fixture(scope="session")
def settings(dns_server: DNSServer, pki: PKI) -> Settings:
    """Settings of a test gateway: the test DNS server, the test CA, loopback allowed, short timeouts."""
    return Settings(
        nameservers=(dns_server.address,),
        ca_file=str(pki.ca_file),
        allow_targets=("127.0.0.0/8",),
        timeout=3.0,
    )


@pytest.fixture(scope="session")
def transport_settings(settings: Settings) -> Settings:
    """Settings for a gateway serving every transport on free ports (2 s timeout, batches of 50)."""
    from gateway.config import TRANSPORTS

    ports = {f"{name}_port": 0 for name in TRANSPORTS}
    return settings.replace(timeout=2.0, max_batch=50, **ports)


def make_gateway(settings: Settings) -> Gateway:
    """A gateway over every operation with these settings."""
    return Gateway(default_registry(), Services.from_settings(settings))


@pytest.fixture(scope="session")
def gateway(settings: Settings) -> Iterator[Gateway]:
    gw = make_gateway(settings)
    yield gw
    gw.close()


@pytest.fixture(scope="session")
def strict_gateway(settings: Settings) -> Iterator[Gateway]:
    """A gateway with the default target policy: nothing but global addresses."""
    gw = make_gateway(settings.replace(allow_targets=()))
    yield gw
    gw.close()


Call = Callable[..., Any]


def checked_call(gw: Gateway) -> Call:
    """Call an operation and check the result against the registry's declared shape."""

    def call(name: str, *args: Any, **kwargs: Any) -> Any:
        result = gw.call(name, args, kwargs)
        schema = gw.lookup(name).result
        assert conforms(result, schema), f"{name} result does not match {schema.name or schema.kind}: {result!r}"
        return result

    return call


@pytest.fixture(scope="session")
def call(gateway: Gateway) -> Call:
    return checked_call(gateway)


@pytest.fixture(scope="session")
def strict_call(strict_gateway: Gateway) -> Call:
    return checked_call(strict_gateway)


def error_of(call: Call, name: str, *args: Any, **kwargs: Any) -> GatewayError:
    """Call and return the GatewayError it raised (failing the test if none)."""
    from tests.transports.clients import assert_no_leak

    with pytest.raises(GatewayError) as info:
        call(name, *args, **kwargs)
    assert_no_leak(str(info.value))
    return info.value


@pytest.fixture
def free_udp_port() -> int:
    """A UDP port on 127.0.0.1 with nobody listening."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and then never says a word (a TLS server stalled mid-handshake)."""
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    for s in held:
        s.close()
    listener.close()


@pytest.fixture
def unanswered_port() -> Iterator[int]:
    """A port whose accept queue is full, so new connections hang until they time out."""
    import socket
    import time

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        try:
            filler.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        fillers.append(filler)
    time.sleep(0.1)
    yield port
    for s in fillers:
        s.close()
    listener.close()


@pytest.fixture
def closed_port() -> int:
    """A TCP port on 127.0.0.1 with nobody listening."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def quick_gateway(settings: Settings) -> Iterator[Gateway]:
    """A gateway whose operations time out after one second."""
    gw = make_gateway(settings.replace(timeout=1.0))
    yield gw
    gw.close()


@pytest.fixture(scope="session")
def quick_call(quick_gateway: Gateway) -> Call:
    return checked_call(quick_gateway)


def require(present: bool, what: str, how: str) -> None:
    """Skip a test whose tool is missing, saying how to install it; in CI (CI=true), fail instead:
    .ci/run installs every tool the tests drive (scripts/setup-tools)."""
    if present:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{what} is missing in CI: {how}")
    pytest.skip(f"{what} is not installed ({how})")


def require_tool(tool: str, how: str) -> str:
    """The path of ``tool``, or skip (fail in CI) saying how to install it."""
    path = shutil.which(tool)
    require(path is not None, tool, how)
    return path  # type: ignore[return-value]
