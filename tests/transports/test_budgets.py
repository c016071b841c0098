"""Decoding has a work budget on every transport: a request holding too many values, or nested too deep,
is answered with invalid_argument in milliseconds (too_large is for bytes over the request cap), and the
gateway serves on."""

from __future__ import annotations

import socket
import time

import pytest

from gateway.transports import TRANSPORTS
from tests.transports.clients import RemoteError, connect

TOO_MANY = [0] * 40_000  # under the 1 MiB request cap on every transport, over the values budget


def nested(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_too_many_values_are_refused_in_milliseconds(running, transport):
    client = connect(running, transport)
    calls = [{"methodName": "resolve", "params": [TOO_MANY]}]
    try:
        began = time.process_time()  # CPU, not wall time: a busy machine stretches the one, not the other
        if transport == "thrift":  # the IDL types every value: 35,000 typed calls are ~105,000 values
            union = [client.module.Call(resolve=client.module.ResolveArgs(host="")) for _ in range(35_000)]
            with pytest.raises(RemoteError) as caught:
                client.call("system.multicall", union)
            assert caught.value.code == "invalid_argument"
        elif transport == "grpc":  # typed too: 35,000 calls in a message under the size cap
            with pytest.raises(RemoteError) as caught:
                client.call("system.multicall", [{"methodName": "resolve", "params": [""]}] * 35_000)
            assert caught.value.code == "invalid_argument"
        elif transport == "jsonrpc":  # a batch-sized answer: read it whole
            status, answer = client.post({"jsonrpc": "2.0", "method": "system.multicall", "params": [calls], "id": 1})
            assert status == 200 and answer["id"] == 1
            raise_from_answer = RemoteError(answer["error"]["data"]["code"], answer["error"]["message"])
            assert raise_from_answer.code == "invalid_argument"
        else:
            with pytest.raises(RemoteError) as caught:
                client.call("system.multicall", calls)
            assert caught.value.code in ("too_large", "invalid_argument")
        assert time.process_time() - began < 2.0  # the client's own encoding included; the gateway's is ms
    finally:
        client.close()
    fresh = connect(running, transport)
    assert "resolve" in fresh.call("system.listMethods")
    fresh.close()


@pytest.mark.parametrize("transport", ["xmlrpc", "jsonrpc"])
def test_deep_nesting_is_refused(running, transport):
    client = connect(running, transport)
    try:
        with pytest.raises(RemoteError) as caught:
            client.call("system.multicall", [nested(100)])
        assert caught.value.code in ("too_large", "invalid_argument")
    finally:
        client.close()


def test_a_thrift_message_over_budget_gets_too_large_for_its_method(running):
    """The scanner knows the method and sequence id when it refuses: the client gets the declared error."""
    import socket
    import struct

    from thriftpy2.protocol.binary import TBinaryProtocol
    from thriftpy2.transport import TMemoryBuffer

    from tests.transports.clients import ThriftClient

    module = ThriftClient(running.port("thrift")).module
    name = b"resolve"
    message = b"\x80\x01\x00\x01" + struct.pack("!i", len(name)) + name + struct.pack("!i", 7)
    message += b"\x0f\x00\x01\x0f" + struct.pack("!i", 2**20)  # a list claiming a million lists
    with socket.create_connection(("127.0.0.1", running.port("thrift"))) as sock:
        sock.sendall(message)
        sock.settimeout(5)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    proto = TBinaryProtocol(TMemoryBuffer(reply))
    assert proto.read_message_begin() == ("resolve", 2, 7)
    result = module.NetOps.resolve_result()
    result.read(proto)
    assert result.error.code == "invalid_argument" and "too many values" in result.error.message


@pytest.mark.parametrize(
    ("transport", "path", "media"), [("xmlrpc", "/RPC2", "text/xml"), ("jsonrpc", "/", "application/json")]
)
def test_a_client_still_sending_a_refused_body_reads_the_refusal(running, transport, path, media):
    """Refused from its head, the body is never read into anything; but the gateway keeps dropping what
    still arrives for a moment, so the client finishes sending and reads the answer (no reset)."""
    size = 3 * 1024 * 1024  # over the 1 MiB request cap
    with socket.create_connection(("127.0.0.1", running.port(transport)), timeout=10) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {media}\r\nContent-Length: {size}\r\n\r\n".encode()
        )
        sock.sendall(b" " * size)  # raises BrokenPipeError or ConnectionResetError if the gateway reset
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200 ") and b"too_large" in answer


@pytest.mark.parametrize("transport", ["jsonrpc", "mcp"])
def test_a_json_body_claiming_too_many_values_is_refused_unparsed(gateway, transport):
    """A megabyte of [{},{},…] would make json build ~20 MiB of objects before any budget could look at
    them: the body is counted first and refused without being parsed."""
    import tracemalloc

    from gateway.observe import Caller
    from gateway.transports import codec_class

    app = codec_class(transport)(gateway).app
    bomb = b'{"jsonrpc": "2.0", "id": 1, "method": "x", "params": {"v": [' + b"{}," * 300_000 + b"{}]}}"
    assert len(bomb) < 1024 * 1024
    tracemalloc.start()
    try:
        refused = app.decode(bomb, Caller(transport), {})
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * 1024 * 1024, peak  # the pass over the text, not 300,000 dicts
    body = refused if isinstance(refused, bytes) else refused.body
    assert b"invalid_argument" in body or b"at most" in body


def test_a_thrift_message_refused_midway_is_answered_while_its_client_still_sends(running):
    """Unframed Thrift has no length: the scan refuses a message over the budget before its end arrives, and
    the gateway answers at once. It then reads and drops what the client still sends, for a moment: closing
    with bytes unread resets the connection, and the client, still writing, would never read the answer."""
    from thriftpy2.protocol import TBinaryProtocol
    from thriftpy2.thrift import TMessageType
    from thriftpy2.transport import TMemoryBuffer

    from gateway.idl import thrift_module

    module = thrift_module()
    out = TMemoryBuffer()
    protocol = TBinaryProtocol(out)
    protocol.write_message_begin("system_multicall", TMessageType.CALL, 7)
    calls = [module.Call(resolve=module.ResolveArgs(host="")) for _ in range(35_000)]
    module.NetOps.system_multicall_args(calls=calls).write(protocol)
    protocol.write_message_end()
    message = out.getvalue()
    cut = len(message) * 3 // 4  # past the budget
    with socket.create_connection(("127.0.0.1", running.port("thrift")), timeout=10) as sock:
        sock.sendall(message[:cut])
        time.sleep(0.5)  # the answer is written by now
        sock.sendall(message[cut:])  # the rest, as a client writing its whole message before reading does
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    answer = TBinaryProtocol(TMemoryBuffer(reply))
    assert answer.read_message_begin()[1:] == (TMessageType.REPLY, 7)
    result = module.NetOps.system_multicall_result()
    result.read(answer)
    assert result.error.code == "invalid_argument"
