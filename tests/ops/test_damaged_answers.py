"""HTTP responses damaged on the way in, and redirects to anything: fetch_url answers with a result of its
declared shape or a clear error, never ``internal``, and logs no failure of its own. What this found is pinned
down, one case each, in test_http.py (a redirect to no URL, a host that is no name, control characters in the
head)."""

from __future__ import annotations

import gzip
import logging
import socket
import zlib
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway import GatewayError
from gateway.core import Gateway
from gateway.registry import conforms
from tests.conftest import make_gateway
from tests.servers.tcp import accept_each
from tests.transports.clients import assert_no_leak

BODY = ("héllo wörld " * 40).encode()


def _chunked(data: bytes) -> bytes:
    parts = [data[i : i + 97] for i in range(0, len(data), 97)]
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"


def _head(status: str, *headers: str) -> bytes:
    return ("\r\n".join([f"HTTP/1.1 {status}", *headers]) + "\r\n\r\n").encode("latin-1")


ZIPPED = gzip.compress(BODY)
RESPONSES = [  # what a server may send, each kind of framing and encoding fetch_url reads
    _head("200 OK", "Content-Type: text/plain; charset=utf-8", f"Content-Length: {len(BODY)}") + BODY,
    _head("200 OK", "Content-Type: text/html; charset=iso-8859-1", "Transfer-Encoding: chunked") + _chunked(BODY),
    _head("200 OK", "Content-Encoding: gzip", f"Content-Length: {len(ZIPPED)}") + ZIPPED,
    _head("200 OK", "Content-Encoding: deflate", "Transfer-Encoding: chunked") + _chunked(zlib.compress(BODY)),
    _head("302 Found", "Location: /next?a=1", "Content-Length: 0"),
    _head("100 Continue") + _head("204 No Content", "X-A: b"),
]
# Text that means something where it lands: framing, encodings, charsets, a Location to follow.
TOKENS = [
    b"\r\n", b"\r\n\r\n", b": ", b";", b"\x00", b"\x1b", b"\xff", b"charset=base64", b"charset=utf-7",
    b"Content-Encoding: gzip\r\n", b"Transfer-Encoding: chunked\r\n", b"Content-Length: 99999999999999999999\r\n",
    b"Location: file:///etc/passwd\r\n", b"Location: http://[::1\r\n", b"Location: http://127.0.0.1:8x0/\r\n",
    b"Location: http://a b/\r\n", b"ffffffffffffffffff\r\n", b"HTTP/1.1 ",
]  # fmt: skip

damage = st.tuples(
    st.sampled_from(["flip", "cut", "insert", "token"]), st.floats(0, 1), st.binary(min_size=1, max_size=6)
)


def damaged(response: bytes, edits: list[tuple[str, float, bytes]]) -> bytes:
    """``response`` with each edit applied at its place (a fraction of the length)."""
    data = bytearray(response)
    for kind, where, extra in edits:
        at = min(int(where * len(data)), len(data))
        if kind == "flip" and at < len(data):
            data[at] = extra[0]
        elif kind == "cut":
            del data[max(at, 1) :]
        elif kind == "insert":
            data[at:at] = extra
        elif kind == "token":
            data[at:at] = TOKENS[extra[0] % len(TOKENS)]
    return bytes(data)


class _Server:
    """Answers every connection with ``answer``, then closes."""

    def __init__(self) -> None:
        self.answer = b""
        self.listener = accept_each(self._answer)
        self.port = self.listener.getsockname()[1]

    def _answer(self, client: socket.socket) -> None:
        answer = self.answer
        with client:
            try:
                client.settimeout(2)
                client.recv(65536)
                client.sendall(answer)
                client.shutdown(socket.SHUT_WR)
                client.recv(1)  # until the gateway closes: no reset under a reply it has not read yet
            except OSError:
                pass


@pytest.fixture(scope="module")
def server() -> Iterator[_Server]:
    server = _Server()
    yield server
    server.listener.close()


@pytest.fixture(scope="module")
def quick(settings) -> Iterator[Gateway]:
    gw = make_gateway(settings.replace(timeout=1.0))
    yield gw
    gw.close()


def fetched(gw: Gateway, server: _Server, answer: bytes, follow: bool, caplog: pytest.LogCaptureFixture) -> None:
    """Fetch from ``server`` answering ``answer``: a result of the declared shape or a clear error, nothing logged."""
    server.answer = answer
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="gateway"):
        try:
            result = gw.call("fetch_url", [f"http://127.0.0.1:{server.port}/"], {"follow_redirects": follow})
        except GatewayError as exc:
            assert exc.code != "internal", (answer, str(exc))
            assert_no_leak(str(exc))
        else:
            assert conforms(result, gw.lookup("fetch_url").result), (answer, result)
    assert not caplog.records, (answer, [r.getMessage() for r in caplog.records])


@given(base=st.sampled_from(RESPONSES), edits=st.lists(damage, min_size=1, max_size=3), follow=st.booleans())
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_a_damaged_response_is_a_result_or_a_clear_error(quick, server, caplog, base, edits, follow):
    fetched(quick, server, damaged(base, edits), follow, caplog)


# A Location's scheme, then characters that mean something in a URL's authority and path, and a few no URL may hold.
schemes = st.sampled_from(["http://", "https://", "HTTP://", "//", "/", "", "ftp://", "file://", "http:", "http:///"])
url_text = st.text(alphabet="0123456789abcxyz.:/[]@?#%_- \x01\x1b\xff", max_size=24)


@given(scheme=schemes, rest=url_text)
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_a_redirect_to_anything_is_followed_or_refused_clearly(quick, server, caplog, scheme, rest):
    location = (scheme + rest).encode("latin-1")
    fetched(
        quick, server, b"HTTP/1.1 302 Found\r\nLocation: " + location + b"\r\nContent-Length: 0\r\n\r\n", True, caplog
    )
