"""fetch_url: an HTTP(S) GET or HEAD on a caller's behalf, bounded in time and size.

HTTP/1.1 framing is h11's (a sans-I/O parser, so this module owns every byte
read and can stop at the caller's limit); the socket is opened to the address
the target policy approved, for the first request and for every redirect.
Bodies are decompressed incrementally and never beyond ``max_bytes`` + 1, so
a gzip bomb costs as much as any other response of that size.
"""

from __future__ import annotations

import base64
import codecs
import re
import socket
import ssl
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Annotated, Any, TypedDict
from urllib.parse import quote, urljoin, urlsplit

import h11

from gateway import __version__
from gateway.context import Context
from gateway.errors import (
    CONNECTION_FAILED,
    FORBIDDEN_TARGET,
    INVALID_ARGUMENT,
    NOT_FOUND,
    TIMEOUT,
    TOO_MANY_REDIRECTS,
    GatewayError,
)
from gateway.names import dns_name
from gateway.ops._net import open_tcp, os_reason
from gateway.ops._text import percent_escape, shown
from gateway.ops._tls import certificate_report, handshake, verify_problem
from gateway.policy import ip_literal
from gateway.registry import Range, operation

__all__ = ["fetch_url"]

MiB = 1024 * 1024
DEFAULT_MAX_BYTES = MiB
READ_CHUNK = 64 * 1024
MAX_HEADER_BYTES = 64 * 1024  # h11's cap on the status line plus headers; h11's own default
MAX_REQUEST_HEADERS = 64
REDIRECTS = frozenset({301, 302, 303, 307, 308})
# Framing and connection handling are the gateway's job: a caller setting these could smuggle requests.
RESERVED_HEADERS = frozenset(
    {
        "connection",
        "content-length",
        "expect",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
# Credentials do not follow a redirect to another origin.
ORIGIN_BOUND_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})
TEXT_TYPES = frozenset({"application/json", "application/xml", "application/javascript", "application/ecmascript"})
# Characters XML 1.0 cannot carry: a body holding them travels as base64 so every transport returns the same thing.
NOT_XML_SAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
# The same check on ASCII bytes, eight times faster than the search (a 10 MiB body: 6 ms, not 48 ms, with the
# body held twice meanwhile): deleting every other byte leaves exactly the ones XML cannot carry.
_NOT_XML_SAFE_ASCII = bytes(c for c in range(32) if c not in (9, 10, 13))
_ALL_BUT_NOT_XML_SAFE = bytes(c for c in range(256) if c not in _NOT_XML_SAFE_ASCII)
# Charsets in which ASCII bytes are those same characters.
_ASCII_SUPERSETS = frozenset({"utf-8", "ascii", "iso8859-1", "cp1252"})


class Redirect(TypedDict):
    """One redirect followed."""

    url: Annotated[str, "the URL that answered with the redirect"]
    status: int
    address: Annotated[str, "the address that answered"]


class Timings(TypedDict):
    """Milliseconds per phase of the final request; total_ms covers the whole operation."""

    dns_ms: float
    connect_ms: float
    tls_ms: float
    ttfb_ms: Annotated[float, "from request sent to first response byte"]
    total_ms: float


class TlsSummary(TypedDict):
    """The TLS session of an https fetch; empty strings for http."""

    protocol: str
    cipher: str
    verified: bool
    subject: str
    issuer: str
    not_after: str


class FetchResult(TypedDict):
    """An HTTP response: status, headers, and the body up to max_bytes."""

    url: str
    final_url: str
    status: int
    reason: str
    http_version: Annotated[str, "e.g. HTTP/1.1"]
    headers: Annotated[
        dict[str, str],
        "lower-case name to value, by name; repeated headers joined with ', '; control characters as \\x1b",
    ]
    redirects: list[Redirect]
    content_type: str
    body: Annotated[str, "text for textual types that decode in a text charset, else base64"]
    body_encoding: Annotated[str, "text or base64"]
    body_bytes: Annotated[int, "bytes of decoded body returned"]
    truncated: Annotated[bool, "the decoded body was larger than max_bytes"]
    timings: Timings
    address: Annotated[str, "IP address of the final hop"]
    tls: TlsSummary
    elapsed_ms: float
    charset: Annotated[
        str,
        "the text charset the body was decoded with; empty when it is base64 (binary, undecodable, "
        "or a charset that is unknown or no text encoding, such as bz2 or punycode)",
    ]


