"""HTTP/1.1 under XML-RPC and JSON-RPC: a session per connection, parsed by httptools (llhttp), keep-alive.

Everything is decided from the request head, before a byte of the body is
buffered: the path, the media type, the token (``Authorization: Bearer``),
the framing (a plain body with Content-Length) and its size.  A request that
cannot be served is answered at once and the connection closed, so the body
is never read.  Heads are capped at :data:`MAX_HEAD_BYTES`.  Answers are one
write each; Nagle is off on every connection (see the connection layer).
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, NoReturn

import httptools

from gateway.core import Gateway
from gateway.errors import TOO_LARGE, GatewayError
from gateway.net.session import INSTANT_BYTES, LATER, Answer, Codec, Deferred, Later, Link, Refuse, Session
from gateway.observe import Caller
from gateway.transports.table import row

if TYPE_CHECKING:
    from gateway.web import Site

__all__ = ["App", "HTTPCodec", "Reply", "text_response"]

log = logging.getLogger("gateway.http")

MAX_HEAD_BYTES = 16 * 1024  # request line and headers: what h11 and most servers allow
JOIN_BYTES = 64 * 1024  # a larger body is written after its head, not joined to it
OPEN_PATHS = frozenset({"/healthz", "/readyz"})  # what load balancers probe: answered without a token
BEARER_CHALLENGE = ("WWW-Authenticate", 'Bearer realm="netops"')
SERVER = b"netops-gateway"


class App(ABC):
    """What an HTTP transport plugs in: its paths, content type and request handler."""

    paths: frozenset[str] = frozenset()
    content_type = "application/octet-stream"
    # Media types a request may declare. Anything else is refused (415): a web page can post only
    # text/plain, form data or multipart to another origin without a CORS preflight, so this keeps
    # pages a visitor's browser loads from calling a gateway that browser can reach.
    accepts: frozenset[str] = frozenset()
    transport = ""
    headers: frozenset[bytes] = frozenset()  # request headers (lower case) the app reads, kept for decode()
    post_only = False  # a GET of the app's paths is 405, not a page

    def delete(self, headers: Mapping[str, str], caller: Caller) -> Reply:
        """Answer a DELETE of the app's path (only asked of a ``post_only`` app): end what the caller opened."""
        return Reply(405, headers=(("Allow", "POST"),))

    def check_head(self, headers: Mapping[str, str], link: Link) -> bytes | None:
        """A reply refusing a request from its head alone, before its body is read (default: none)."""
        return None

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    @abstractmethod
    def decode(self, body: bytes, caller: Caller, headers: Mapping[str, str]) -> Any:
        """Parse a request body: what :meth:`answer` takes, or the reply (bytes) to a body that is refused."""

    @abstractmethod
    def answer(self, decoded: Any, caller: Caller) -> bytes | list[bytes | Deferred] | Reply | None:
        """Answer a decoded request (or pass on the reply :meth:`decode` made): the body, or its parts in
        order (a large one is not joined); None: no body (HTTP 204)."""

    @abstractmethod
    def instant(self, decoded: Any) -> bool:
        """Whether every call in a decoded request is to an instant operation."""

    @abstractmethod
    def refuse(self, error: GatewayError) -> bytes:
        """A transport-native error for a request refused before it was read."""


@dataclass(frozen=True)
class Reply:
    """An answer that is not a plain 200: its status, body and extra headers."""

    status: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()


def response(status: int, body: bytes, content_type: str, headers: tuple = (), close: bool = False) -> bytes:
    """One complete HTTP/1.1 response."""
    head = _head(status, len(body), content_type, headers, close)
    return head + body


def response_parts(
    status: int, body: bytes | list[bytes | Deferred], content_type: str, headers: tuple = (), close: bool = False
) -> Answer:
    """A response as head and body (or the body's parts), when joining them would cost a large copy."""
    if isinstance(body, list):
        return [_head(status, sum(map(len, body)), content_type, headers, close), *body]
    head = _head(status, len(body), content_type, headers, close)
    return [head, body] if len(body) > JOIN_BYTES else head + body


def _head(status: int, length: int, content_type: str, headers: tuple, close: bool) -> bytes:
    if not headers:  # nearly every answer: only its length differs from the last one's of its kind
        key = (status, content_type, close)
        around = _HEADS.get(key)
        if around is None:
            head = _full_head(status, 0, content_type, (), close)
            at = head.index(b"Content-Length: 0") + len(b"Content-Length: ")
            around = _HEADS[key] = (head[:at], head[at + 1 :])
        return b"%s%d%s" % (around[0], length, around[1])
    return _full_head(status, length, content_type, headers, close)


_HEADS: dict[tuple[int, str, bool], tuple[bytes, bytes]] = {}  # a handful: the statuses and types answered


def _full_head(status: int, length: int, content_type: str, headers: tuple, close: bool) -> bytes:
    lines = [
        b"HTTP/1.1 %d %s" % (status, HTTPStatus(status).phrase.encode()),
        b"Server: " + SERVER,
        b"Content-Type: " + content_type.encode(),
        b"Content-Length: %d" % length,
    ]
    lines += [f"{name}: {value}".encode("latin-1") for name, value in headers]
    if close:
        lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n"


