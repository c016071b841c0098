"""Long strings put back into an answer after the library encoded the rest: the bytes are exactly the library's.

Each codec's own encoder is the reference: the result encoded whole by thriftpy2 (binary and compact), by
Pyro5 with serpent, and by brine, against the same result with its long strings taken out and spliced back.
"""

from __future__ import annotations

import pytest
import serpent
from Pyro5 import protocol
from rpyc.core import brine, consts
from thriftpy2.protocol import TBinaryProtocol, TCompactProtocol
from thriftpy2.transport import TMemoryBuffer

from gateway.idl import thrift_module
from gateway.net.session import Deferred, each_piece
from gateway.transports import long_strings, pyro, rpyc, thrift
from gateway.transports.long_strings import CHUNK, LONG, LongStrings
from tests.servers.http import long_text

TEXTS = {
    "both quotes": long_text(2 * CHUNK + 1000),
    "single quotes only": "it's " * (CHUNK // 2),  # repr quotes the whole with ", and so its pieces
    "a piece with ' alone": "'" * CHUNK + '"' + "x" * CHUNK,  # the whole with ', its first piece with "
    "control characters": "\x00\x1f\x7f\ud800" + "a\\b\r\n" * LONG,
    "just long enough": "x" * LONG,
}


def result(body: str) -> dict:
    return {"status": 200, "headers": {"content-type": "text/plain"}, "body": body, "tail": "short", "more": [body]}


@pytest.mark.parametrize("text", TEXTS.values(), ids=TEXTS.keys())
@pytest.mark.parametrize("compact", [False, True], ids=["binary", "compact"])
def test_thrift(text, compact):
    text = text.replace("\ud800", "?")  # thriftpy2 cannot encode a lone surrogate at all
    module = thrift_module()
    protocol_class = TCompactProtocol if compact else TBinaryProtocol

    def encode(value: dict) -> bytes:
        fetched = module.FetchResult(headers=value["headers"], body=value["body"], body_encoding=value["tail"])
        out = TMemoryBuffer()
        module.NetOps.fetch_url_result(success=fetched).write(protocol_class(out))
        return out.getvalue()

    long = LongStrings()
    spliced = thrift.splice(encode(long.take(result(text))), long, compact)
    assert b"".join(each_piece(spliced)) == encode(result(text))
    assert type(spliced[1]) is Deferred  # the long string went as a part of its own, made as it is written


@pytest.mark.parametrize("text", TEXTS.values(), ids=TEXTS.keys())
def test_pyro_serpent(text):
    def message(value: dict) -> bytes:
        return protocol.SendingMessage(protocol.MSG_RESULT, 0, 7, 1, serpent.dumps(value)).data

    long = LongStrings()
    spliced = b"".join(each_piece(pyro._spliced(message(long.take(result(text))), long)))
    assert spliced == message(result(text))
    assert serpent.loads(spliced[protocol._header_size :]) == result(text)


@pytest.mark.parametrize("text", TEXTS.values(), ids=TEXTS.keys())
def test_rpyc_brine(text):
    text = text.replace("\ud800", "?")  # brine encodes str as UTF-8: a lone surrogate cannot be sent at all
    boxed = (consts.LABEL_VALUE, (text, "short", text))
    long = LongStrings()
    spliced = long.splice(brine.dump((9, long.take(boxed))), rpyc._BRINE_MARKER, b"", rpyc._brine_string)
    assert b"".join(each_piece(spliced)) == brine.dump((9, boxed))


LONG_ONE, SHORT = "x" * LONG, "y" * (LONG - 1)
HOLDING = {  # a value, and whether it holds a string of LONG characters or more
    "names": (["resolve", "mx_lookup"], False),
    "short strings, long together": ([SHORT, SHORT], False),
    "a long string among short ones": (("a", LONG_ONE, "b"), True),
    "strings and numbers": (["a", 1, LONG_ONE], True),
    "strings and a dict": (["a", {"body": LONG_ONE}], True),
    "a dict of lists": ({"addresses": ["a", "b"], "n": 1}, False),
    "empty": ([], False),
}


@pytest.mark.parametrize("case", HOLDING)
def test_a_long_string_is_found_wherever_it_is(case):
    value, holds = HOLDING[case]
    long = LongStrings()
    taken = long.take(value)
    assert (taken is not value, long.strings) == ((True, [LONG_ONE]) if holds else (False, []))


def test_a_forged_marker_is_not_spliced():
    """A server cannot plant a marker: each answer's is a fresh secret, and a repeated one is refused."""
    long = LongStrings()
    taken = long.take({"a": "x" * LONG})
    with pytest.raises(ValueError, match="repeated"):
        long.splice(serpent.dumps([taken, taken]), b"'", b"'", pyro._serpent_string)
    assert LongStrings().marker(0) != long.marker(0)


@pytest.mark.parametrize("quotes", ["'", '"', "'\"", ""])
def test_each_deferred_string_is_the_size_it_announced(monkeypatch, quotes):
    """A long string's size is counted before its bytes are made (a frame's length comes first): counted
    and made agree for every ASCII character, some others, and pieces that each choose their own quotes."""
    import random
    import xmlrpc.client

    from gateway.transports.xmlrpc import _xml_text

    monkeypatch.setattr(long_strings, "CHUNK", 5)  # many pieces, each as repr sees it alone
    rnd = random.Random(7)
    alphabet = [chr(c) for c in range(128) if chr(c) not in "'\"" or chr(c) in quotes] + ["é", "\x85", "\u2028", "😀"]
    for _ in range(500):
        pool = rnd.sample(alphabet, rnd.randrange(1, 10)) + list(quotes)
        text = "".join(rnd.choice(pool) for _ in range(rnd.randrange(0, 60)))
        utf8 = text.encode()
        for deferred, expected in (
            (pyro._serpent_string(text), repr(text).encode()),
            (_xml_text(text), xmlrpc.client.escape(text).encode()),
            (rpyc._brine_string(text), brine.TAG_UNICODE + brine.TAG_STR_L4 + brine.I4.pack(len(utf8)) + utf8),
            (thrift.string_parts(text, compact=False), len(utf8).to_bytes(4, "big") + utf8),
        ):
            assert deferred.size == len(expected)
            assert b"".join(deferred) == expected


def test_deferred_bytes_that_do_not_add_up_are_an_error():
    """Fewer or more bytes than announced would corrupt the frame whose length went first: an error (the layer
    then drops the connection), never bytes sent."""
    assert b"".join(Deferred(5, iter([b"ab", b"", b"cde"]))) == b"abcde"
    for made in ([b"abc"], [b"abc", b"def"]):
        with pytest.raises(ValueError, match="announced"):
            b"".join(Deferred(5, iter(made)))


@pytest.mark.parametrize("text", TEXTS.values(), ids=TEXTS.keys())
def test_grpc_protobuf(text):
    """gRPC: a result's long top-level strings written after protobuf serialized the rest, as protobuf would."""
    from google.protobuf.message_factory import GetMessageClass

    from gateway.proto import PACKAGE, default_pool
    from gateway.transports import grpc

    text = text.replace("\ud800", "?")  # protobuf refuses a lone surrogate in a string field
    pool, _ = default_pool()
    message = GetMessageClass(pool.FindMessageTypeByName(f"{PACKAGE}.FetchResult"))
    value = {"headers": {"content-type": "text/plain"}, "body": text, "body_encoding": "short", "url": text}
    shaped = grpc._shape(message, value)
    assert type(shaped) is grpc._Spliced  # the long strings went apart
    data = grpc._serialize(shaped)
    assert message.FromString(data) == message(**value)
    assert data == message(**value).SerializeToString()
    assert shaped.long.strings == []  # released before grpcio copies the bytes