@dataclass
class _Target:
    url: str
    https: bool
    host: str  # IDNA-encoded host name or IP literal, no brackets
    port: int
    request_target: str
    host_header: str


@dataclass
class _Response:
    status: int = 0
    reason: str = ""
    http_version: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | bytearray = b""
    truncated: bool = False
    address: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    tls: TlsSummary | None = None


NO_TLS: TlsSummary = {"protocol": "", "cipher": "", "verified": False, "subject": "", "issuer": "", "not_after": ""}


@operation(
    errors=(INVALID_ARGUMENT, NOT_FOUND, FORBIDDEN_TARGET, TIMEOUT, CONNECTION_FAILED, TOO_MANY_REDIRECTS),
    example={"url": "https://example.com/", "max_bytes": 1024},
)
def fetch_url(
    ctx: Context,
    url: Annotated[str, "http:// or https:// URL"],
    method: Annotated[str, "GET or HEAD"] = "GET",
    headers: Annotated[dict[str, str], "extra request headers"] = {},  # noqa: B006 - never mutated
    max_bytes: Annotated[
        int, "most bytes of decoded body to return (at most 10 MiB)", Range(0, 10 * MiB)
    ] = DEFAULT_MAX_BYTES,
    follow_redirects: Annotated[bool, "follow 301, 302, 303, 307 and 308"] = True,
) -> FetchResult:
    """Fetch a URL over HTTP or HTTPS (GET or HEAD), following redirects; a 404 or 500 is a result, not an error."""
    start = time.perf_counter()
    verb = method.upper()
    if verb not in ("GET", "HEAD"):
        raise GatewayError(INVALID_ARGUMENT, f"unsupported method {method[:20]!r}: only GET and HEAD")
    if max_bytes > ctx.settings.max_body_bytes:
        if max_bytes != DEFAULT_MAX_BYTES:
            raise GatewayError(INVALID_ARGUMENT, f"max_bytes must be at most {ctx.settings.max_body_bytes}")
        max_bytes = ctx.settings.max_body_bytes  # the caller left the default: the operator's lower cap applies
    extra = _request_headers(headers)
    # Held before a byte is read, then only what was kept: bounded memory across every caller.
    held = ctx.services.results.hold(max_bytes)
    redirects: list[Redirect] = []
    current, target = url, _parse_url(url)
    while True:
        response = _exchange(ctx, target, verb, extra, max_bytes, stop_at_redirect=follow_redirects)
        location = response.headers.get("location", "")
        if not (follow_redirects and response.status in REDIRECTS and location):
            break
        if len(redirects) >= ctx.settings.max_redirects:
            raise GatewayError(TOO_MANY_REDIRECTS, f"more than {ctx.settings.max_redirects} redirects from {url[:200]}")
        redirects.append({"url": current, "status": response.status, "address": response.address})
        following, hop = _redirect(current, location)
        if _origin(hop) != _origin(target):
            extra = [(k, v) for k, v in extra if k not in ORIGIN_BOUND_HEADERS]
        current, target = following, hop
    content_type = response.headers.get("content-type", "")
    held.resize(len(response.body))
    body, encoding, charset = _body_text(response.body, content_type, response.truncated)
    timings = {**response.timings, "total_ms": round((time.perf_counter() - start) * 1000, 3)}
    return {  # type: ignore[typeddict-item]
        "url": url,
        "final_url": current,
        "status": response.status,
        "reason": shown(response.reason),  # what the server sent, its control characters escaped (see _text)
        "http_version": response.http_version,
        # Sorted by name: a map has no order on every transport (protobuf's has none), so none is promised.
        "headers": {name: shown(value) for name, value in sorted(response.headers.items())},
        "redirects": redirects,
        "content_type": shown(content_type),
        "body": body,
        "body_encoding": encoding,
        "charset": charset,
        "body_bytes": len(response.body),
        "truncated": response.truncated,
        "timings": timings,
        "address": response.address,
        "tls": response.tls or dict(NO_TLS),
    }