def text_response(status: int, message: str, headers: tuple = (), close: bool = True) -> bytes:
    """A complete plain-text HTTP response (closing the connection unless told otherwise)."""
    return response(status, message.encode() + b"\n", "text/plain", headers, close)


_UNDECODED = object()
# The headers on_header reads for every app: the token, the media type, the framing.
_READ_HEADERS = frozenset(
    {b"authorization", b"content-type", b"content-length", b"transfer-encoding", b"content-encoding"}
)


class _Request:
    """One request as its callbacks read it (a plain class: one is made for every request)."""

    __slots__ = ("body", "caller", "decoded", "headers", "keep_alive", "method", "path")

    def __init__(self, caller: Caller) -> None:
        self.method = ""
        self.path = ""
        self.caller: Caller | None = caller
        self.keep_alive = True
        self.body: list[bytes] = []
        self.headers: dict[str, str] = {}  # those the app asked for (App.headers)
        self.decoded: Any = _UNDECODED  # the body, parsed on the loop thread when small enough to look at there


class HTTPCodec(Codec):
    """An HTTP transport: its :class:`App` and the GET routes (:class:`~gateway.web.Site`) it shares."""

    app_class: type[App]
    path = "/"

    def __init__(self, gateway: Gateway) -> None:
        super().__init__(gateway)
        self.app = self.app_class(gateway)
        self.site: Site | None = None  # set once every transport is bound
        self.max_bytes = gateway.services.settings.max_request_bytes

    def session(self, link: Link) -> Session:
        """A parser for one connection."""
        return HTTPSession(link, self)

    def endpoint(self, host: str, port: int, tls: bool) -> str:
        """The URL clients post to."""
        return row(self.name).url(host, port, tls)

    def overloaded(self) -> bytes:
        """503 to a connection over the caps."""
        return text_response(503, "too many connections; try again later", (("Retry-After", "1"),))


