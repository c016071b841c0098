"""Name resolution: the one place that talks to DNS or the system resolver.

With configured nameservers every lookup goes to them through dnspython
(hermetic, and what an operator who names a resolver expects).  Without them,
address lookups ask the system the way ordinary programs do (getaddrinfo, so
``/etc/hosts`` and ``localhost`` behave as on the host), and raw DNS queries
use the system's ``/etc/resolv.conf`` servers.  dnspython's failures become
the gateway's error codes here, so operations never see them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import socket
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import dns.asyncbackend
import dns.asyncresolver
import dns.exception
import dns.message
import dns.name
import dns.nameserver
import dns.query
import dns.rdatatype
import dns.resolver
import dns.reversename
import dns.rrset

from gateway.errors import CONNECTION_FAILED, INVALID_ARGUMENT, NOT_FOUND, GatewayError
from gateway.eventloop import DNS_LOOP, name_native_thread

if TYPE_CHECKING:
    from gateway.context import Deadline

__all__ = ["Lookup", "Names", "at_once", "dns_name", "strip_dot", "together"]

FAMILIES = {"any": socket.AF_UNSPEC, "ipv4": socket.AF_INET, "ipv6": socket.AF_INET6}
_FAMILY_NAMES = {socket.AF_INET: "ipv4", socket.AF_INET6: "ipv6"}

# getaddrinfo cannot be interrupted, so it runs on these threads and the caller
# stops waiting at its deadline. 16 bounds the threads a hung system resolver can hold.
_GETADDRINFO_POOL = concurrent.futures.ThreadPoolExecutor(
    max_workers=16, thread_name_prefix="getaddrinfo", initializer=name_native_thread
)
T = TypeVar("T")
_ASYNCIO = dns.asyncbackend.get_backend("asyncio")  # named, not sniffed per query: uvloop runs asyncio's API


DNS_THREADS = 1  # threads DNS queries take, however many are asked at once


def strip_dot(name: dns.name.Name | str) -> str:
    """Presentation form of a name without the root's trailing dot."""
    text = name.to_text() if isinstance(name, dns.name.Name) else name
    return text[:-1] if text.endswith(".") and text != "." else text


def dns_name(text: str) -> dns.name.Name:
    """Parse a caller's domain name, or raise ``invalid_argument`` saying why it is not one."""
    if not text or text != text.strip() or any(c in text for c in "\x00/\\@ "):
        raise GatewayError(INVALID_ARGUMENT, f"{text[:100]!r} is not a domain name")
    try:
        return dns.name.from_text(text)
    except (dns.exception.DNSException, UnicodeError, ValueError) as exc:
        raise GatewayError(INVALID_ARGUMENT, f"{text[:100]!r} is not a domain name ({_describe(exc)})") from None


@dataclass(frozen=True)
class Lookup:
    """The outcome of one DNS query: the records of the asked type after following CNAMEs."""

    canonical_name: str
    cnames: list[dns.rrset.RRset]  # the CNAME records followed from the queried name, in order
    rrset: dns.rrset.RRset | None  # None: the name exists but has no records of this type

    @property
    def cname_chain(self) -> list[str]:
        """The CNAME targets followed, in order, not including the queried name."""
        return [strip_dot(rrset[0].target) for rrset in self.cnames]