def _request_headers(headers: dict[str, str]) -> list[tuple[str, str]]:
    if len(headers) > MAX_REQUEST_HEADERS:
        raise GatewayError(INVALID_ARGUMENT, f"at most {MAX_REQUEST_HEADERS} request headers")
    out = []
    for name, value in headers.items():
        lower = name.lower()
        if lower in RESERVED_HEADERS:
            raise GatewayError(INVALID_ARGUMENT, f"header {name[:50]!r} is set by the gateway")
        if not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}", name) or not re.fullmatch(
            r"[\t\x20-\x7e\x80-\xff]{0,8192}", value
        ):
            raise GatewayError(INVALID_ARGUMENT, f"header {name[:50]!r} is not a valid HTTP header")
        out.append((lower, value))
    return out


def _parse_url(url: str) -> _Target:
    try:
        parts = urlsplit(url)
        port = parts.port
        host = parts.hostname or ""
    except ValueError as exc:
        raise GatewayError(INVALID_ARGUMENT, f"{url[:200]!r} is not a valid URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise GatewayError(INVALID_ARGUMENT, f"unsupported scheme {scheme[:20]!r}: only http and https")
    if not host:
        raise GatewayError(INVALID_ARGUMENT, f"{url[:200]!r} has no host")
    if parts.username is not None or parts.password is not None:
        raise GatewayError(INVALID_ARGUMENT, "URLs with credentials are not supported; send an Authorization header")
    if ip_literal(host) is None:
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise GatewayError(INVALID_ARGUMENT, f"{host[:100]!r} is not a valid host name") from None
        dns_name(host)  # refused here, before a connection is tried (a space, a comma: urlsplit takes anything)
    default = 443 if scheme == "https" else 80
    port = port or default
    named = f"[{host}]" if ":" in host else host  # as the Host header names it
    path = quote(parts.path or "/", safe="/%:@!$&'()*+,;=~-._")
    query = "?" + quote(parts.query, safe="/%:@!$&'()*+,;=~-._?") if parts.query else ""
    return _Target(url, scheme == "https", host, port, path + query, named if port == default else f"{named}:{port}")


def _redirect(current: str, location: str) -> tuple[str, _Target]:
    """The URL a redirect's ``location`` names from ``current``, and its target; a server's location that is
    no URL the gateway can fetch is refused as one from the caller would be, saying it came from a redirect."""
    location = shown(location, percent_escape)  # a byte no URL may hold raw, as a browser sends it
    try:
        following = urljoin(current, location)
    except ValueError:  # urljoin splits both, and an unbalanced "[" in a host is a ValueError
        following = location
    try:
        return following, _parse_url(following)
    except GatewayError as exc:
        raise GatewayError(exc.code, f"the redirect from {current[:200]} cannot be followed: {exc.message}") from None


def _origin(target: _Target) -> tuple[bool, str, int]:
    """Scheme, host and port: what a credential stays within."""
    return target.https, target.host.lower(), target.port


def _exchange(
    ctx: Context, target: _Target, method: str, extra: list[tuple[str, str]], max_bytes: int, *, stop_at_redirect: bool
) -> _Response:
    """One request and response on a fresh connection to the checked address."""
    conn = open_tcp(ctx, target.host, target.port)
    response = _Response(address=conn.address)
    sock = conn.sock
    tls_ms = 0.0
    try:
        if target.https:
            began = time.perf_counter()
            try:  # an IP literal is checked against the certificate's IP addresses, and no SNI is sent
                sock = handshake(sock, ctx.services.tls.full, target.host, ctx.deadline)
            except ssl.SSLCertVerificationError as exc:
                raise GatewayError(
                    CONNECTION_FAILED, f"certificate of {target.host} does not verify: {verify_problem(exc)}"
                ) from None
            tls_ms = round((time.perf_counter() - began) * 1000, 3)
            response.tls = _tls_summary(sock)
        ttfb = _converse(ctx, sock, target, method, extra, max_bytes, response, stop_at_redirect)
    except h11.ProtocolError as exc:
        raise GatewayError(CONNECTION_FAILED, f"invalid HTTP response from {target.host}: {exc}") from None
    except TimeoutError:
        raise ctx.deadline.expired() from None
    except OSError as exc:
        raise GatewayError(CONNECTION_FAILED, f"connection to {target.host} failed: {os_reason(exc)}") from None
    finally:
        sock.close()
    response.timings = {"dns_ms": conn.dns_ms, "connect_ms": conn.connect_ms, "tls_ms": tls_ms, "ttfb_ms": ttfb}
    return response


def _converse(
    ctx: Context,
    sock: socket.socket,  # or an ssl.SSLSocket (a subclass)
    target: _Target,
    method: str,
    extra: list[tuple[str, str]],
    max_bytes: int,
    response: _Response,
    stop_at_redirect: bool,
) -> float:
    """Send the request, read the response into ``response``; return time to first byte in ms."""
    names = {k for k, _ in extra}
    headers = [("host", target.host_header)] if "host" not in names else []
    headers += [
        (k, v)
        for k, v in (
            ("user-agent", f"netops-gateway/{__version__}"),
            ("accept", "*/*"),
            ("accept-encoding", "gzip, deflate"),
        )
        if k not in names
    ]
    headers += [*extra, ("connection", "close")]
    http = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEADER_BYTES)
    try:
        request = http.send(h11.Request(method=method, target=target.request_target, headers=headers))
    except h11.LocalProtocolError as exc:
        raise GatewayError(INVALID_ARGUMENT, f"cannot send that request: {exc}") from None
    sock.settimeout(ctx.deadline.remaining())
    sock.sendall(request + (http.send(h11.EndOfMessage()) or b""))
    sent = time.perf_counter()
    ttfb = 0.0
    body: _BoundedBody | None = None
    while True:
        event = http.next_event()
        if event is h11.NEED_DATA:
            sock.settimeout(ctx.deadline.remaining())
            data = sock.recv(READ_CHUNK)
            if not ttfb:
                ttfb = round((time.perf_counter() - sent) * 1000, 3)
            http.receive_data(data)
        elif isinstance(event, h11.Response):
            response.status = event.status_code
            response.reason = event.reason.decode("latin-1")
            response.http_version = "HTTP/" + event.http_version.decode("ascii")
            response.headers = _joined(event.headers)
            if stop_at_redirect and event.status_code in REDIRECTS and "location" in response.headers:
                return ttfb
            body = _BoundedBody(response.headers.get("content-encoding", ""), max_bytes)
        elif isinstance(event, h11.Data):
            assert body is not None
            if body.feed(event.data):
                break
        elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
            if body is None:
                raise GatewayError(CONNECTION_FAILED, f"{target.host} closed the connection without a response")
            break
        # h11.InformationalResponse (1xx) carries nothing for us: keep reading.
    if body is not None:
        response.body, response.truncated = body.value(), body.truncated
    return ttfb


