"""An authoritative DNS server on 127.0.0.1 for tests, in the manner of dnspython's nanonameserver.

It serves zone files over UDP and TCP on one free port, follows in-zone
CNAMEs like a real authoritative server, truncates UDP answers that exceed
the client's payload size (so resolvers retry over TCP), answers chosen names
after a delay, and never answers others.
"""

from __future__ import annotations

import socket
import socketserver
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.zone


class Authority:
    """The answering logic: zones in, responses out (no sockets)."""

    def __init__(
        self,
        zones: Iterable[dns.zone.Zone],
        delays: Mapping[str, float],
        blackholes: Iterable[str],
        rebinding: Mapping[str, list[str]] | None = None,
    ) -> None:
        self.zones = sorted(zones, key=lambda z: len(z.origin), reverse=True)
        # Names whose A record changes on every query, as an attacker's DNS rebinding server does.
        self.rebinding = {dns.name.from_text(n): list(a) for n, a in (rebinding or {}).items()}
        self.rebinding_queries = 0
        self.delays = {dns.name.from_text(n): s for n, s in delays.items()}
        self.blackholes = {dns.name.from_text(n) for n in blackholes}
        # Questions by name (lower case, no root dot). A test counts the questions about its own names: a query
        # another test's call sent just before it ended may reach this server while the next test runs.
        self.asked: Counter[str] = Counter()
        self.tcp_queries = 0
        self.blackhole_queries = 0
        self.in_flight = 0
        self.max_in_flight = 0  # the most queries answered at the same moment
        self._lock = threading.Lock()

    def respond(self, wire: bytes) -> dns.message.Message | None:
        """Build the response to one query, or None to stay silent."""
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return None
        if not query.question:
            return None
        question = query.question[0]
        with self._lock:
            self.asked[question.name.to_text(omit_final_dot=True).lower()] += 1
        if question.name in self.blackholes:
            self.blackhole_queries += 1
            return None
        delay = self.delays.get(question.name, 0)
        if delay:
            with self._lock:
                self.in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)
            time.sleep(delay)
            with self._lock:
                self.in_flight -= 1
        response = dns.message.make_response(query)
        if question.name in self.rebinding and question.rdtype == dns.rdatatype.A:
            with self._lock:
                addresses = self.rebinding[question.name]
                address = addresses[self.rebinding_queries % len(addresses)]
                self.rebinding_queries += 1
            response.answer.append(dns.rrset.from_text(question.name, 0, "IN", "A", address))
            return response
        zone = next((z for z in self.zones if question.name.is_subdomain(z.origin)), None)
        if zone is None:
            response.set_rcode(dns.rcode.REFUSED)
            return response
        response.flags |= dns.flags.AA
        self._answer(zone, question.name, question.rdtype, response)
        return response

    def questions(self, about: Callable[[str], bool]) -> int:
        """How many questions so far were about a name that ``about`` accepts."""
        with self._lock:
            return sum(count for name, count in self.asked.items() if about(name))

    def _answer(self, zone: dns.zone.Zone, name: dns.name.Name, rdtype: int, response: dns.message.Message) -> None:
        for _ in range(16):  # CNAME chain length bound
            node = zone.get_node(name)
            if node is None:
                if not any(n.is_subdomain(name) for n in zone.nodes):
                    if not response.answer:
                        response.set_rcode(dns.rcode.NXDOMAIN)
                    self._soa(zone, response)
                    return
                self._soa(zone, response)  # empty non-terminal: the name exists, without records
                return
            found = node.get_rdataset(dns.rdataclass.IN, rdtype)
            if found is not None:
                response.answer.append(self._rrset(name, found))
                return
            cname = node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.CNAME)
            if cname is None or rdtype == dns.rdatatype.CNAME:
                self._soa(zone, response)
                return
            response.answer.append(self._rrset(name, cname))
            name = cname[0].target
            if not name.is_subdomain(zone.origin):
                return

    @staticmethod
    def _rrset(name: dns.name.Name, rdataset) -> dns.rrset.RRset:
        rrset = dns.rrset.RRset(name, rdataset.rdclass, rdataset.rdtype)
        rrset.update(rdataset)
        return rrset

    def _soa(self, zone: dns.zone.Zone, response: dns.message.Message) -> None:
        soa = zone.get_rdataset(zone.origin, dns.rdatatype.SOA)
        if soa is not None:
            response.authority.append(self._rrset(zone.origin, soa))


class _UDP(socketserver.ThreadingMixIn, socketserver.UDPServer):
    daemon_threads = True
    allow_reuse_address = True

    def server_bind(self) -> None:
        # A burst waits, not dropped: this thread starts a thread per query while sharing the GIL with the tests'
        # clients, and with the kernel's default buffer the soak's bursts overflowed it (RcvbufErrors in
        # /proc/net/snmp), each lost query a lookup that waited out dnspython's 2 s retry, past the 2 s limit.
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        super().server_bind()


class _TCP(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True


class DNSServer:
    """UDP and TCP listeners on one port of 127.0.0.1 serving an :class:`Authority`."""

    def __init__(self, authority: Authority) -> None:
        self.authority = authority
        self.rewrite: Callable[[bytes], bytes] = bytes  # what a test does to each answer on its way out
        outer = self

        class UDPHandler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                wire, sock = self.request
                response = outer.authority.respond(wire)
                if response is None:
                    return
                sock.sendto(outer.rewrite(_udp_wire(response)), self.client_address)

        class TCPHandler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                self.request.settimeout(5)
                try:
                    while True:
                        head = _recv_exact(self.request, 2)
                        if not head:
                            return
                        outer.authority.tcp_queries += 1
                        response = outer.authority.respond(_recv_exact(self.request, struct.unpack("!H", head)[0]))
                        if response is not None:
                            wire = outer.rewrite(response.to_wire())
                            self.request.sendall(struct.pack("!H", len(wire)) + wire)
                except OSError:
                    return

        for _ in range(20):  # find a port free for both UDP and TCP
            self.udp = _UDP(("127.0.0.1", 0), UDPHandler)
            self.port = self.udp.server_address[1]
            try:
                self.tcp = _TCP(("127.0.0.1", self.port), TCPHandler)
                break
            except OSError:
                self.udp.server_close()
        else:
            raise RuntimeError("no free port for the test DNS server")
        self._threads = [
            threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
            for s in (self.udp, self.tcp)
        ]
        for t in self._threads:
            t.start()

    @property
    def address(self) -> str:
        """``HOST:PORT`` as the gateway's --nameserver flag takes it."""
        return f"127.0.0.1:{self.port}"

    def close(self) -> None:
        """Stop both listeners."""
        for server in (self.udp, self.tcp):
            server.shutdown()
            server.server_close()


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            return b""
        data += chunk
    return data


def _udp_wire(response: dns.message.Message) -> bytes:
    """Wire form limited to the client's UDP payload size; TC set when it does not fit."""
    limit = max(512, response.request_payload or 512) if response.edns >= 0 else 512
    try:
        return response.to_wire(max_size=limit)
    except dns.exception.TooBig:
        response.answer.clear()
        response.authority.clear()
        response.additional.clear()
        response.flags |= dns.flags.TC
        return response.to_wire()
