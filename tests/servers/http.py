"""Local HTTP and HTTPS servers with the responses fetch_url has to cope with.

The TLS handshake runs in the connection's own thread (not in accept), with a
timeout, so one silent client cannot stall the others.
"""

from __future__ import annotations

import base64
import bz2
import functools
import gzip
import json
import random
import socket
import ssl
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

TEXT = "hello from the test server\n"
BIG_SIZE = 2 * 1024 * 1024
# Text every encoder has to work at: both quotes, backslashes, non-ASCII of two to four bytes, newlines.
LONG_TEXT_LINE = 'It\'s "quoted" and back\\slashed: naïve café ✓ 日本語 𝄞\n'


def long_text(chars: int) -> str:
    """``chars`` characters of :data:`LONG_TEXT_LINE` repeated."""
    return (LONG_TEXT_LINE * (chars // len(LONG_TEXT_LINE) + 1))[:chars]


BOMB = gzip.compress(b"\0" * (64 * 1024 * 1024), compresslevel=9)  # 64 MiB of zeros in ~64 KB
GZIP_TEXT = "compressed " * 1000


@functools.cache
def _codec_bomb(name: str) -> bytes:
    """A small body (bz2: 83 bytes, zlib: 64 KB) that inflates to 64 MiB with the codec ``name``, compressed a MiB at a
    time and once: this server runs in the tests' process, whose peak memory a test of this body measures."""
    compressor = bz2.BZ2Compressor() if name == "bz2" else zlib.compressobj()
    mib = b"A" * (1024 * 1024)
    return b"".join(compressor.compress(mib) for _ in range(64)) + compressor.flush()


class Handler(BaseHTTPRequestHandler):
    """Routes by path; see ``ROUTES`` below."""

    protocol_version = "HTTP/1.1"
    server_version = "TestServer/1.0"
    sys_version = ""

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        path = parts.path
        for prefix, route in ROUTES:
            if path == prefix or (len(prefix) > 1 and prefix.endswith("/") and path.startswith(prefix)):
                try:
                    route(self, path[len(prefix) :], query)
                except (BrokenPipeError, ConnectionResetError, ssl.SSLError, TimeoutError):
                    self.close_connection = True
                return
        self.send(404, b"not found\n")

    def send(
        self, status: int, body: bytes, content_type: str = "text/plain; charset=utf-8", headers: tuple = ()
    ) -> None:
        """Send a complete response."""
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    # -- routes ---------------------------------------------------------------
    def text(self, _: str, __: dict) -> None:
        self.send(200, TEXT.encode())

    def long_text(self, _: str, query: dict) -> None:
        self.send(200, long_text(int(query.get("size", BIG_SIZE))).encode())

    def json_route(self, _: str, __: dict) -> None:
        self.send(200, json.dumps({"ok": True, "items": [1, 2, 3]}).encode(), "application/json")

    def echo_headers(self, _: str, __: dict) -> None:
        self.send(200, json.dumps({k.lower(): v for k, v in self.headers.items()}).encode(), "application/json")

    def status(self, rest: str, _: dict) -> None:
        code = int(rest)
        self.send(code, f"status {code}\n".encode())

    def redirect(self, rest: str, query: dict) -> None:
        n = int(rest or 0)
        self.send(302, b"", headers=(("Location", f"/redirect/{n - 1}" if n > 1 else "/text"),))

    def redirect_to(self, _: str, query: dict) -> None:
        self.send(int(query.get("status", 302)), b"", headers=(("Location", query["url"]),))

    def loop(self, _: str, __: dict) -> None:
        self.send(302, b"", headers=(("Location", "/loop"),))

    def big(self, _: str, query: dict) -> None:
        size = int(query.get("size", BIG_SIZE))
        if query.get("noise"):  # text that does not compress (an RPyC frame is compressed on the way out)
            self.send(200, base64.b64encode(random.Random(size).randbytes(size))[:size])
            return
        self.send(200, (b"0123456789abcdef" * (size // 16 + 1))[:size])

    def gzip_route(self, _: str, __: dict) -> None:
        self.send(200, gzip.compress(GZIP_TEXT.encode()), headers=(("Content-Encoding", "gzip"),))

    def deflate(self, _: str, query: dict) -> None:
        raw = query.get("raw") == "1"
        z = zlib.compressobj(wbits=-zlib.MAX_WBITS if raw else zlib.MAX_WBITS)
        self.send(200, z.compress(GZIP_TEXT.encode()) + z.flush(), headers=(("Content-Encoding", "deflate"),))

    def bomb(self, _: str, __: dict) -> None:
        self.send(200, BOMB, "application/octet-stream", headers=(("Content-Encoding", "gzip"),))

    def binary(self, _: str, __: dict) -> None:
        self.send(200, bytes(range(256)), "application/octet-stream")

    def controls_in_head(self, _: str, __: dict) -> None:
        """Control characters a terminal would act on, in the reason phrase and in headers (h11 lets them by)."""
        self.send_response(200, "Fine\x07")
        self.send_header("X-Paint", "\x1b[31mred\x1b[0m")
        self.send_header("Content-Type", "text/plain; x=\x01")
        self.send_header("Content-Length", "2")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(b"ok")

    def control_chars(self, _: str, __: dict) -> None:
        self.send(200, b"text with a \x01 control character", "text/plain")

    def hostile_charset(self, _: str, query: dict) -> None:
        """A body in a "charset" that is a compressor or a slow codec: a bomb if decoded with it."""
        name = query.get("name", "bz2")
        if name in ("bz2", "zlib"):
            body = _codec_bomb(name)
        else:
            body = b"a" * 600_000 + b"-" + b"b" * 100  # punycode decodes this in quadratic time
        self.send(200, body, f"text/plain; charset={name}")

    def latin1(self, _: str, __: dict) -> None:
        self.send(200, "café crème".encode("latin-1"), "text/plain; charset=iso-8859-1")

    def repeated(self, _: str, __: dict) -> None:
        self.send(
            200, b"ok", headers=(("X-Multi", "one"), ("X-Multi", "two"), ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"))
        )

    def slow(self, _: str, query: dict) -> None:
        """Headers at once, then a byte every ``every`` seconds: a body that trickles for a minute."""
        every = float(query.get("every", 0.1))
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", "600")
        self.end_headers()
        for _ in range(600):
            self.wfile.write(b".")
            self.wfile.flush()
            time.sleep(every)

    def reset(self, _: str, __: dict) -> None:
        """Headers and part of the body, then a TCP reset."""
        import struct

        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", "100000")
        self.end_headers()
        self.wfile.write(b"partial body")
        self.wfile.flush()
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True

    def endless(self, _: str, __: dict) -> None:
        """A chunked body that never ends (until the client goes away)."""
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        chunk = b"x" * 65536
        while True:
            self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")

    def chunked(self, _: str, __: dict) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for part in (b"chunk one, ", b"chunk two"):
            self.wfile.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
        self.wfile.write(b"0\r\n\r\n")


ROUTES = [
    ("/text", Handler.text),
    ("/", Handler.text),
    ("/json", Handler.json_route),
    ("/echo-headers", Handler.echo_headers),
    ("/status/", Handler.status),
    ("/redirect/", Handler.redirect),
    ("/redirect-to", Handler.redirect_to),
    ("/loop", Handler.loop),
    ("/big", Handler.big),
    ("/long-text", Handler.long_text),
    ("/gzip", Handler.gzip_route),
    ("/deflate", Handler.deflate),
    ("/bomb", Handler.bomb),
    ("/binary", Handler.binary),
    ("/control", Handler.control_chars),
    ("/controls-in-head", Handler.controls_in_head),
    ("/latin1", Handler.latin1),
    ("/charset", Handler.hostile_charset),
    ("/headers", Handler.repeated),
    ("/slow", Handler.slow),
    ("/chunked", Handler.chunked),
    ("/reset", Handler.reset),
    ("/endless", Handler.endless),
]


class Server(ThreadingHTTPServer):
    """A threaded HTTP server on 127.0.0.1; with ``tls`` set, HTTPS with the handshake per thread."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.tls = tls
        super().__init__(("127.0.0.1", 0), Handler)
        self.port = self.server_address[1]
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def finish_request(self, request: socket.socket, client_address: tuple) -> None:  # type: ignore[override]
        request.settimeout(10)
        if self.tls is not None:
            try:
                request = self.tls.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError):
                request.close()
                return
        self.RequestHandlerClass(request, client_address, self)

    def close(self) -> None:
        """Stop serving and close the listening socket."""
        self.shutdown()
        self.server_close()