def _joined(headers: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in headers:
        key, text = name.decode("ascii").lower(), value.decode("latin-1")
        out[key] = f"{out[key]}, {text}" if key in out else text
    return out


def _tls_summary(sock: ssl.SSLSocket) -> TlsSummary:
    der = sock.getpeercert(binary_form=True)
    # What cannot be read of a certificate OpenSSL verified stays absent: the fetch itself succeeded.
    report = certificate_report(der)[0] if der else {"subject": "", "issuer": "", "not_after": ""}
    return {
        "protocol": sock.version() or "",
        "cipher": (sock.cipher() or ("",))[0],
        "verified": True,  # the full-verification context refused anything else
        "subject": report["subject"],
        "issuer": report["issuer"],
        "not_after": report["not_after"],
    }


class _BoundedBody:
    """Collect a body, decompressing gzip/deflate as it arrives, never past limit + 1 byte."""

    def __init__(self, content_encoding: str, limit: int) -> None:
        self.limit = limit
        self.truncated = False
        # One buffer, grown in place (a large one by remapping, no copy): parts joined at the end would hold
        # the body twice for a moment, and leave the worker's heap with a hole the size of the body.
        self._data = bytearray()
        encoding = content_encoding.strip().lower()
        self._raw_deflate_retry = encoding == "deflate"  # some servers send raw deflate without the zlib header
        self._inflate: Any = None  # a zlib decompressor, for gzip and deflate bodies
        if encoding in ("gzip", "x-gzip"):
            self._inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self._inflate = zlib.decompressobj()
        else:
            self._inflate = None

    def feed(self, data: bytes) -> bool:
        """Add bytes as received; True once the decoded body exceeds the limit."""
        if self._inflate is None:
            return self._keep(data)
        while data and not self._inflate.eof:
            try:
                out = self._inflate.decompress(data, self.limit + 1 - len(self._data))
            except zlib.error:
                if self._raw_deflate_retry and not self._data:
                    self._raw_deflate_retry = False
                    self._inflate = zlib.decompressobj(-zlib.MAX_WBITS)
                    continue
                raise GatewayError(CONNECTION_FAILED, "the response body is not valid compressed data") from None
            self._raw_deflate_retry = False
            data = self._inflate.unconsumed_tail
            if self._keep(out):
                return True
        return False

    def _keep(self, data: bytes) -> bool:
        room = self.limit - len(self._data)
        if len(data) > room:
            self._data += memoryview(data)[:room]
            self.truncated = True
            return True
        self._data += data
        return False

    def value(self) -> bytearray:
        """The body collected so far (not copied)."""
        return self._data


# Codecs Python can look up that are no charset, or not one a body may name: text transforms (idna,
# the escape codecs), punycode (it decodes in quadratic time), utf-7 (the XSS charset browsers dropped),
# and "undefined". The registry's compressors and byte transforms (bz2, zlib, base64, hex, rot13, uu, …)
# are not text encodings at all, and are refused by that mark.
_NOT_CHARSETS = frozenset({"punycode", "idna", "unicode-escape", "raw-unicode-escape", "utf-7", "undefined"})


def charset_codec(name: str) -> str | None:
    """The codec name for a charset a server named, or None if it is unknown or not a text charset."""
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError, TypeError):
        return None
    if not getattr(info, "_is_text_encoding", True) or info.name in _NOT_CHARSETS:
        return None
    return info.name


