"""A gateway serving all five transports on free ports, and a client of each."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gateway.config import TRANSPORTS, Settings
from gateway.server import Running
from tests.transports.clients import Client, connect


@pytest.fixture(scope="session")
def running(transport_settings: Settings) -> Iterator[Running]:
    gateway = Running(transport_settings)
    gateway.start()
    yield gateway
    gateway.stop()


@pytest.fixture(scope="session", params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="session")
def client(running: Running, transport: str) -> Iterator[Client]:
    c = connect(running, transport)
    yield c
    c.close()