class Names:
    """Resolver for every lookup the gateway makes."""

    def __init__(self, nameservers: Sequence[tuple[str, int]] | None = None) -> None:
        self.nameservers = list(nameservers) if nameservers else None
        self._lock = threading.Lock()
        self._resolver: dns.asyncresolver.Resolver | None = None
        if self.nameservers:
            resolver = dns.asyncresolver.Resolver(configure=False)
            resolver.nameservers = [dns.nameserver.Do53Nameserver(h, p) for h, p in self.nameservers]
            self._resolver = resolver

    @property
    def system(self) -> bool:
        """True when address lookups go to the system resolver."""
        return self.nameservers is None

    def _dns(self) -> dns.asyncresolver.Resolver:
        if self._resolver is None:
            with self._lock:
                if self._resolver is None:
                    try:
                        self._resolver = dns.asyncresolver.Resolver()
                    except dns.exception.DNSException:
                        raise GatewayError(CONNECTION_FAILED, "no DNS server is configured on the gateway") from None
        return self._resolver

    # Every lookup is a coroutine run on the DNS loop (gateway.eventloop.DNS_LOOP): the DNS operations await
    # them there, and an operation on a thread of its own waits for one (wait_addresses).
    async def query(self, name: str | dns.name.Name, rdtype: str, deadline: Deadline) -> Lookup:
        """Ask the nameservers for ``rdtype`` records of ``name``; NXDOMAIN is ``not_found``."""
        qname = name if isinstance(name, dns.name.Name) else dns_name(name)
        try:
            answer = await self._dns().resolve(
                qname, rdtype, lifetime=deadline.remaining(), raise_on_no_answer=False, search=False, backend=_ASYNCIO
            )
        except dns.resolver.LifetimeTimeout:
            raise deadline.expired() from None
        except dns.exception.DNSException as exc:
            raise _lookup_error(exc, strip_dot(qname), rdtype) from None
        # dnspython followed the CNAMEs already, making the Answer: walking the response again cost a tenth of a
        # query's CPU.
        return Lookup(strip_dot(answer.canonical_name), answer.chaining_result.cnames, answer.rrset)

    async def dns_addresses(
        self, name: str, deadline: Deadline, family: str = "any"
    ) -> tuple[str, list[tuple[str, str]]]:
        """A then AAAA records of ``name`` through DNS: (canonical name, [(family, address)])."""
        qname = dns_name(name)
        wanted = [(fam, rdtype) for fam, rdtype in (("ipv4", "A"), ("ipv6", "AAAA")) if family in ("any", fam)]
        lookups = await together([self.query(qname, rdtype, deadline) for _, rdtype in wanted])  # one round trip
        canonical, found = "", list[tuple[str, str]]()
        for (fam, _), lookup in zip(wanted, lookups, strict=True):
            canonical = canonical or lookup.canonical_name
            found.extend((fam, rd.address) for rd in lookup.rrset or ())
        return canonical, list(dict.fromkeys(found))  # IPv4 first, then IPv6, each in answer order

    async def addresses(self, host: str, deadline: Deadline, family: str = "any") -> tuple[str, list[tuple[str, str]]]:
        """Addresses of a host name (system resolver or configured nameservers)."""
        if not self.system:
            return await self.dns_addresses(host, deadline, family)
        dns_name(host)  # same validation on both paths
        try:
            infos = await _system(
                deadline, socket.getaddrinfo, host, None, FAMILIES[family], socket.SOCK_STREAM, 0, socket.AI_CANONNAME
            )
        except socket.gaierror as exc:
            if exc.errno == socket.EAI_NONAME:
                raise GatewayError(NOT_FOUND, f"no such host: {host}") from None
            if exc.errno in (getattr(socket, "EAI_NODATA", -5), getattr(socket, "EAI_ADDRFAMILY", -9)):
                return "", []
            raise GatewayError(CONNECTION_FAILED, f"cannot resolve {host}: {exc.strerror}") from None
        except UnicodeError:
            raise GatewayError(INVALID_ARGUMENT, f"{host[:100]!r} is not a valid host name") from None
        canonical = next((info[3] for info in infos if info[3]), "")
        found = [(_FAMILY_NAMES[info[0]], str(info[4][0]).split("%")[0]) for info in infos if info[0] in _FAMILY_NAMES]
        return strip_dot(canonical), list(dict.fromkeys(found))

    def wait_addresses(self, host: str, deadline: Deadline) -> tuple[str, list[tuple[str, str]]]:
        """:meth:`addresses`, for an operation running on a thread: it waits while the loop looks them up."""
        seconds = deadline.remaining()  # (first: with none left, no coroutine is made to be left unawaited)
        try:
            return DNS_LOOP.wait(self.addresses(host, deadline), seconds)
        except concurrent.futures.TimeoutError:
            raise deadline.expired() from None

    async def reverse(self, address: str, deadline: Deadline) -> list[str]:
        """PTR names of an address (system resolver or configured nameservers); [] when it has none."""
        if self.system:
            try:
                return [strip_dot((await _system(deadline, socket.getnameinfo, (address, 0), socket.NI_NAMEREQD))[0])]
            except (socket.gaierror, socket.herror):
                return []
        try:
            lookup = await self.query(dns.reversename.from_address(address), "PTR", deadline)
        except GatewayError as exc:
            if exc.code == NOT_FOUND:
                return []
            raise
        return [strip_dot(rd.target) for rd in lookup.rrset or ()]

    def probe(self, timeout: float = 1.0) -> bool:
        """True when the resolver answers at all (any DNS response, even REFUSED, counts)."""
        if self.system:
            future = _GETADDRINFO_POOL.submit(socket.getaddrinfo, "localhost", None)
            try:
                future.result(timeout=timeout)
                return True
            except (concurrent.futures.TimeoutError, OSError):
                return False
        query = dns.message.make_query(".", "NS")
        for host, port in self.nameservers or ():
            try:
                dns.query.udp(query, host, port=port, timeout=timeout)
                return True
            except (dns.exception.DNSException, OSError):
                continue
        return False