class HTTPSession(Session):
    """httptools' callbacks build requests; the head decides, the body is read only if it will be served."""

    def __init__(self, link: Link, codec: HTTPCodec) -> None:
        super().__init__(link)
        self.codec = codec
        self.app = codec.app
        self.parser = httptools.HttpRequestParser(self)
        self.wanted = _READ_HEADERS | self.app.headers  # the headers on_header looks at; others are counted
        # Asked once, not for every request: whether the app checks heads, whether tokens are required.
        self.check_head = None if type(self.app).check_head is App.check_head else self.app.check_head
        self.tokens = link.gateway.services.tokens.required
        self.complete: list[_Request] = []
        self.refusal: Refuse | None = None
        self.on_message_begin()  # the state of the request being read

    def receive(self, data: bytes) -> list[Any]:
        """Parse what arrived; complete requests come out in order."""
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError:
            if self.refusal is None:
                raise
        except httptools.HttpParserUpgrade:
            self.refusal = Refuse("bad_framing", text_response(400, "protocol upgrades are not supported"))
        except httptools.HttpParserError:
            self.refusal = Refuse("parse_error", text_response(400, "malformed HTTP request"))
        if self.refusal is not None:
            raise self.refusal
        complete, self.complete = self.complete, []
        return complete

    # -- httptools callbacks (loop thread) ------------------------------------------
    def on_message_begin(self) -> None:
        """A new request begins: forget the last one's head."""
        self.request = _Request(self.link.caller)
        self.head = self.size = 0  # bytes of head and body read
        self.authorization = ""
        self.content_type = ""
        self.framing = ""  # "encoded": a transfer or content encoding we do not accept
        self.length: int | None = None

    def on_url(self, url: bytes) -> None:
        self._count_head(len(url))
        self.request.path += url.decode("latin-1")

    def on_header(self, name: bytes, value: bytes) -> None:
        self.head += len(name) + len(value)  # counted inline, as _count_head does: this runs for every header
        if self.head > MAX_HEAD_BYTES:
            self._count_head(0)  # refuses
        key = name.lower()
        if key not in self.wanted:
            return
        if key == b"authorization":
            self.authorization = value.decode("latin-1")
        elif key == b"content-type":
            self.content_type = value.decode("latin-1").split(";", 1)[0].strip().lower()
        elif key == b"content-length":
            self.length = int(value) if value.isdigit() else None
        elif key == b"transfer-encoding" or (key == b"content-encoding" and value.lower() != b"identity"):
            self.framing = "encoded"
        if key in self.app.headers:
            self.request.headers[key.decode("latin-1")] = value.decode("latin-1")

    def _count_head(self, size: int) -> None:
        self.head += size
        if self.head > MAX_HEAD_BYTES:
            self._refuse("too_large", text_response(431, "request head too large"))

    def _refuse(self, reason: str, reply: bytes) -> NoReturn:
        self.refusal = Refuse(reason, reply)
        raise self.refusal

    def on_headers_complete(self) -> None:
        request = self.request
        request.method = self.parser.get_method().decode("latin-1")
        request.keep_alive = self.parser.should_keep_alive()
        path = request.path.split("?", 1)[0]
        if request.method in ("GET", "HEAD"):
            if path not in OPEN_PATHS:
                request.caller = self._caller()
            return
        if request.method != "POST" and not (request.method == "DELETE" and self.app.post_only):
            self._refuse("bad_method", text_response(405, "use POST (or GET for the pages)", (("Allow", "GET, POST"),)))
        if path not in self.app.paths:
            self._refuse("not_found", text_response(404, "not found"))
        if self.check_head is not None:
            refusal = self.check_head(request.headers, self.link)
            if refusal is not None:
                self._refuse("bad_origin", refusal)
        caller = request.caller = self._caller() if self.authorization else self.link.caller
        if request.method == "DELETE":
            return  # ends what the caller opened (App.delete): no body to frame
        gateway = self.link.gateway
        if self.content_type not in self.app.accepts:
            accepted = ", ".join(sorted(self.app.accepts))
            self._refuse("content_type", text_response(415, f"send Content-Type: {accepted}"))
        error = gateway.refusal(caller) if self.tokens else None
        if error is not None:
            # Refused before the body is read (RFC 6750): the reply names the scheme and carries the error.
            reply = response(401, self.app.refuse(error), self.app.content_type, (BEARER_CHALLENGE,), close=True)
            self.link.caller = caller
            self._refuse("unauthenticated", reply)
        length = self.length
        if self.framing or length is None:
            self._refuse("bad_framing", text_response(411, "send a plain body with Content-Length"))
        if length > self.codec.max_bytes:
            # The body stays unread: this connection cannot carry another request.
            error = GatewayError(TOO_LARGE, f"request of {length} bytes is over the {self.codec.max_bytes}-byte limit")
            self._refuse("too_large", response(200, self.app.refuse(error), self.app.content_type, close=True))

    def _caller(self) -> Caller:
        """Who sent this request, and the token it presented (``Authorization: Bearer``)."""
        if not self.authorization:
            return self.link.caller
        scheme, _, token = self.authorization.partition(" ")
        return self.link.gateway.identify(self.link.caller, token.strip() if scheme.lower() == "bearer" else "")

    def on_body(self, body: bytes) -> None:
        self.size += len(body)
        if self.size > self.codec.max_bytes:  # Content-Length was checked; this guards anything else
            self._refuse("too_large", text_response(413, "request body too large"))
        self.request.body.append(body)

    def on_message_complete(self) -> None:
        self.complete.append(self.request)

    # -- answering (a worker, or the loop for an instant request) --------------------------------------
    def at_once(self, request: _Request) -> Answer | Later:
        """A small POST whose calls are all instant (parsed here; the parse is kept for handle() when it is
        not), or a DELETE (only a ``post_only`` app takes one; it ends a session): no I/O either."""
        if request.method != "DELETE":
            if request.method != "POST" or sum(map(len, request.body)) > INSTANT_BYTES:
                return LATER
            request.decoded = self.app.decode(
                b"".join(request.body), request.caller or self.link.caller, request.headers
            )
            if not self.app.instant(request.decoded):
                return LATER
        return self.handle(request)

    def handle(self, request: _Request) -> Answer:
        """Answer one complete request."""
        close = not request.keep_alive
        self.close_after = close
        if request.method in ("GET", "HEAD"):
            return self._get(request, close)
        caller = request.caller or self.link.caller
        if request.method == "DELETE":
            ended = self.app.delete(request.headers, caller)
            return response(ended.status, ended.body, self.app.content_type, ended.headers, close=close)
        if request.decoded is _UNDECODED:
            request.decoded = self.app.decode(b"".join(request.body), caller, request.headers)
        answer = self.app.answer(request.decoded, caller)
        if answer is None:
            return response(204, b"", self.app.content_type, close=close)
        if isinstance(answer, Reply):
            return response_parts(answer.status, answer.body, self.app.content_type, answer.headers, close=close)
        return response_parts(200, answer, self.app.content_type, close=close)

    def _get(self, request: _Request, close: bool) -> bytes:
        site = self.codec.site
        if site is None or (self.app.post_only and request.path.split("?", 1)[0] in self.app.paths):
            return text_response(405, "use POST", (("Allow", "POST"),), close)
        if request.path.split("?", 1)[0] not in OPEN_PATHS:
            # The docs page, OpenRPC and metrics describe the methods: closed like introspection.
            caller = request.caller or self.link.caller
            error = self.link.gateway.refusal(caller)
            if error is not None:
                self.link.gateway.refused(caller, "unauthenticated")
                return text_response(401, f"{error}", (BEARER_CHALLENGE,), close)
        status, body, content_type, headers = site.get(request.path, self.app.transport, self.link.local)
        full = response(status, body, content_type, headers, close)
        return full[: len(full) - len(body)] if request.method == "HEAD" else full
