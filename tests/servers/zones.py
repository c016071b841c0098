"""The test zones every suite shares: DNS data, and names pointing at the local TLS/HTTP servers."""

from __future__ import annotations

import dns.zone

BIG_TXT = " ".join(f'"{"x" * 200}-{i}"' for i in range(12))  # ~2.5 KB: more than any UDP payload the resolver offers
# A domain anyone could publish: 1,000 MX records, each naming an exchange that does not exist (NXNS-style).
# An address with 20 PTR names, none of which exists: forward-confirming each would be 40 queries.
MANY_PTR = "\n".join(f"55  IN PTR  nx{i}.example.test." for i in range(20))
MANY_MX = "\n".join(f"manymx          IN MX    {i % 50} nx{i}.manymx" for i in range(1000))

EXAMPLE = f"""
$TTL 300
@               IN SOA   ns1 hostmaster 2026112101 3600 600 86400 300
@               IN NS    ns1
@               IN MX    10 mx1
@               IN MX    10 mx2
@               IN MX    20 mx-alias
@               IN MX    30 missing
@               IN CAA   0 issue "ca.example.net"
@               IN TXT   "v=spf1 -all"
ns1             IN A     192.0.2.53
www             IN A     192.0.2.10
www             IN A     192.0.2.11
www             IN AAAA  2001:db8::10
alias           IN CNAME alias2
alias2          IN CNAME www
mx1             IN A     192.0.2.25
mx2             IN A     192.0.2.26
mx2             IN AAAA  2001:db8::26
mx-alias        IN CNAME mx1
implicit        IN A     192.0.2.30
implicit        IN AAAA  2001:db8::30
implicit-alias  IN CNAME implicit
nullmx          IN MX    0 .
oddmx           IN MX    10 odd\\000mx
nomail          IN TXT   "exists, but no MX and no address"
mail-alias      IN CNAME example.test.
v6only          IN AAAA  2001:db8::60
txt             IN TXT   "hello world" "second string"
big             IN TXT   {BIG_TXT}
_sip._tcp       IN SRV   10 5 5060 sip
sip             IN A     192.0.2.40
svc             IN HTTPS 1 . alpn="h2,http/1.1"
svc             IN SVCB  1 svc-backend.example.test. port=8443
_443._tcp.www   IN TLSA  3 1 1 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
@               IN DS    12345 13 2 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
@               IN DNSKEY 257 3 13 ( mdsswUyr3DPW132mOi8V9xESWE8jTo0dxCjjnopKl+GqJxpVX
                         ckHAeF+KkxLbxILfDLUT0rAK9iUzy1L53eKGQ== )
sip             IN NAPTR 100 10 "S" "SIP+D2T" "" _sip._tcp.example.test.
fwd             IN A     192.0.2.77
liar            IN A     192.0.2.78
slow            IN A     192.0.2.50
slow2           IN A     192.0.2.49
slowmx          IN MX    10 slow
slowmx          IN MX    20 slow2
blackhole       IN A     192.0.2.51
fwd48           IN A     192.0.2.48
a.b.deep        IN A     192.0.2.52
private         IN A     10.1.2.3
metadata        IN A     169.254.169.254
mapped          IN AAAA  ::ffff:127.0.0.1
mixed           IN A     10.0.0.1
mixed           IN A     127.0.0.1
{MANY_MX}
"""

# Everything the local TLS and HTTP servers answer as; all on 127.0.0.1.
LOCAL = """
$TTL 60
@           IN SOA  ns1.example.test. hostmaster.example.test. 1 3600 600 86400 60
@           IN NS   ns1.example.test.
web         IN A    127.0.0.1
valid       IN A    127.0.0.1
expired     IN A    127.0.0.1
notyet      IN A    127.0.0.1
wronghost   IN A    127.0.0.1
selfsigned  IN A    127.0.0.1
unknownca   IN A    127.0.0.1
oddsan      IN A    127.0.0.1
badcert     IN A    127.0.0.1
ctlname     IN A    127.0.0.1
rebind      IN AAAA ::1
"""

REVERSE_V4 = f"""
$TTL 300
@   IN SOA  ns1.example.test. hostmaster.example.test. 1 3600 600 86400 300
@   IN NS   ns1.example.test.
10  IN PTR  www.example.test.
77  IN PTR  fwd.example.test.
99  IN PTR  liar.example.test.
49  IN PTR  slow.example.test.
49  IN PTR  slow2.example.test.
48  IN PTR  fwd48.example.test.
48  IN PTR  blackhole.example.test.
66  IN PTR  odd\\000name.example.test.
66  IN PTR  odd\\032name.example.test.
{MANY_PTR}
"""

REVERSE_V6 = """
$TTL 300
@   IN SOA  ns1.example.test. hostmaster.example.test. 1 3600 600 86400 300
@   IN NS   ns1.example.test.
0.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0  IN PTR  www.example.test.
"""

REBINDING = {"rebind.local.test.": ["127.0.0.1", "10.9.9.9"]}  # first answer allowed in tests, then private
SLOW = {"slow.example.test.": 0.3, "slow2.example.test.": 0.3}
BLACKHOLES = {"blackhole.example.test.", "51.2.0.192.in-addr.arpa."}


def zones() -> list[dns.zone.Zone]:
    """Parse every test zone."""
    return [
        dns.zone.from_text(EXAMPLE, origin="example.test.", relativize=False),
        dns.zone.from_text(LOCAL, origin="local.test.", relativize=False),
        dns.zone.from_text(REVERSE_V4, origin="2.0.192.in-addr.arpa.", relativize=False),
        dns.zone.from_text(REVERSE_V6, origin="8.b.d.0.1.0.0.2.ip6.arpa.", relativize=False),
    ]
