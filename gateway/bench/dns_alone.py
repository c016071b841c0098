"""The floor under a multicall of slow mx_lookups: its DNS queries sent through dnspython alone, on the event loop
the gateway sends them from, with no gateway around them.

The gateway runs its DNS operations, and sends every query of the process, on one event loop
(:data:`gateway.eventloop.DNS_LOOP`), so a multicall of 100 mx_lookups is 300 queries made, sent, read and parsed by
dnspython on one thread. Measured here the same way, the difference to the gateway's multicall is what the gateway
adds: the calls and the transport.
``python -m gateway.bench.dns_alone HOST:PORT LOOKUPS ROUNDS`` prints the figures as JSON.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from typing import Any

import dns.asyncbackend
import dns.asyncresolver
import dns.name
import dns.nameserver
import dns.resolver

from gateway.config import Settings
from gateway.eventloop import new_event_loop
from gateway.ops.dns import MAX_EXCHANGES
from gateway.server import settle_collector

__all__ = ["measure", "mx_domains"]

_ASYNCIO = dns.asyncbackend.get_backend("asyncio")
LIFETIME = Settings().timeout  # the deadline the gateway gives an operation's queries by default


def mx_domains(lookups: int) -> list[str]:
    """The domains a benchmark multicall looks up (the DNS fixture answers every one)."""
    return [f"d{i}.bench.test" for i in range(lookups)]


async def _ask(resolver: dns.asyncresolver.Resolver, name: dns.name.Name, rdtype: str) -> dns.resolver.Answer:
    return await resolver.resolve(
        name, rdtype, lifetime=LIFETIME, raise_on_no_answer=False, search=False, backend=_ASYNCIO
    )


async def _mx_lookup(resolver: dns.asyncresolver.Resolver, domain: str) -> None:
    """mx_lookup's queries: the MX, then every exchange's A and AAAA at once."""
    answer = await _ask(resolver, dns.name.from_text(domain), "MX")
    exchanges = sorted((rd.preference, rd.exchange) for rd in answer.rrset or ())[:MAX_EXCHANGES]
    await asyncio.gather(*(_ask(resolver, exchange, rdtype) for _, exchange in exchanges for rdtype in ("A", "AAAA")))


async def _measure(host: str, port: int, lookups: int, rounds: int) -> dict[str, Any]:
    resolver = dns.asyncresolver.Resolver(configure=False)
    resolver.nameservers = [dns.nameserver.Do53Nameserver(host, port)]
    domains = mx_domains(lookups)
    await asyncio.gather(*(_mx_lookup(resolver, d) for d in domains))  # not measured, as for the gateway
    seconds, cpu = [], time.process_time()
    for _ in range(rounds):
        began = time.perf_counter()
        await asyncio.gather(*(_mx_lookup(resolver, d) for d in domains))
        seconds.append(round(time.perf_counter() - began, 3))
    return {
        "multicall_s": statistics.median_low(seconds),
        "multicall_rounds_s": seconds,
        "multicall_cpu_s": round((time.process_time() - cpu) / rounds, 3),
    }


def measure(nameserver: str, lookups: int = 100, rounds: int = 1) -> dict[str, Any]:
    """The seconds (median of ``rounds``) and CPU seconds of ``lookups`` mx_lookups' queries, all at once, with
    the garbage collector set as the gateway's server sets it (a floor under the gateway, not under Python's
    defaults)."""
    settle_collector()
    host, _, port = nameserver.rpartition(":")
    loop = new_event_loop()
    try:
        return loop.run_until_complete(_measure(host, int(port), lookups, rounds))
    finally:
        loop.close()


if __name__ == "__main__":
    print(json.dumps(measure(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))))
