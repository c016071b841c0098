"""XML-RPC's flat-call reader (no expat for a call of numbers and strings): whatever it reads, expat reads the
same way, and whatever it declines goes to expat, which decides."""

from __future__ import annotations

import math
import xmlrpc.client
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.transports.xmlrpc import _Budget, _expat_loads, _flat, loads

SCALARS = st.one_of(
    st.text(max_size=40),
    st.integers(-(2**31), 2**31 - 1),
    st.booleans(),
    st.floats(allow_nan=False),
)
# How a client may lay the same call out: the stdlib's line feeds, none, CRLFs, tabs.
SPACES = st.sampled_from(["\n", "", "\r\n", " \t", "  \n  "])
DECLARATIONS = st.sampled_from(
    ["<?xml version='1.0'?>", '<?xml version="1.0" encoding="UTF-8"?>', "", "<?xml version='1.1'?>",
     "<?xml version='1.0' encoding='iso-8859-1'?>", " <?xml version='1.0'?>", "\ufeff"]
)  # fmt: skip


def same_reading(body: bytes) -> tuple[tuple[Any, ...], str] | None:
    """The flat reader's result, after checking it against expat's: equal, or declined."""
    flat = _flat(body)
    try:
        expected = _expat_loads(body)
    except Exception:  # a parse error or the budget's refusal: the flat reader must not have read it
        assert flat is None, body
        return None
    if flat is not None:
        assert flat == expected, body
        assert [type(v) for v in flat[0]] == [type(v) for v in expected[0]], body
    return flat


@settings(max_examples=400, deadline=None)
@given(
    args=st.lists(SCALARS, max_size=5),
    name=st.sampled_from(["system.listMethods", "resolve", "a_b.c:d", "x y", "résolve", "_"]),
    space=SPACES,
    declaration=DECLARATIONS,
    untyped=st.booleans(),
)
def test_what_the_flat_reader_reads_expat_reads_the_same(
    args: list[Any], name: str, space: str, declaration: str, untyped: bool
) -> None:
    body = xmlrpc.client.dumps(tuple(args), name)
    body = declaration + body.split("?>", 1)[1]
    if untyped:  # <value>text</value>: a string without a type
        body = body.replace("<value><string>", "<value>").replace("</string></value>", "</value>")
    same_reading(body.replace("\n", space).encode("utf-8", "surrogatepass"))


@pytest.mark.parametrize(
    "body",
    [
        b"<?xml version='1.0'?>\n<methodCall>\n<methodName>system.listMethods</methodName>\n<params>\n</params>\n"
        b"</methodCall>\n",
        b"<methodCall><methodName>resolve</methodName><params><param><value><string>example.com</string></value>"
        b"</param><param><value><int>5</int></value></param><param><value><boolean>1</boolean></value></param>"
        b"</params></methodCall>",
        b"<methodCall><methodName>x</methodName><params/></methodCall>",
        b"<methodCall><methodName>x</methodName></methodCall>",
        b"<methodCall><methodName>x</methodName><params><param><value>  a b </value></param></params></methodCall>",
        b"<methodCall><methodName>x</methodName><params><param><value> <i8>1099511627776</i8> </value></param>"
        b"<param><value><double>1e3</double></value></param></params></methodCall>",
        "<methodCall><methodName>x</methodName><params><param><value>ü ✓</value></param></params>"
        "</methodCall>".encode(),
    ],
)
def test_common_calls_are_read_without_expat(body: bytes) -> None:
    assert same_reading(body) is not None


@pytest.mark.parametrize(
    "body",
    [
        b"<!DOCTYPE x [<!ENTITY a 'b'>]><methodCall><methodName>x</methodName></methodCall>",  # defusedxml refuses
        b"<methodCall><methodName>x</methodName><params><param><value><int>5</string></value></param></params>"
        b"</methodCall>",
        b"<methodCall><methodName>x</methodName><params><param><value><boolean>2</boolean></value></param>"
        b"</params></methodCall>",
        b"<methodCall><methodName>x</methodName><params><param><value><int>five</int></value></param></params>"
        b"</methodCall>",
        b"<methodCall><methodName>x</methodName><params><param><value>a&amp;b</value></param></params></methodCall>",
        b"<methodCall><methodName>x</methodName><params><param><value>a\r\nb</value></param></params></methodCall>",
        b"<methodCall><methodName>x</methodName><params><param><value><array><data/></array></value></param>"
        b"</params></methodCall>",
        b"<methodCall><methodName>x</methodName><params><param><value>a\x01</value></param></params></methodCall>",
        "<methodCall>\u00a0<methodName>x</methodName></methodCall>".encode(),  # not XML's whitespace
        b"<methodCall><methodName>x</methodName><params><param><value>\xff</value></param></params></methodCall>",
        b"<methodCall><methodName>x</methodName></methodCall><methodCall>",
        b"<methodCall><methodName>x</methodName><params><param><value>a</value></param>junk</params></methodCall>",
    ],
)
def test_anything_else_is_left_to_expat(body: bytes) -> None:
    assert _flat(body) is None
    same_reading(body)


def test_a_flat_call_over_the_budget_is_refused_as_any_other() -> None:
    body = xmlrpc.client.dumps(tuple(range(30_000)), "x").encode()
    assert _flat(body) is None
    with pytest.raises(_Budget):
        loads(body)


def test_floats_read_alike_even_at_the_edges() -> None:
    for value in (math.inf, -math.inf, 5e-324, 1.7976931348623157e308, -0.0):
        body = xmlrpc.client.dumps((value,), "x").encode()
        assert same_reading(body) is not None
