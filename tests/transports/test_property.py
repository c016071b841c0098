"""Property run: arguments drawn from each operation's parameter types and a few hostile strings, through
every transport's stock client. Never ``internal``, never a dropped connection, nothing leaked."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from thriftpy2.thrift import TDecodeException

from gateway.config import TRANSPORTS
from gateway.ops import default_registry
from gateway.registry import Schema
from tests.transports.clients import ECHOED, RemoteError, connect

HOSTILE = [
    "", "\x00", "x\x00y", "\ud800", "a" * 64, "a" * 63 + "." + "b" * 64, "a..b", ".", "-", "a" * 5000,
    "localhost", "127.0.0.1", "::1", "[::1]", "0x7f.1", "http://", "https://127.0.0.1:1/", "file:///etc/passwd",
    "xn--", "xn--zz", "ü" * 70, "%00", "\n", "a b", "*", "@", "example.test",
]  # fmt: skip
OPERATIONS = [op for op in default_registry()]


def values(schema: Schema) -> st.SearchStrategy[Any]:
    """Values of the parameter's type, hostile ones first, and now and then one of another type."""
    if schema.kind == "string":
        typed: st.SearchStrategy[Any] = st.one_of(
            st.sampled_from(HOSTILE), st.sampled_from(list(schema.choices) or ["x"]), st.text(max_size=80)
        )
    elif schema.kind == "integer":
        edges = [0, -1, 1, 65535, 65536, 2**31 - 1, -(2**31)]
        typed = st.one_of(st.sampled_from(edges), st.integers(-(2**31), 2**31 - 1))
    elif schema.kind == "boolean":
        typed = st.booleans()
    elif schema.kind == "array":
        typed = st.lists(st.sampled_from(HOSTILE), max_size=4)
    elif schema.kind == "struct" or schema.kind == "map":
        typed = st.dictionaries(st.sampled_from(HOSTILE), st.sampled_from(HOSTILE), max_size=3)
    else:
        typed = st.sampled_from(HOSTILE)
    return st.one_of(typed, typed, typed, st.sampled_from([1, "1", [], {}, True, 1.5]))


@st.composite
def calls(draw: st.DrawFn) -> tuple[str, list[Any]]:
    op = draw(st.sampled_from(OPERATIONS))
    count = draw(st.integers(0, len(op.params)))
    return op.name, [draw(values(p.schema)) for p in op.params[:count]]


def carried(transport: str, value: Any) -> bool:
    """Whether the transport's encoding can carry the value at all (else the client fails before sending)."""
    if isinstance(value, str):
        surrogate = any("\ud800" <= c <= "\udfff" for c in value)
        control = any(c < " " and c not in "\t\n\r" for c in value)
        return not (surrogate and transport in ("xmlrpc", "pyro", "thrift", "rpyc", "mcp")) and not (
            control and transport == "xmlrpc"
        )
    if isinstance(value, list):
        return all(carried(transport, v) for v in value)
    if isinstance(value, dict):
        return all(carried(transport, k) and carried(transport, v) for k, v in value.items())
    return True


def _strings(value: Any) -> list[str]:
    """Every string in an argument, keys included."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (*_strings(k), *_strings(v))]
    return []


@pytest.mark.parametrize("transport", TRANSPORTS)
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(call=calls())
def test_no_input_is_answered_with_internal(running, transport, call):
    name, args = call
    assume(all(carried(transport, a) for a in args))
    echoed = ECHOED.set(tuple(_strings(args)))  # an error may quote the caller's input back: not a leak
    client = connect(running, transport)  # a connection each: one left idle between examples could time out
    try:
        try:
            client.call(client.method(name), *args)
        except RemoteError as exc:  # its message was checked for leaks when it was made
            assert exc.code != "internal", (name, args, exc.message)
        except (TypeError, ValueError, OverflowError, UnicodeError, AttributeError, TDecodeException):
            assume(False)  # the client library refused to encode the call (Thrift's types, say): nothing was sent
        assert client.call(client.method("system.listMethods"))  # the connection still serves
    finally:
        client.close()
        ECHOED.reset(echoed)
