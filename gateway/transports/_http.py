"""The HTTP/1.1 server under XML-RPC and JSON-RPC: threaded, keep-alive, Nagle off, bodies capped before reading.

The stdlib's defaults run JSON-RPC at ~23 calls/s (Nagle plus delayed ACK
hold every small response ~40 ms), so responses are buffered and flushed in
one write with TCP_NODELAY; request bodies are refused by Content-Length
before a byte of them is read.
"""

from __future__ import annotations

import logging
import socket
from abc import ABC, abstractmethod
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from gateway.config import Settings
from gateway.core import Gateway
from gateway.errors import TOO_LARGE, GatewayError
from gateway.observe import Caller
from gateway.transports._secure import open_connection, server_context
from gateway.transports._watchdog import WATCHDOG
from gateway.transports.base import Transport

if TYPE_CHECKING:
    from gateway.web import Site

__all__ = ["App", "HTTPTransport", "RPCHTTPServer"]

log = logging.getLogger("gateway.http")


class App(ABC):
    """What an HTTP transport plugs in: its paths, content type and request handler."""

    paths: frozenset[str] = frozenset()
    content_type = "application/octet-stream"
    # Media types a request may declare. Anything else is refused (415): a web page can post only
    # text/plain, form data or multipart to another origin without a CORS preflight, so this keeps
    # pages a visitor's browser loads from calling a gateway that browser can reach.
    accepts: frozenset[str] = frozenset()

    gateway: Gateway
    transport = ""

    @abstractmethod
    def handle(self, body: bytes, caller: Caller) -> bytes | None:
        """Answer one request body; None means no response body (HTTP 204)."""

    @abstractmethod
    def refuse(self, error: GatewayError) -> bytes:
        """A transport-native error for a request refused before it was read."""


OPEN_PATHS = frozenset({"/healthz", "/readyz"})  # what load balancers probe: answered without a token
BEARER_CHALLENGE = ("WWW-Authenticate", 'Bearer realm="netops"')


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    disable_nagle_algorithm = True
    wbufsize = -1  # buffer the response; handle_one_request flushes it in one write
    server_version = "netops-gateway"
    sys_version = ""
    server: RPCHTTPServer

    def setup(self) -> None:
        self.timeout = self.server.idle_timeout  # an idle keep-alive connection is closed after this
        super().setup()

    def handle_one_request(self) -> None:
        # The next request must arrive in full within idle_timeout, however slowly its bytes trickle in.
        WATCHDOG.arm(self.connection, self.server.idle_timeout)
        try:
            super().handle_one_request()
        finally:
            WATCHDOG.disarm(self.connection)

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def caller(self) -> Caller:
        """Who sent this request, and the token it presented (``Authorization: Bearer``)."""
        host, port = self.client_address[:2]
        caller = Caller(self.server.app.transport, f"{host}:{port}")
        authorization = self.headers.get("Authorization")
        if authorization is None:
            return caller
        scheme, _, token = authorization.partition(" ")
        return self.server.app.gateway.identify(caller, token.strip() if scheme.lower() == "bearer" else "")

    def do_POST(self) -> None:
        app = self.server.app
        if self.path.split("?", 1)[0] not in app.paths:
            return self._reply(404, b"not found\n", "text/plain")
        caller = self.caller()
        if self.headers.get_content_type() not in app.accepts:
            app.gateway.refused(caller, "content_type")
            self.close_connection = True
            accepted = ", ".join(sorted(app.accepts))
            return self._reply(415, f"send Content-Type: {accepted}\n".encode(), "text/plain")
        error = app.gateway.refusal(caller)
        if error is not None:
            # Refused before the body is read (RFC 6750): the reply names the scheme and carries the error.
            app.gateway.refused(caller, "unauthenticated")
            self.close_connection = True
            return self._reply(401, app.refuse(error), app.content_type, (BEARER_CHALLENGE,))
        if self.headers.get("Transfer-Encoding") or self.headers.get("Content-Encoding", "identity") != "identity":
            app.gateway.refused(caller, "bad_framing")
            self.close_connection = True
            return self._reply(411, b"send a plain body with Content-Length\n", "text/plain")
        try:
            length = int(self.headers.get("Content-Length", ""))
            if length < 0:
                raise ValueError
        except ValueError:
            app.gateway.refused(caller, "bad_framing")
            self.close_connection = True
            return self._reply(411, b"Content-Length required\n", "text/plain")
        if length > self.server.max_bytes:
            self.close_connection = True  # the body stays unread: this connection cannot carry another request
            error = GatewayError(TOO_LARGE, f"request of {length} bytes is over the {self.server.max_bytes}-byte limit")
            app.gateway.refused(caller, "too_large")
            return self._reply(200, app.refuse(error), app.content_type)
        body = self.rfile.read(length)
        WATCHDOG.disarm(self.connection)  # read in full: the call has its own time limit
        if len(body) < length:
            self.close_connection = True
            return
        answer = app.handle(body, caller)
        if answer is None:
            return self._reply(204, b"", app.content_type)
        self._reply(200, answer, app.content_type)

    def do_GET(self) -> None:
        WATCHDOG.disarm(self.connection)
        site = self.server.site
        if site is None:
            return self._reply(405, b"use POST\n", "text/plain", (("Allow", "POST"),))
        if self.path.split("?", 1)[0] not in OPEN_PATHS:
            # The docs page, OpenRPC and metrics describe the methods: closed like introspection.
            caller = self.caller()
            error = self.server.app.gateway.refusal(caller)
            if error is not None:
                self.server.app.gateway.refused(caller, "unauthenticated")
                return self._reply(401, f"{error}\n".encode(), "text/plain", (BEARER_CHALLENGE,))
        self._reply(*site.get(self.path, self.server.app.transport, self.headers.get("Host", "")))

    def _reply(self, status: int, body: bytes, content_type: str, headers: tuple = ()) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)


