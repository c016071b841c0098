"""The target policy: which destinations an operation may connect to, in every notation."""

from __future__ import annotations

import ipaddress

import pytest

from gateway import GatewayError
from gateway.policy import TargetPolicy, ip_literal

DEFAULT = TargetPolicy()
LOOPBACK_ALLOWED = TargetPolicy(["127.0.0.0/8"])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("127.0.1", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("017700000001", "127.0.0.1"),
        ("0", "0.0.0.0"),
        ("[::1]", "::1"),
        ("::ffff:127.0.0.1", "::ffff:7f00:1"),
        ("[::ffff:7f00:1]", "::ffff:7f00:1"),
        ("169.254.169.254", "169.254.169.254"),
        ("example.test", None),
        ("1.2.3.4.5", None),
        ("256.1.1.1", None),
        ("1.2.3.256", None),
        ("0x", "0.0.0.0"),
        ("09.1.1.1", None),  # 09 is not octal
        ("cafe", None),  # a name, even if it reads as hex
        ("", None),
    ],
)
def test_ip_literals_parse_like_inet_aton(text, expected):
    ip = ip_literal(text)
    assert (str(ip) if ip is not None else None) == expected


REFUSED = [
    ("127.0.0.1", "loopback"),
    ("127.255.255.254", "loopback"),
    ("2130706433", "loopback"),
    ("0x7f.1", "loopback"),
    ("127.1", "loopback"),
    ("0.0.0.0", "unspecified"),
    ("10.0.0.1", "private"),
    ("172.16.5.4", "private"),
    ("192.168.1.1", "private"),
    ("100.64.0.1", "CGNAT"),
    ("100.100.100.200", "CGNAT"),  # a cloud metadata address
    ("169.254.169.254", "link-local"),  # the cloud metadata address
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("240.0.0.1", "private"),
    ("255.255.255.255", "private"),
    ("192.0.2.1", "private"),  # TEST-NET-1: documentation only
    ("::1", "loopback"),
    ("::", "unspecified"),
    ("fe80::1", "link-local"),
    ("fd00::1", "private"),
    ("fd00:ec2::254", "private"),  # the IPv6 cloud metadata address
    ("fc00::1", "private"),
    ("ff02::1", "multicast"),
    ("fec0::1", "reserved"),
    ("2001:db8::1", "private"),
    ("::ffff:127.0.0.1", "loopback"),
    ("::ffff:10.0.0.1", "private"),
    ("::ffff:169.254.169.254", "link-local"),
    ("::127.0.0.1", "loopback"),  # IPv4-compatible
    ("2002:7f00:1::", "loopback"),  # 6to4 wrapping 127.0.0.1
    ("2002:a9fe:a9fe::1", "link-local"),  # 6to4 wrapping 169.254.169.254
    ("64:ff9b::a00:1", "private"),  # NAT64 to 10.0.0.1
    ("64:ff9b::7f00:1", "loopback"),  # NAT64 to 127.0.0.1
    # RFC 8215 local-use NAT64: under RFC 6052's /48 layout this embeds 127.0.0.1 (bits 48-63 and 72-87),
    # though its low 32 bits read 8.8.8.8. The layout is the network's choice: the prefix is refused whole.
    ("64:ff9b:1:7f00:0:100:808:808", "local-use NAT64"),
    ("64:ff9b:1::808:808", "local-use NAT64"),
]


@pytest.mark.parametrize(("text", "why"), REFUSED)
def test_non_global_destinations_are_refused(text, why):
    ip = ip_literal(text)
    assert ip is not None
    reason = DEFAULT.reason(ip)
    assert reason is not None and why in reason
    with pytest.raises(GatewayError) as info:
        DEFAULT.check(ip)
    assert info.value.code == "forbidden_target"


@pytest.mark.parametrize(
    "text",
    ["8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700:4700::1111", "2a00:1450:4001:80b::200e", "64:ff9b::808:808"],
)
def test_global_destinations_are_allowed(text):
    assert DEFAULT.allows(ip_literal(text))


@pytest.mark.parametrize(
    ("text", "allowed"),
    [
        ("127.0.0.1", True),
        ("2130706433", True),
        ("::ffff:127.0.0.1", True),
        ("10.0.0.1", False),
        ("::1", False),  # the allow-list names IPv4 loopback only
        ("169.254.169.254", False),
    ],
)
def test_allow_list_opens_only_the_named_networks(text, allowed):
    assert LOOPBACK_ALLOWED.allows(ip_literal(text)) is allowed


def test_error_names_the_host_and_the_reason():
    with pytest.raises(GatewayError) as info:
        DEFAULT.check(ipaddress.ip_address("10.1.2.3"), "private.example.test")
    assert info.value.message == "private.example.test resolves to 10.1.2.3, which is private: not an allowed target"
