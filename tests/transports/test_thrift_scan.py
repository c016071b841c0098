"""The Thrift message walker: exact ends on real messages of both encodings, resumable, and its bounds."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
import thriftpy2
from hypothesis import given, settings
from hypothesis import strategies as st
from thriftpy2.protocol.binary import TBinaryProtocol
from thriftpy2.protocol.compact import TCompactProtocol
from thriftpy2.thrift import TMessageType
from thriftpy2.transport import TMemoryBuffer

from gateway.transports._thrift_scan import MAX_DEPTH, BinaryScanner, CompactScanner, ScanError

IDL = Path(__file__).resolve().parents[2] / "idl" / "netops.thrift"
MODULE = thriftpy2.load(str(IDL), module_name="scan_test_thrift")
ENCODINGS = {"binary": (TBinaryProtocol, BinaryScanner), "compact": (TCompactProtocol, CompactScanner)}
LIMIT = 1024 * 1024


def reply(protocol: type) -> bytes:
    """A system_multicall reply holding maps, lists, bools, doubles, nested structs and an error."""
    fetch = MODULE.FetchResult(
        url="http://a/", final_url="http://b/", status=200, reason="OK", http_version="HTTP/1.1",
        headers={"content-type": "text/plain", "x": "y" * 300},
        redirects=[MODULE.Redirect(url="http://a/", status=301, address="192.0.2.1")] * 3,
        content_type="text/plain", body="z" * 5000,
    )  # fmt: skip
    tls = MODULE.TlsReport(verified=True, hostname_match=False, elapsed_ms=1.5)
    outcomes = [
        MODULE.Outcome(fetch_url=fetch),
        MODULE.Outcome(tls_check=tls),
        MODULE.Outcome(error=MODULE.NetOpsError(code="not_found", message="nope")),
    ]
    result = MODULE.NetOps.system_multicall_result(success=outcomes)
    out = TMemoryBuffer()
    proto = protocol(out)
    proto.write_message_begin("system_multicall", TMessageType.REPLY, 7)
    result.write(proto)
    proto.write_message_end()
    return out.getvalue()


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_finds_the_exact_end_of_a_real_message_and_resumes(encoding):
    protocol, scanner_class = ENCODINGS[encoding]
    message = reply(protocol)
    scanner = scanner_class(LIMIT)
    assert scanner.scan(message + b"next message") == len(message)
    assert (scanner.name, scanner.seqid) == (b"system_multicall", 7)
    scanner = scanner_class(LIMIT)
    for end in range(1, len(message)):  # a byte at a time: never complete early, walked once
        assert scanner.scan(message[:end]) is None
    assert scanner.scan(message) == len(message)


def binary_call(body: bytes) -> bytes:
    name = b"resolve"
    return b"\x80\x01\x00\x01" + struct.pack("!i", len(name)) + name + struct.pack("!i", 1) + body


def test_void_lists_deep_nesting_big_strings_and_many_values_are_refused():
    cases = {
        "void": b"\x0f\x00\x01\x01" + struct.pack("!i", 2**31 - 1),
        "depth": b"\x0c\x00\x01" * (MAX_DEPTH + 1),
        "string": b"\x0b\x00\x01" + struct.pack("!i", LIMIT + 1),
        "values": b"\x0f\x00\x01\x0f" + struct.pack("!i", 2**20),
        "negative": b"\x0f\x00\x01\x08" + struct.pack("!i", -1),
        "type": b"\x10\x00\x01",
    }
    for name, body in cases.items():
        with pytest.raises(ScanError):
            BinaryScanner(LIMIT).scan(binary_call(body))
            pytest.fail(f"{name} was accepted")


def call_message(method: str, seqid: int, /, **args: object) -> bytes:
    """A real call of ``method`` as a stock client encodes it (binary protocol)."""
    out = TMemoryBuffer()
    proto = TBinaryProtocol(out)
    proto.write_message_begin(method, TMessageType.CALL, seqid)
    getattr(MODULE.NetOps, f"{method}_args")(**args).write(proto)
    proto.write_message_end()
    return out.getvalue()


def scanned(message: bytes) -> tuple[int | None, bytes, int] | str:
    """What the step-by-step walk makes of ``message``: its end, name and sequence id, or its refusal."""
    scanner = BinaryScanner(LIMIT)
    try:
        return scanner.scan(message), scanner.name, scanner.seqid
    except ScanError as exc:
        return f"refused: {exc}"


CALLS = {
    "no arguments": call_message("system_listMethods", 1),
    "a string": call_message("resolve", 2, host="example.com"),
    "strings and numbers": call_message("tls_check", 3, host="example.com", port=443, server_name=""),
    "a string, a number, a bool": call_message(
        "fetch_url", 4, url="http://a/", method="GET", headers=None, max_bytes=5, follow_redirects=False
    ),
}


@pytest.mark.parametrize("call", CALLS)
def test_the_one_loop_walk_finds_what_the_step_walk_finds(call):
    message = CALLS[call]
    scanner = BinaryScanner(LIMIT)
    assert scanner.whole(message) == len(message)
    assert (len(message), scanner.name, scanner.seqid) == scanned(message)
    for end in range(len(message)):  # cut short: left to the step walk, which waits for the rest
        assert BinaryScanner(LIMIT).whole(message[:end]) is None


def test_the_one_loop_walk_leaves_nested_values_and_old_headers_to_the_step_walk():
    nested = call_message("system_multicall", 5, calls=[MODULE.Call(resolve=MODULE.ResolveArgs(host="a"))])
    old_style = struct.pack("!i", 7) + b"resolve" + b"\x01" + struct.pack("!i", 1) + b"\x00"
    a_map = call_message("fetch_url", 6, url="http://a/", headers={"a": "b"})
    for message in (nested, a_map, old_style, binary_call(b"\x10\x00\x01\x00")):
        assert BinaryScanner(LIMIT).whole(message) is None
    assert BinaryScanner(len(CALLS["a string"]) - 1).whole(CALLS["a string"]) is None  # over the cap
    for size in (-1, -6, -7):  # a negative length would step back: onto the field id's 0 (a STOP), or round again
        assert BinaryScanner(LIMIT).whole(binary_call(b"\x0b\x00\x01" + struct.pack("!i", size) + b"\x00")) is None


FIELDS = st.one_of(  # a field header and a value, well formed or not
    st.sampled_from(
        [b"\x0b\x00\x01" + struct.pack("!i", 3) + b"abc", b"\x08\x00\x02" + b"\x00" * 4, b"\x02\x00\x03\x01"]
    ),
    st.sampled_from([b"\x0b\x00\x01" + struct.pack("!i", size) for size in (-1, -6, -7, 2**30)]),
    st.sampled_from([b"\x0c\x00\x01\x00", b"\x0f\x00\x01\x0b" + struct.pack("!i", 1) + struct.pack("!i", 0)]),
    st.binary(max_size=12),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(FIELDS, max_size=6), st.booleans(), st.integers(0, 8))
def test_the_one_loop_walk_accepts_nothing_the_step_walk_would_not(fields, stop, cut):
    message = binary_call(b"".join(fields) + (b"\x00" if stop else b""))
    message = message[: len(message) - cut] if cut else message
    end = BinaryScanner(LIMIT).whole(message)
    if end is not None:
        scanner = BinaryScanner(LIMIT)
        scanner.whole(message)
        assert (end, scanner.name, scanner.seqid) == scanned(message)


def test_compact_bounds():
    header = b"\x82\x21\x01\x07resolve"
    with pytest.raises(ScanError):  # a list claiming 2**28 elements
        CompactScanner(LIMIT).scan(header + b"\x19\xf5\x80\x80\x80\x80\x01")
    with pytest.raises(ScanError):  # a binary claiming more than the cap
        CompactScanner(LIMIT).scan(header + b"\x18\x80\x80\xc1\x00")


@pytest.mark.parametrize("protocol", ["binary", "compact"])
@pytest.mark.parametrize("transport", ["buffered", "framed"])
def test_every_protocol_and_transport_setting_serves_a_stock_client(transport_settings, protocol, transport):
    from thriftpy2.protocol import TBinaryProtocolFactory, TCompactProtocolFactory
    from thriftpy2.rpc import make_client
    from thriftpy2.transport import TBufferedTransportFactory, TFramedTransportFactory

    from gateway.server import Running

    settings = transport_settings.replace(transports=("thrift",), thrift_protocol=protocol, thrift_transport=transport)
    running = Running(settings)
    running.start()
    try:
        client = make_client(
            MODULE.NetOps,
            "127.0.0.1",
            running.port("thrift"),
            proto_factory=TCompactProtocolFactory() if protocol == "compact" else TBinaryProtocolFactory(),
            trans_factory=TFramedTransportFactory() if transport == "framed" else TBufferedTransportFactory(),
            timeout=10_000,
        )
        assert "resolve" in client.system_listMethods()
        calls = [MODULE.Call(resolve=MODULE.ResolveArgs(host=host)) for host in ("127.0.0.1", "")]
        outcomes = client.system_multicall(calls)
        assert outcomes[0].resolve.addresses[0].address == "127.0.0.1"
        assert outcomes[1].error.code == "invalid_argument"
        client.close()
    finally:
        running.stop()


@pytest.mark.parametrize(
    "cut",
    ["whole reads", "a byte at a time", "halves", "two and a half at once", "a half, then one and a half"],
)
def test_a_session_frames_the_same_messages_however_the_reads_cut_them(gateway, cut):
    from gateway.net.session import Link
    from gateway.observe import Caller
    from gateway.transports.thrift import ThriftCodec

    messages = [call_message("resolve", 1, host="a.example"), call_message("system_listMethods", 2),
                call_message("mx_lookup", 3, domain="b.example")]  # fmt: skip
    stream = b"".join(messages)
    a, b = len(messages[0]), len(messages[0]) + len(messages[1])
    reads = {
        "whole reads": messages,
        "a byte at a time": [stream[i : i + 1] for i in range(len(stream))],
        "halves": [part for m in messages for part in (m[: len(m) // 2], m[len(m) // 2 :])],
        "two and a half at once": [stream[: b + 5], stream[b + 5 :]],
        "a half, then one and a half": [stream[: a // 2], stream[a // 2 : b], stream[b:]],
    }[cut]
    link = Link(gateway, Caller("thrift", "127.0.0.1:1", typed=True), lambda _: None, lambda: None, False)
    session = ThriftCodec(gateway).session(link)
    framed = [request for read in reads for request in session.receive(read)]
    # Each message whole, as bytes, with the name and sequence id the walk read (and no problem); nothing
    # left over.
    assert framed == [(m, name, seqid, None) for m, name, seqid in zip(
        messages, [b"resolve", b"system_listMethods", b"mx_lookup"], [1, 2, 3], strict=True)]  # fmt: skip
    assert all(type(request[0]) is bytes for request in framed) and not session.buffer


def test_a_session_uses_its_buffers_again_and_frees_grown_ones(gateway):
    from gateway.net.session import Link
    from gateway.observe import Caller
    from gateway.transports.thrift import SPARE_BYTES, ThriftCodec

    link = Link(gateway, Caller("thrift", "127.0.0.1:1", typed=True), lambda _: None, lambda: None, False)
    codec = ThriftCodec(gateway)
    session = codec.session(link)

    def answer(message: bytes) -> tuple[str, object]:
        (request,) = session.receive(message)
        reply = session.handle(request)
        proto = TBinaryProtocol(TMemoryBuffer(reply))
        name, _, seqid = proto.read_message_begin()
        result = getattr(MODULE.NetOps, f"{name}_result")()
        result.read(proto)
        return seqid, result.success if result.success is not None else result.error.code

    first = answer(call_message("system_listMethods", 1))
    spare = list(codec.spare)
    assert len(spare) == 1
    # The same buffers answer the next calls, each answer whole and nothing of the one before in it.
    assert answer(call_message("system_methodSignature", 2, name="nope")) == (2, "method_not_found")
    assert answer(call_message("system_listMethods", 3)) == (3, first[1])
    assert codec.spare == spare
    # A request larger than SPARE_BYTES grew the message's buffer: it is freed, not kept that large.
    assert answer(call_message("system_methodHelp", 4, name="x" * (SPARE_BYTES + 1))) == (4, "method_not_found")
    assert codec.spare == []
    assert answer(call_message("system_listMethods", 5)) == (5, first[1])
    assert len(codec.spare) == 1 and codec.spare != spare


def thrift_session(gateway):
    """A session of the Thrift codec (binary, unframed) for an anonymous caller, writing nowhere."""
    from gateway.net.session import Link
    from gateway.observe import Caller
    from gateway.transports.thrift import ThriftCodec

    link = Link(gateway, Caller("thrift", "127.0.0.1:1", typed=True), lambda _: None, lambda: None, False)
    return ThriftCodec(gateway).session(link)


@pytest.mark.parametrize("method", ["system_listMethods", "resolve", "system_multicall"])
def test_a_call_whose_fields_are_all_left_out_is_answered(gateway, method):
    # Strict header, name, sequence id, then the arguments' STOP: no field sent (resolve's host is required).
    message = struct.pack("!iI", -0x7FFEFFFF, len(method)) + method.encode() + struct.pack("!i", 9) + b"\x00"
    if method == "system_listMethods":  # what a stock client sends for it
        assert message == call_message(method, 9)
    session = thrift_session(gateway)
    answer = session.handle(session.receive(message)[0])
    result = getattr(MODULE.NetOps, f"{method}_result")()
    proto = TBinaryProtocol(TMemoryBuffer(answer))
    assert proto.read_message_begin() == (method, TMessageType.REPLY, 9)
    result.read(proto)
    if method == "resolve":  # a required argument missing: the declared error
        assert result.error.code == "invalid_argument"
    elif method == "system_multicall":  # no calls: none answered
        assert result.success == []
    else:
        assert "resolve" in result.success


@pytest.mark.parametrize(
    "message",
    [
        call_message("system_listMethods", 9),
        call_message("system_methodHelp", 9, name="resolve"),
        call_message("system_methodSignature", 9, name="no_such_method"),
        call_message("system_methodHelp", 9),  # its argument left out: the declared error
    ],
    ids=["listing", "help", "signature-error", "missing-argument"],
)
def test_an_instant_call_alone_in_its_read_is_answered_as_it_is_read(gateway, message):
    from gateway.net.session import LATER

    at_a_glance, received = thrift_session(gateway), thrift_session(gateway)
    answer = at_a_glance.answer_read(message)
    assert answer is not LATER
    assert answer == received.handle(received.receive(message)[0])


@pytest.mark.parametrize(
    "message",
    [
        call_message("system_listMethods", 9)[:-1] + b"\x08",  # a field begins where STOP should be
        call_message("system_listMethods", 9) + b"\x80",  # the next message begins in the same read
        call_message("system_listMethods", 9)[:-1],  # the STOP is still to come
        call_message("system_methodHelp", 9, name="resolve")[:-3],  # its argument is still to come
        b"\x80\x01\x00\x04" + call_message("system_listMethods", 9)[4:],  # ONEWAY: no answer is awaited
        call_message("resolve", 9, host="example.test"),  # not instant: a worker answers it
        call_message("system_multicall", 9, calls=[]),
        b"\x80\x01",
    ],
    ids=["field", "two-messages", "cut-short", "argument-cut-short", "oneway", "resolve", "multicall", "tiny"],
)
def test_only_one_whole_instant_call_alone_in_its_read_is_answered_as_it_is_read(gateway, message):
    from gateway.net.session import LATER

    session = thrift_session(gateway)
    assert session.answer_read(message) is LATER
    # Nor when a read before it left part of a message waiting: this read continues that message.
    session.receive(call_message("system_methodHelp", 1, name="resolve")[:10])
    assert session.answer_read(call_message("system_listMethods", 2)) is LATER