class RPCHTTPServer(ThreadingHTTPServer):
    """A thread per connection; daemon threads so a keep-alive client never blocks shutdown."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # the default 5 resets connections under load

    def __init__(self, address: tuple[str, int], app: App, settings: Settings) -> None:
        self.app = app
        self.site: Site | None = None  # the GET routes, set once every transport is bound
        self.max_bytes = settings.max_request_bytes
        self.idle_timeout = settings.idle_timeout
        self.handshake_timeout = settings.handshake_timeout
        self.tls = server_context(settings)
        super().__init__(address, _Handler, bind_and_activate=False)

    def finish_request(self, request: Any, client_address: Any) -> None:
        """Serve one connection on its own thread, after its TLS handshake (never on the accept loop)."""
        if self.tls is None:
            return super().finish_request(request, client_address)
        try:
            conn, _ = open_connection(request, self.tls, False, self.handshake_timeout)
        except (OSError, EOFError, ValueError):
            host, port = client_address[:2]
            self.app.gateway.refused(Caller(self.app.transport, f"{host}:{port}"), "tls_handshake")
            return
        try:
            super().finish_request(conn, client_address)
        finally:
            conn.close()

    def open(self) -> None:
        """Bind and listen (separate from construction so a busy port is reported before anything runs)."""
        try:
            self.server_bind()
            self.server_activate()
        except OSError:
            self.server_close()
            raise

    def handle_error(self, request: socket.socket | tuple[bytes, socket.socket], client_address: object) -> None:
        log.debug("connection from %s ended with an error", client_address, exc_info=True)


class HTTPTransport(Transport):
    """A transport served over :class:`RPCHTTPServer`; subclasses provide the :class:`App`."""

    path = "/"

    def __init__(self, gateway: Gateway, host: str, port: int) -> None:
        super().__init__(gateway, host, port)
        settings = gateway.services.settings
        self.server = RPCHTTPServer((host, port), self.app(), settings)

    @abstractmethod
    def app(self) -> App:
        """The request handler of this protocol."""

    @property
    def port(self) -> int:
        """The bound port."""
        return self.server.server_address[1]

    @property
    def endpoint(self) -> str:
        """The URL clients post to."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        scheme = "https" if self.server.tls else "http"
        return f"{scheme}://{host}:{self.port}{self.path}"

    def bind(self) -> None:
        """Bind and listen."""
        self.server.open()

    def _serve(self) -> None:
        self.server.serve_forever(poll_interval=0.2)

    def stop(self) -> None:
        """Stop the accept loop and close the listener."""
        if self._thread is not None:  # shutdown() waits for a serve loop; one that never ran would never answer
            self.server.shutdown()
        self.server.server_close()
