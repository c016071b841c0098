"""DNS operations: resolve, reverse_lookup, dns_query, mx_lookup.

They only talk to the configured resolvers and report addresses as they are;
the target policy applies to operations that connect, not to these. They are
coroutines: they run on the loop their queries are sent from, and a multicall
of them runs there together, with no thread of its own each.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal, TypedDict

import dns.rdatatype

from gateway.context import Context
from gateway.errors import CONNECTION_FAILED, INVALID_ARGUMENT, NOT_FOUND, TIMEOUT, GatewayError
from gateway.names import at_once, strip_dot, together
from gateway.policy import IPAddress, ip_literal
from gateway.registry import operation

__all__ = ["dns_query", "mx_lookup", "resolve", "reverse_lookup"]

LOOKUP_ERRORS = (INVALID_ARGUMENT, NOT_FOUND, TIMEOUT, CONNECTION_FAILED)

# Fan-out bounds: a domain anyone can publish must not turn one call into thousands of queries (NXNS-style
# amplification through our resolver). mx_lookup: 1 MX query, then A and AAAA for at most MAX_EXCHANGES
# exchanges, at most 1 + 2 * MAX_EXCHANGES queries. reverse_lookup: 1 PTR query, then forward lookups for at
# most MAX_PTR_NAMES names, at most 1 + 2 * MAX_PTR_NAMES.
MAX_EXCHANGES = 10
MAX_PTR_NAMES = 4

# The record types dns_query answers; dnspython knows more, these are the ones people ask for.
RDTYPES = (
    "A", "AAAA", "CAA", "CDNSKEY", "CDS", "CNAME", "DNAME", "DNSKEY", "DS", "HINFO", "HTTPS", "LOC", "MX",
    "NAPTR", "NS", "NSEC", "NSEC3PARAM", "OPENPGPKEY", "PTR", "RRSIG", "SMIMEA", "SOA", "SPF", "SRV", "SSHFP",
    "SVCB", "TLSA", "TXT", "URI",
)  # fmt: skip


class Address(TypedDict):
    """One address of a host."""

    family: Annotated[str, "ipv4 or ipv6"]
    address: str


class ResolveResult(TypedDict):
    """Addresses of a host name."""

    host: str
    canonical_name: Annotated[str, "end of the CNAME chain; empty if unknown"]
    addresses: list[Address]
    elapsed_ms: float


class ReverseResult(TypedDict):
    """PTR name of an address and whether it resolves back."""

    address: str
    hostname: Annotated[str, "PTR name; empty if none"]
    forward_confirmed: Annotated[bool, "the hostname resolves back to the address"]
    elapsed_ms: float


class Record(TypedDict):
    """One resource record in presentation form."""

    name: str
    type: str
    ttl: int
    data: Annotated[str, "zone-file presentation form (dnspython to_text)"]


class QueryResult(TypedDict):
    """Answer to a raw DNS query."""

    name: str
    rdtype: str
    answers: list[Record]
    canonical_name: str
    elapsed_ms: float


class MailExchange(TypedDict):
    """One place mail for the domain goes."""

    preference: int
    exchange: Annotated[str, "as published in the MX record, no trailing dot"]
    addresses: Annotated[list[str], "IPv4 first; empty when the exchange has none"]


class MxResult(TypedDict):
    """Where mail for a domain goes (RFC 5321 section 5.1)."""

    domain: str
    mx: list[MailExchange]
    implicit: Annotated[bool, "no MX records: the domain's own address is the implicit MX"]
    null_mx: Annotated[bool, "the domain publishes a null MX (RFC 7505): it accepts no mail"]
    cname_chain: Annotated[list[str], "CNAME targets followed from the queried name"]
    elapsed_ms: float
    truncated: Annotated[bool, f"more than {MAX_EXCHANGES} MX records: mx holds the {MAX_EXCHANGES} most preferred"]


@operation(errors=LOOKUP_ERRORS, example={"host": "example.com"})
async def resolve(
    ctx: Context,
    host: Annotated[str, "host name or IP address"],
    family: Annotated[Literal["any", "ipv4", "ipv6"], "which address families to return"] = "any",
) -> ResolveResult:
    """Look up the addresses of a host name, as the host's resolver (or the configured nameservers) would."""
    ip = ip_literal(host)
    if ip is not None:
        fam = f"ipv{ip.version}"
        found = [{"family": fam, "address": str(ip)}] if family in ("any", fam) else []
        return {"host": host, "canonical_name": "", "addresses": found}  # type: ignore[typeddict-item]
    canonical, found_pairs = await ctx.names.addresses(host, ctx.deadline, family)
    addresses = [{"family": f, "address": a} for f, a in found_pairs]
    return {"host": host, "canonical_name": canonical, "addresses": addresses}  # type: ignore[typeddict-item]


# What looking up a name a DNS answer gave (a PTR name, an exchange) ends in when that name is no host: it does not
# exist, or it is no domain name at all (a NUL, a space): the answer's fault, not the caller's input.
NO_HOST = (NOT_FOUND, INVALID_ARGUMENT)


