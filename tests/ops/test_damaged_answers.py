"""What servers send back, damaged: DNS answers, HTTP responses, redirects to anything, certificates with
any names. Each operation answers with a result of the declared shape or a clear error, never ``internal``
(nor, for DNS, ``invalid_argument``: the caller's name was good), and logs no failure of its own. What this
found is pinned down, one case each, in test_dns.py (a PTR name that is no host name), test_http.py (a
redirect to no URL, a host that is no name, control characters in the head) and test_tls.py (certificates
cryptography will not read whole)."""

from __future__ import annotations

import datetime
import gzip
import logging
import socket
import ssl
import zlib
from collections.abc import Callable, Iterator

import dns.message
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtensionOID, NameOID
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from gateway import GatewayError
from gateway.core import Gateway
from gateway.registry import conforms
from tests.conftest import make_gateway
from tests.servers import zones
from tests.servers.dns import Authority, DNSServer
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


def answered(
    gw: Gateway,
    name: str,
    args: list,
    kwargs: dict,
    caplog: pytest.LogCaptureFixture,
    sent: object,
    wrong: tuple[str, ...] = ("internal",),
) -> None:
    """Call: a result of the declared shape or a clear error (none of ``wrong``), and nothing logged (``sent``:
    what the server sent, shown when it fails)."""
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="gateway"):
        try:
            result = gw.call(name, args, kwargs)
        except GatewayError as exc:
            assert exc.code not in wrong, (sent, str(exc))
            assert_no_leak(str(exc))
        else:
            assert conforms(result, gw.lookup(name).result), (sent, result)
    assert not caplog.records, (sent, [r.getMessage() for r in caplog.records])


def fetched(gw: Gateway, server: _Server, answer: bytes, follow: bool, caplog: pytest.LogCaptureFixture) -> None:
    """Fetch from ``server`` answering ``answer``."""
    server.answer = answer
    answered(gw, "fetch_url", [f"http://127.0.0.1:{server.port}/"], {"follow_redirects": follow}, caplog, answer)


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


# -- certificates ---------------------------------------------------------------------------------------------
KEY = ec.generate_private_key(ec.SECP256R1())
NOW = datetime.datetime.now(datetime.UTC)
# General names of the SAN, by tag: otherName, rfc822Name, dNSName, directoryName, URI, iPAddress, registeredID.
general_name = st.tuples(st.sampled_from([0xA0, 0x81, 0x82, 0xA4, 0x86, 0x87, 0x88]), st.binary(max_size=20))


def _der(names: list[tuple[int, bytes]], common_name: str) -> bytes:
    """A self-signed certificate whose subject is ``common_name`` and whose SAN holds ``names`` as given."""
    body = b"".join(bytes([tag, len(value)]) + value for tag, value in names)
    san = x509.UnrecognizedExtension(ExtensionOID.SUBJECT_ALTERNATIVE_NAME, b"\x30" + bytes([len(body)]) + body)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    builder = x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(KEY.public_key())
    builder = builder.serial_number(1).not_valid_before(NOW).not_valid_after(NOW + datetime.timedelta(days=1))
    return (
        builder.add_extension(san, critical=False).sign(KEY, hashes.SHA256()).public_bytes(serialization.Encoding.DER)
    )


class _TLSServer:
    """Hands each connection a TLS handshake with ``context``'s certificate."""

    def __init__(self) -> None:
        self.context: ssl.SSLContext | None = None
        self.listener = accept_each(self._handshake)
        self.port = self.listener.getsockname()[1]

    def _handshake(self, client: socket.socket) -> None:
        with client:
            try:
                assert self.context is not None
                client.settimeout(2)
                with self.context.wrap_socket(client, server_side=True) as tls:
                    tls.recv(1)
            except (OSError, ssl.SSLError):
                pass


@pytest.fixture(scope="module")
def tls_server() -> Iterator[_TLSServer]:
    server = _TLSServer()
    yield server
    server.listener.close()


@given(names=st.lists(general_name, max_size=3), common_name=st.text(min_size=1, max_size=20))
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_a_certificate_with_any_names_is_reported(quick, tls_server, tmp_path, caplog, names, common_name):
    der = _der(names, common_name)
    (tmp_path / "cert.pem").write_text(ssl.DER_cert_to_PEM_cert(der))
    (tmp_path / "key.pem").write_bytes(
        KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    except ssl.SSLError:
        assume(False)  # OpenSSL will not serve it: no server would present it
    tls_server.context = context
    answered(quick, "tls_check", ["127.0.0.1", tls_server.port], {}, caplog, (names, common_name))


# -- DNS answers ------------------------------------------------------------------------------------------------
LOOKUPS = [  # good names and addresses, each answered by the test zones
    ("resolve", ["www.example.test"]), ("resolve", ["alias.example.test"]), ("mx_lookup", ["example.test"]),
    ("mx_lookup", ["implicit.example.test"]), ("reverse_lookup", ["192.0.2.10"]), ("reverse_lookup", ["2001:db8::10"]),
    ("dns_query", ["txt.example.test", "TXT"]), ("dns_query", ["example.test", "CAA"]),
    ("dns_query", ["_sip._tcp.example.test", "SRV"]), ("dns_query", ["svc.example.test", "HTTPS"]),
    ("dns_query", ["example.test", "SOA"]), ("dns_query", ["sip.example.test", "NAPTR"]),
]  # fmt: skip


def _question_end(wire: bytes) -> int:
    at = 12
    while at < len(wire) and wire[at]:
        at += 1 + wire[at]
    return at + 5


def damaged_answer(edits: list[tuple[str, float, bytes]]) -> Callable[[bytes], bytes]:
    """What a server does to each answer: ``edits`` after its question (an answer to another question is not
    read), kept only when the answer still parses (one that does not is dropped, and waited for in vain)."""

    def rewrite(wire: bytes) -> bytes:
        start = _question_end(wire)
        changed = wire[:start] + damaged(wire[start:], edits) if start < len(wire) else wire
        try:
            dns.message.from_wire(changed)
        except Exception:
            return wire
        return changed

    return rewrite


@pytest.fixture(scope="module")
def damaging_dns() -> Iterator[DNSServer]:
    server = DNSServer(Authority(zones.zones(), {}, ()))
    yield server
    server.close()


@pytest.fixture(scope="module")
def through_damage(settings, damaging_dns) -> Iterator[Gateway]:
    gw = make_gateway(settings.replace(nameservers=(damaging_dns.address,), timeout=2.0))
    yield gw
    gw.close()


@given(lookup=st.sampled_from(LOOKUPS), edits=st.lists(damage, min_size=1, max_size=3))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_a_damaged_dns_answer_is_a_result_or_a_clear_error(through_damage, damaging_dns, caplog, lookup, edits):
    damaging_dns.rewrite = damaged_answer(edits)
    name, args = lookup
    answered(through_damage, name, args, {}, caplog, edits, wrong=("internal", "invalid_argument"))