def _body_text(body: bytes | bytearray, content_type: str, truncated: bool) -> tuple[str, str, str]:
    """(text, "text", charset) for textual types that decode cleanly in a text charset (UTF-8 when none is
    named), else (base64, "base64", "")."""
    mime, _, params = content_type.partition(";")
    mime = mime.strip().lower()
    textual = mime.startswith("text/") or mime in TEXT_TYPES or mime.endswith(("+json", "+xml"))
    if textual:
        named = "utf-8"
        for param in params.split(";"):
            key, _, value = param.partition("=")
            if key.strip().lower() == "charset" and value.strip():
                named = value.strip().strip('"')[:64]
        charset = charset_codec(named)
        if charset in _ASCII_SUPERSETS and body.isascii():  # most bodies: checked on the bytes, decoded at once
            if body.translate(None, _ALL_BUT_NOT_XML_SAFE):
                return base64.b64encode(body).decode("ascii"), "base64", ""
            return body.decode("ascii"), "text", charset
        text = None
        if charset is not None:
            try:
                text = codecs.getincrementaldecoder(charset)("strict").decode(body, final=not truncated)
            except UnicodeDecodeError:
                text = None
        if charset is not None and text is not None and not NOT_XML_SAFE.search(text):
            return text, "text", charset
    return base64.b64encode(body).decode("ascii"), "base64", ""
