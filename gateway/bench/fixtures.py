"""Local servers the benchmark measures against: a DNS server that answers after a delay, a web page.

Both listen on 127.0.0.1 on free ports and answer concurrently (a thread per
request), so the time measured is the gateway's, not a queue in front of them.
"""

from __future__ import annotations

import base64
import collections
import random
import select
import socket
import socketserver
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import cast

import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset

__all__ = ["LARGE_BYTES", "PAGE_BYTES", "SlowDNS", "WebPage"]

PAGE_BYTES = 256 * 1024
LARGE_BYTES = 10 * 1024 * 1024  # a fetch_url at the default max_body_bytes
ZONE = "bench.test."


MADE_ANSWERS = 1024  # answers SlowDNS keeps, one per query (the network workload asks 300: 100 names, 3 types)


class SlowDNS:
    """Answers every query under ``bench.test.`` ``delay`` seconds after it arrives: MX 10 mx.bench.test,
    A 127.0.0.1.

    One thread and a queue of answers due: a thread per query would make the server itself the bottleneck
    of a burst (starting hundreds of threads), and the burst's time would be the fixture's, not the gateway's.
    """

    def __init__(self, delay: float = 0.05) -> None:
        self.delay = delay
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)  # a burst waits, not dropped
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.asked = 0  # queries received
        self._closed = False
        threading.Thread(target=self._serve, name="slow-dns", daemon=True).start()

    def _serve(self) -> None:
        due: collections.deque[tuple[float, bytes, tuple[str, int]]] = collections.deque()
        # Answers by query, but for its 2-byte ID: made by dnspython once (~0.3 ms of CPU each), then only
        # given the new ID. Otherwise this one thread spent ~90 ms answering the 300 queries of a multicall
        # of 100 mx_lookups, and its answers came late by that much: the fixture's time, not the gateway's.
        made: dict[bytes, bytes] = {}
        while not self._closed:
            timeout = max(0.0, due[0][0] - time.monotonic()) if due else 0.1
            try:
                readable, _, _ = select.select([self.sock], [], [], timeout)
                if readable:
                    wire, client = self.sock.recvfrom(65535)
                    self.asked += 1
                    reply = made.get(wire[2:])
                    if reply is None:
                        try:
                            reply = answer(dns.message.from_wire(wire)).to_wire()
                        except dns.exception.DNSException:
                            continue
                        if len(made) < MADE_ANSWERS:
                            made[wire[2:]] = reply
                    due.append((time.monotonic() + self.delay, wire[:2] + reply[2:], client))
                while due and due[0][0] <= time.monotonic():
                    _, reply, client = due.popleft()
                    self.sock.sendto(reply, client)
            except OSError:
                return  # closed

    @property
    def address(self) -> str:
        """``HOST:PORT`` for --nameserver."""
        return f"127.0.0.1:{self.port}"

    def close(self) -> None:
        """Stop answering."""
        self._closed = True
        self.sock.close()


def _serve(server: socketserver.BaseServer) -> tuple[socketserver.BaseServer, int]:
    """Serve on a daemon thread; return the server and its port."""
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
    address = cast(tuple[str, int], server.server_address)  # type: ignore[attr-defined]  # a TCP server's
    return server, address[1]


def _stop(server: socketserver.BaseServer) -> None:
    server.shutdown()
    server.server_close()


def answer(query: dns.message.Message) -> dns.message.Message:
    """MX and A records for any name in the zone, nothing else; REFUSED outside it."""
    response = dns.message.make_response(query)
    response.flags |= dns.flags.AA
    question = query.question[0]
    if not question.name.to_text().endswith(ZONE):
        response.set_rcode(dns.rcode.REFUSED)
    elif question.rdtype == dns.rdatatype.MX:
        response.answer.append(dns.rrset.from_text(question.name, 60, "IN", "MX", "10 mx.bench.test."))
    elif question.rdtype == dns.rdatatype.A:
        response.answer.append(dns.rrset.from_text(question.name, 60, "IN", "A", "127.0.0.1"))
    return response


class WebPage:
    """Serves a 256 KiB text page at ``/page``, and 10 MiB of the same kind at ``/large`` (keep-alive, Nagle off).

    The text is random base64, so a transport that compresses (RPyC does) cannot shrink it to nothing:
    bytes on the wire stay comparable across transports.
    """

    def __init__(self) -> None:
        large = base64.b64encode(random.Random(12).randbytes(LARGE_BYTES))[:LARGE_BYTES]
        pages = {"/page": large[:PAGE_BYTES], "/large": large}

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                body = pages.get(self.path, b"")
                self.send_response(200 if body else 404)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 128

        self.server, self.port = _serve(Server(("127.0.0.1", 0), Handler))

    @property
    def url(self) -> str:
        """The page's URL."""
        return f"http://127.0.0.1:{self.port}/page"

    @property
    def large_url(self) -> str:
        """The 10 MiB page's URL."""
        return f"http://127.0.0.1:{self.port}/large"

    def close(self) -> None:
        """Stop serving."""
        _stop(self.server)
