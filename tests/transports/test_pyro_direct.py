"""Pyro5 calls answered without the daemon are answered as the daemon answers them."""

from __future__ import annotations

import uuid

import pytest
import serpent
from Pyro5 import protocol
from Pyro5.api import current_context
from Pyro5.serializers import serializers

from gateway.net.session import Link
from gateway.observe import Caller
from gateway.transports.pyro import _HEADER, PyroCodec

SERPENT = serializers["serpent"]


def message(kind: int, payload: bytes, seq: int, correlation: uuid.UUID | None) -> bytes:
    """A message as a stock proxy sends it (with a correlation id when its context has one)."""
    current_context.correlation_id = correlation
    try:
        return protocol.SendingMessage(kind, 0, seq, SERPENT.serializer_id, payload).data
    finally:
        current_context.correlation_id = None


def connected(gateway, direct: bool):
    codec = PyroCodec(gateway)
    link = Link(gateway, Caller("pyro", "127.0.0.1:1"), lambda _: None, lambda: None, False)
    session = codec.session(link)
    hello = message(protocol.MSG_CONNECT, SERPENT.dumps({"handshake": "hello", "object": "netops"}), 1, None)
    session.handle(session.receive(hello)[0])
    assert session.connected
    if not direct:
        session.methods = {}  # every call to the daemon
    return session


def answer(session, method: str, args: tuple, kwargs: dict, correlation: uuid.UUID | None) -> bytes:
    call = message(protocol.MSG_INVOKE, SERPENT.dumpsCall("netops", method, args, kwargs), 7, correlation)
    reply = session.handle(session.receive(call)[0])
    return reply if isinstance(reply, bytes) else b"".join(bytes(part) for part in reply)


CALLS = [
    ("system_listMethods", (), {}),
    ("system_methodHelp", ("resolve",), {}),
    ("system_methodSignature", (), {"name": "mx_lookup"}),
    ("resolve", ("",), {}),  # invalid_argument: the exception reply
    ("resolve", (), {}),  # a required parameter missing
    ("resolve", ("www.example.test",), {"family": "ipv5"}),
    ("nope", (), {}),  # the daemon's: no such method
    ("resolve", (), {1: "x"}),  # the daemon's: a keyword that is not a string
]


@pytest.mark.parametrize(("method", "args", "kwargs"), CALLS)
def test_a_direct_answer_is_the_daemons_byte_for_byte(gateway, method, args, kwargs):
    correlation = uuid.uuid4()
    direct, daemon = (answer(connected(gateway, d), method, args, kwargs, correlation) for d in (True, False))
    assert direct == daemon
    assert direct[_HEADER.size - 20 : _HEADER.size - 4] == correlation.bytes  # the caller's id, echoed


def test_a_direct_answer_carries_a_result_and_a_fresh_correlation_id(gateway):
    replies = [answer(connected(gateway, d), "resolve", ("www.example.test",), {}, None) for d in (True, False)]
    fields = [_HEADER.unpack_from(reply) for reply in replies]
    results = [serpent.loads(reply[_HEADER.size :]) for reply in replies]
    for result in results:
        result.pop("elapsed_ms")
        result["addresses"].sort(key=lambda a: (a["family"], a["address"]))  # the test server rotates them
    assert results[0] == results[1] and results[0]["addresses"]
    # The same header up to the payload's size (elapsed_ms has its own digits), no annotations.
    assert fields[0][:6] == fields[1][:6] and fields[0][7] == fields[1][7] == 0
    ids = [uuid.UUID(bytes=f[8]) for f in fields]
    assert ids[0] != ids[1] and all(i.version == 4 for i in ids)