@contextlib.asynccontextmanager
async def at_once(lookups: Sequence[Coroutine[Any, Any, T]]) -> AsyncIterator[Sequence[asyncio.Future[T]]]:
    """Start lookups at once, for the block to await in the order it wants; whatever it leaves unawaited (it
    found what it looked for, or one failed) is cancelled when it ends."""
    asked = [asyncio.ensure_future(lookup) for lookup in lookups]
    try:
        yield asked
    finally:
        for lookup in asked:
            if not lookup.done():
                lookup.cancel()  # which may still end in a failure (3.11's wait_for can swallow a cancellation):
                lookup.add_done_callback(_seen)  # it is looked at, not logged as never retrieved
            elif not lookup.cancelled():
                lookup.exception()  # (a failure nobody awaited: looked at too)


async def together(lookups: Sequence[Coroutine[Any, Any, T]]) -> list[T]:
    """Run lookups at once and return their outcomes in order; the first failure met cancels the others (A
    failed: nobody waits for AAAA)."""
    async with at_once(lookups) as asked:
        return [await lookup for lookup in asked]


def _seen(lookup: asyncio.Future[Any]) -> None:
    if not lookup.cancelled():
        lookup.exception()


async def _system(deadline: Deadline, function: Callable[..., T], *args: object) -> T:
    """``function(*args)``, a call into the system's resolver, on the getaddrinfo threads, until ``deadline``."""
    seconds = deadline.remaining()  # (first: with none left, nothing is started that nobody waits for)
    work = asyncio.get_running_loop().run_in_executor(_GETADDRINFO_POOL, functools.partial(function, *args))
    try:
        return await asyncio.wait_for(work, seconds)
    except TimeoutError:
        raise deadline.expired() from None


def _lookup_error(exc: dns.exception.DNSException, name: str, rdtype: str) -> GatewayError:
    """The gateway's error for a query of ``name`` dnspython gave up on."""
    if isinstance(exc, dns.resolver.NXDOMAIN):
        return GatewayError(NOT_FOUND, f"no such domain: {name}")
    if isinstance(exc, dns.resolver.NoNameservers):
        return GatewayError(CONNECTION_FAILED, f"no nameserver gave a usable answer for {name} {rdtype}")
    return GatewayError(CONNECTION_FAILED, f"DNS lookup of {name} {rdtype} failed: {_describe(exc)}")


def _describe(exc: BaseException) -> str:
    """A one-line reason from a dnspython exception, without class names."""
    text = str(exc).strip() or exc.__class__.__doc__ or "error"
    return text.splitlines()[0][:200]
