"""Which destinations the gateway may connect to on a caller's behalf.

The gateway opens connections for remote callers, which makes it a
server-side request forgery (SSRF) target.  By default only globally
routable unicast addresses are allowed; operators open chosen networks with
``allow_targets``.  Host strings are parsed the way the C library would
(``inet_aton`` accepts ``2130706433``, ``0x7f.1`` and ``127.1``), and IPv6
forms that embed an IPv4 address (mapped, compatible, 6to4, Teredo, NAT64) are
judged by the address they embed, so no notation slips past the check.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from gateway.errors import FORBIDDEN_TARGET, GatewayError

__all__ = ["IPAddress", "TargetPolicy", "ip_literal"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_CGNAT = ipaddress.ip_network("100.64.0.0/10")  # RFC 6598; also cloud metadata (100.100.100.200)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052's well-known prefix: the IPv4 address is the low 32 bits
# RFC 8215's local-use prefix: each network picks its own RFC 6052 layout inside it (/48 to /96), so which
# IPv4 address an address reaches cannot be known from outside. Refused whole (allow_targets can open it).
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")


def _inet_aton(text: str) -> ipaddress.IPv4Address | None:
    """Parse IPv4 the way inet_aton(3) does: 1 to 4 parts, decimal, octal (0…) or hex (0x…)."""
    parts = text.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    numbers = []
    for part in parts:
        try:
            if part[:2].lower() == "0x":
                numbers.append(int(part[2:], 16) if part[2:] else 0)
            elif len(part) > 1 and part[0] == "0":
                numbers.append(int(part, 8))
            elif part.isdigit():
                numbers.append(int(part, 10))
            else:
                return None
        except ValueError:
            return None
    *head, last = numbers
    if any(n > 255 for n in head) or last >= 256 ** (5 - len(numbers)):
        return None
    value = last
    for i, n in enumerate(head):
        value |= n << (24 - 8 * i)
    return ipaddress.IPv4Address(value)


def ip_literal(host: str) -> IPAddress | None:
    """Return the address a host string denotes literally, or None for a name."""
    text = host.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    if ":" in text:
        try:
            return ipaddress.IPv6Address(text)
        except ValueError:
            return None
    if text and all(c in "0123456789abcdefxABCDEFX." for c in text):
        return _inet_aton(text)
    return None


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses that packets to this IPv6 address would reach."""
    found = []
    if ip.ipv4_mapped:
        found.append(ip.ipv4_mapped)
    if ip.sixtofour:
        found.append(ip.sixtofour)
    if ip.teredo:
        found.extend(ip.teredo)
    if int(ip) >> 32 == 0 and int(ip) > 1:  # IPv4-compatible ::a.b.c.d (deprecated, still routed by some stacks)
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    if ip in _NAT64:
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return found


def _why_not_global(ip: IPAddress) -> str | None:
    """Say why an address is not a public unicast destination, or None if it is."""
    checks = (
        (ip.is_unspecified, "unspecified"),
        (ip.is_loopback, "loopback"),
        (ip.is_link_local, "link-local"),
        (ip.is_multicast, "multicast"),
        (ip.version == 4 and ip in _CGNAT, "shared address space (CGNAT)"),
        (ip.is_private, "private"),
        (ip.is_reserved or (ip.version == 6 and ip.is_site_local), "reserved"),
        (not ip.is_global, "not globally routable"),
    )
    return next((reason for hit, reason in checks if hit), None)


class TargetPolicy:
    """Allow global unicast addresses plus the operator's ``allow_targets`` networks."""

    def __init__(self, allow: Sequence[str] = ()) -> None:
        self.allow = tuple(ipaddress.ip_network(n, strict=False) for n in allow)

    def _allowed_explicitly(self, ip: IPAddress) -> bool:
        return any(ip.version == net.version and ip in net for net in self.allow)

    def reason(self, ip: IPAddress) -> str | None:
        """Why ``ip`` is refused, or None when it may be reached."""
        if self._allowed_explicitly(ip):
            return None
        if ip.version == 6:
            if ip.scope_id:
                ip = ipaddress.IPv6Address(str(ip).split("%")[0])
            if ip in _NAT64_LOCAL:
                return "local-use NAT64 (RFC 8215): the IPv4 address it reaches depends on the network's layout"
            embedded = _embedded_ipv4(ip)
            for v4 in embedded:
                why = None if self._allowed_explicitly(v4) else _why_not_global(v4)
                if why:
                    return f"{why} (embeds {v4})"
            if any(self._allowed_explicitly(v4) for v4 in embedded) or ip in _NAT64:
                return None  # it reaches the IPv4 address(es) it embeds, checked above
        return _why_not_global(ip)

    def allows(self, ip: IPAddress) -> bool:
        """True when ``ip`` may be reached."""
        return self.reason(ip) is None

    def check(self, ip: IPAddress, host: str = "") -> None:
        """Raise ``forbidden_target`` unless ``ip`` may be reached."""
        why = self.reason(ip)
        if why:
            named = f"{host} resolves to {ip}" if host and ip_literal(host) is None else f"address {ip}"
            raise GatewayError(FORBIDDEN_TARGET, f"{named}, which is {why}: not an allowed target")