async def _resolving_back(ctx: Context, name: str, ip: IPAddress) -> str:
    """``name`` when it has ``ip`` among its addresses, else "" (a name that is no host too)."""
    try:
        _, forward = await ctx.names.addresses(name, ctx.deadline)
    except GatewayError as exc:
        if exc.code not in NO_HOST:
            raise
        return ""
    return name if any(ip_literal(a) == ip for _, a in forward) else ""


@operation(errors=(INVALID_ARGUMENT, TIMEOUT, CONNECTION_FAILED), example={"address": "1.1.1.1"})  # no PTR: a result
async def reverse_lookup(ctx: Context, address: Annotated[str, "IPv4 or IPv6 address"]) -> ReverseResult:
    """Find the PTR name of an address and check that the name resolves back to it (forward-confirmed reverse DNS).

    At most 4 PTR names are looked up forward, at once (one PTR query, then at most 8); the first to resolve back
    is the hostname.
    """
    ip = ip_literal(address)
    if ip is None:
        raise GatewayError(INVALID_ARGUMENT, f"{address[:100]!r} is not an IP address")
    names = await ctx.names.reverse(str(ip), ctx.deadline)
    # Every name is looked up forward at once (one round trip, not one per name), and the first to resolve back
    # is the answer: a name that never answers does not hold up one that does (DNS servers shuffle a PTR
    # answer's order, so no name comes first). A failed lookup is the error only if no name resolves back.
    candidates = names[:MAX_PTR_NAMES]
    failure: GatewayError | None = None
    async with at_once([_resolving_back(ctx, name, ip) for name in candidates]) as asked:
        for finished in asyncio.as_completed(asked):
            try:
                confirmed = await finished
            except GatewayError as exc:
                failure = failure or exc
                continue
            if confirmed:
                return {"address": str(ip), "hostname": confirmed, "forward_confirmed": True}  # type: ignore[typeddict-item]
    if failure is not None:
        raise failure
    hostname = names[0] if names else ""
    return {"address": str(ip), "hostname": hostname, "forward_confirmed": False}  # type: ignore[typeddict-item]


@operation(errors=LOOKUP_ERRORS, example={"name": "example.com", "rdtype": "TXT"})
async def dns_query(
    ctx: Context,
    name: Annotated[str, "domain name to query"],
    rdtype: Annotated[str, "record type: " + ", ".join(RDTYPES)] = "A",
) -> QueryResult:
    """Send one DNS query and return the records of that type (and any CNAMEs followed to reach them)."""
    kind = rdtype.upper()
    if kind not in RDTYPES:
        raise GatewayError(
            INVALID_ARGUMENT, f"unsupported record type {rdtype[:20]!r}; use one of {', '.join(RDTYPES)}"
        )
    lookup = await ctx.names.query(name, kind, ctx.deadline)
    rrsets = [*lookup.cnames, *([lookup.rrset] if lookup.rrset is not None else [])]
    answers = [
        {"name": strip_dot(rrset.name), "type": _type_text(rrset.rdtype), "ttl": rrset.ttl, "data": rd.to_text()}
        for rrset in rrsets
        for rd in rrset
    ]
    return {"name": name, "rdtype": kind, "answers": answers, "canonical_name": lookup.canonical_name}  # type: ignore[typeddict-item]


@operation(errors=LOOKUP_ERRORS, example={"domain": "example.com"})
async def mx_lookup(ctx: Context, domain: Annotated[str, "mail domain"]) -> MxResult:
    """Find where mail for a domain goes (RFC 5321 5.1): MX by preference, else the implicit MX; null MX (RFC 7505).

    At most the 10 most preferred exchanges are listed and looked up (one MX query, then at most 20, at once).
    """
    lookup = await ctx.names.query(domain, "MX", ctx.deadline)
    result = {"domain": domain, "mx": [], "implicit": False, "null_mx": False, "cname_chain": lookup.cname_chain}
    records = sorted((rd.preference, strip_dot(rd.exchange)) for rd in lookup.rrset or ())
    result["truncated"] = len(records) > MAX_EXCHANGES
    records = records[:MAX_EXCHANGES]
    if any(exchange == "." for _, exchange in records):
        result["null_mx"] = True  # RFC 7505: "0 ." means the domain accepts no mail
    elif records:  # every exchange's addresses at once: one round trip, not one per exchange
        found = await together([_exchange_addresses(ctx, exchange) for _, exchange in records])
        result["mx"] = [
            {"preference": p, "exchange": e, "addresses": a} for (p, e), a in zip(records, found, strict=True)
        ]
    else:
        # RFC 5321 5.1: no MX records, so the domain itself (its canonical name) is the implicit MX.
        addresses = await _exchange_addresses(ctx, lookup.canonical_name)
        if addresses:
            result["implicit"] = True
            result["mx"] = [{"preference": 0, "exchange": lookup.canonical_name, "addresses": addresses}]
    return result  # type: ignore[return-value]


async def _exchange_addresses(ctx: Context, exchange: str) -> list[str]:
    """Addresses of a mail exchange through DNS, IPv4 first; [] when it does not exist."""
    try:
        _, found = await ctx.names.dns_addresses(exchange, ctx.deadline)
    except GatewayError as exc:
        if exc.code in NO_HOST:
            return []
        raise
    return [address for _, address in found]


def _type_text(rdtype: int) -> str:
    return dns.rdatatype.to_text(dns.rdatatype.RdataType.make(rdtype))
