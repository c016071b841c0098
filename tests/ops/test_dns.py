"""resolve, reverse_lookup, dns_query and mx_lookup against the authoritative test server."""

from __future__ import annotations

import gc
import logging
import re
import threading

import pytest

from gateway.config import Settings
from gateway.context import Deadline
from gateway.names import DNS_THREADS, Names
from gateway.ops.dns import MAX_EXCHANGES, MAX_PTR_NAMES
from tests.conftest import checked_call, error_of, make_gateway


def addresses(result):
    return [(a["family"], a["address"]) for a in result["addresses"]]


# -- resolve -------------------------------------------------------------------
def test_resolve_returns_ipv4_before_ipv6(call):
    result = call("resolve", "www.example.test")
    assert result["host"] == "www.example.test"
    assert result["canonical_name"] == "www.example.test"
    found = addresses(result)
    assert set(found[:2]) == {("ipv4", "192.0.2.10"), ("ipv4", "192.0.2.11")}
    assert found[2:] == [("ipv6", "2001:db8::10")]


def test_resolve_follows_cname_chains(call):
    result = call("resolve", "alias.example.test")
    assert result["canonical_name"] == "www.example.test"
    assert len(result["addresses"]) == 3


@pytest.mark.parametrize(("family", "expected"), [("ipv4", {"ipv4"}), ("ipv6", {"ipv6"}), ("any", {"ipv4", "ipv6"})])
def test_resolve_by_family(call, family, expected):
    assert {f for f, _ in addresses(call("resolve", "www.example.test", family))} == expected


def test_resolve_name_without_addresses_is_empty(call):
    assert call("resolve", "nomail.example.test")["addresses"] == []
    assert call("resolve", "deep.example.test")["addresses"] == []  # an empty non-terminal exists


def test_resolve_ip_literal_needs_no_query(call, dns_server):
    def about_the_literals(name: str) -> bool:
        return "192.0.2.99" in name or "2001:db8" in name or "99.2.0.192" in name

    before = dns_server.authority.questions(about_the_literals)
    assert addresses(call("resolve", "192.0.2.99")) == [("ipv4", "192.0.2.99")]
    assert addresses(call("resolve", "[2001:db8::1]")) == [("ipv6", "2001:db8::1")]
    assert call("resolve", "192.0.2.99", "ipv6")["addresses"] == []
    assert dns_server.authority.questions(about_the_literals) == before


def test_resolve_nxdomain_is_not_found(call):
    err = error_of(call, "resolve", "nope.example.test")
    assert err.code == "not_found" and "nope.example.test" in err.message


def test_resolve_slow_answer_within_the_timeout(call):
    assert addresses(call("resolve", "slow.example.test", "ipv4")) == [("ipv4", "192.0.2.50")]


def test_a_and_aaaa_are_asked_at_once_and_dns_takes_one_thread(gateway, call, dns_server):
    """An address lookup has its A and AAAA queries in flight together; a multicall of lookups adds no threads."""
    dns_server.authority.max_in_flight = 0
    assert len(call("resolve", "slow.example.test")["addresses"]) == 1  # the slow name has A only
    assert dns_server.authority.max_in_flight == 2
    calls = [{"methodName": "mx_lookup", "params": ["example.test"]} for _ in range(30)]
    out = gateway.call("system.multicall", [calls])
    assert all(r[0]["mx"] for r in out)
    assert [t.name for t in threading.enumerate() if t.name.startswith("dns")] == ["dns"] * DNS_THREADS


def test_an_mx_lookup_asks_for_every_exchange_s_addresses_at_once(call, dns_server):
    """Two exchanges that answer slowly: their A and AAAA queries are all in flight together, one round trip."""
    dns_server.authority.max_in_flight = 0
    result = call("mx_lookup", "slowmx.example.test")
    assert [(mx["exchange"], mx["addresses"]) for mx in result["mx"]] == [
        ("slow.example.test", ["192.0.2.50"]),
        ("slow2.example.test", ["192.0.2.49"]),
    ]
    assert dns_server.authority.max_in_flight == 4


@pytest.mark.parametrize("nameservers", [True, False], ids=["nameservers", "system"])
def test_an_address_lookup_with_no_time_left_is_a_timeout_and_starts_nothing(settings, nameservers, recwarn):
    """An operation on a thread (tcp_connect) whose deadline has passed when it looks a host up."""
    names = Names(settings.nameserver_addresses() if nameservers else None)
    for _ in range(10):
        assert error_of(names.wait_addresses, "www.example.test", Deadline(0)).code == "timeout"
    gc.collect()
    assert [str(w.message) for w in recwarn if "never awaited" in str(w.message)] == []


def test_a_lookup_nobody_waits_for_leaves_nothing_behind(call, caplog):
    """A fails first, so nobody waits for AAAA: its failure is dropped quietly, not logged as never retrieved."""
    for _ in range(20):
        assert error_of(call, "resolve", "nope.example.test").code == "not_found"
    gc.collect()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_resolve_no_answer_is_timeout(settings):
    call = checked_call(make_gateway(settings.replace(timeout=1.0)))
    assert error_of(call, "resolve", "blackhole.example.test").code == "timeout"


@pytest.mark.parametrize("bad", ["", "a..b", "x" * 64 + ".test", "has space.test", "a/b"])
def test_resolve_bad_names_are_invalid_argument(call, bad):
    assert error_of(call, "resolve", bad).code == "invalid_argument"


def test_resolve_bad_family(call):
    err = error_of(call, "resolve", "www.example.test", "ipv5")
    assert err.code == "invalid_argument" and "any, ipv4, ipv6" in err.message


def test_resolve_uses_the_system_resolver_without_nameservers():
    """Without configured nameservers, /etc/hosts answers for localhost as it does on the host."""
    call = checked_call(make_gateway(Settings()))
    result = call("resolve", "localhost", "ipv4")
    assert ("ipv4", "127.0.0.1") in addresses(result)


def test_unreachable_nameserver_is_a_clean_error(free_udp_port):
    call = checked_call(make_gateway(Settings(nameservers=(f"127.0.0.1:{free_udp_port}",), timeout=1.0)))
    assert error_of(call, "resolve", "www.example.test").code in ("connection_failed", "timeout")


# -- reverse_lookup ------------------------------------------------------------
def test_reverse_lookup_forward_confirmed(call):
    assert call("reverse_lookup", "192.0.2.10") == {
        "address": "192.0.2.10",
        "hostname": "www.example.test",
        "forward_confirmed": True,
        "elapsed_ms": pytest.approx(0, abs=10_000),
    }


def test_reverse_lookup_ipv6(call):
    result = call("reverse_lookup", "2001:db8::10")
    assert result["hostname"] == "www.example.test" and result["forward_confirmed"]


def test_reverse_lookup_name_that_does_not_resolve_back(call):
    result = call("reverse_lookup", "192.0.2.99")
    assert result["hostname"] == "liar.example.test" and result["forward_confirmed"] is False


def test_a_ptr_name_that_is_no_host_name_is_reported_unconfirmed(call):
    # The server's answer, not the caller's address, is odd: a name with a NUL or a space cannot be looked up
    # forward, so it is not confirmed, and the call is not an error about the caller's input.
    result = call("reverse_lookup", "192.0.2.66")
    assert result["hostname"] in ("odd\\000name.example.test", "odd\\032name.example.test")
    assert result["forward_confirmed"] is False


def test_reverse_lookup_without_ptr(call):
    result = call("reverse_lookup", "192.0.2.123")
    assert result["hostname"] == "" and result["forward_confirmed"] is False


def test_reverse_lookup_needs_an_address(call):
    assert error_of(call, "reverse_lookup", "www.example.test").code == "invalid_argument"


# -- dns_query -----------------------------------------------------------------
def test_dns_query_txt_in_presentation_form(call):
    result = call("dns_query", "txt.example.test", "TXT")
    assert result["answers"] == [
        {"name": "txt.example.test", "type": "TXT", "ttl": 300, "data": '"hello world" "second string"'}
    ]
    assert result["rdtype"] == "TXT" and result["canonical_name"] == "txt.example.test"


@pytest.mark.parametrize(
    ("name", "rdtype", "data"),
    [
        ("example.test", "MX", "10 mx1.example.test."),
        ("example.test", "NS", "ns1.example.test."),
        ("example.test", "CAA", '0 issue "ca.example.net"'),
        ("example.test", "SOA", "ns1.example.test. hostmaster.example.test. 2026112101 3600 600 86400 300"),
        ("_sip._tcp.example.test", "SRV", "10 5 5060 sip.example.test."),
        ("10.2.0.192.in-addr.arpa", "PTR", "www.example.test."),
        ("svc.example.test", "HTTPS", '1 . alpn="h2,http/1.1"'),
        ("www.example.test", "AAAA", "2001:db8::10"),
        ("alias.example.test", "CNAME", "alias2.example.test."),
        ("svc.example.test", "SVCB", '1 svc-backend.example.test. port="8443"'),
        ("_443._tcp.www.example.test", "TLSA", "3 1 1 " + "0123456789abcdef" * 4),
        ("example.test", "DS", "12345 13 2 " + "0123456789abcdef" * 4),
        ("sip.example.test", "NAPTR", '100 10 "S" "SIP+D2T" "" _sip._tcp.example.test.'),
    ],
)
def test_dns_query_record_types(call, name, rdtype, data):
    result = call("dns_query", name, rdtype)
    assert data in [a["data"] for a in result["answers"] if a["type"] == rdtype]


def test_dns_query_lowercase_type_is_accepted(call):
    assert call("dns_query", "example.test", "mx")["rdtype"] == "MX"


def test_dns_query_reports_cnames_followed(call):
    result = call("dns_query", "alias.example.test", "A")
    assert [a["type"] for a in result["answers"]][:2] == ["CNAME", "CNAME"]
    assert result["canonical_name"] == "www.example.test"


def test_dns_query_no_records_of_that_type(call):
    assert call("dns_query", "www.example.test", "MX")["answers"] == []


def test_dns_query_nxdomain_is_not_found(call):
    assert error_of(call, "dns_query", "nope.example.test", "TXT").code == "not_found"


def test_dns_query_unknown_type_is_invalid_argument(call):
    err = error_of(call, "dns_query", "example.test", "BOGUS")
    assert err.code == "invalid_argument" and "unsupported record type" in err.message


def test_dns_query_truncated_answer_retries_over_tcp(call, dns_server):
    before = dns_server.authority.tcp_queries
    result = call("dns_query", "big.example.test", "TXT")
    assert len(result["answers"]) == 1 and len(result["answers"][0]["data"]) > 2000
    assert dns_server.authority.tcp_queries > before


# -- mx_lookup -----------------------------------------------------------------
def test_mx_lookup_sorted_by_preference_then_exchange(call):
    result = call("mx_lookup", "example.test")
    assert [(m["preference"], m["exchange"], m["addresses"]) for m in result["mx"]] == [
        (10, "mx1.example.test", ["192.0.2.25"]),
        (10, "mx2.example.test", ["192.0.2.26", "2001:db8::26"]),
        (20, "mx-alias.example.test", ["192.0.2.25"]),  # published name kept; its CNAME followed for addresses
        (30, "missing.example.test", []),  # exchange does not exist
    ]
    assert result["implicit"] is False and result["null_mx"] is False and result["cname_chain"] == []


def test_mx_lookup_implicit_mx_is_the_canonical_name(call):
    result = call("mx_lookup", "implicit-alias.example.test")
    assert result["implicit"] is True
    assert result["cname_chain"] == ["implicit.example.test"]
    assert result["mx"] == [
        {"preference": 0, "exchange": "implicit.example.test", "addresses": ["192.0.2.30", "2001:db8::30"]}
    ]


def test_mx_lookup_follows_cname_of_the_domain(call):
    result = call("mx_lookup", "mail-alias.example.test")
    assert result["cname_chain"] == ["example.test"]
    assert result["mx"][0]["exchange"] == "mx1.example.test"


def test_mx_lookup_null_mx_accepts_no_mail(call):
    result = call("mx_lookup", "nullmx.example.test")
    assert result["null_mx"] is True and result["mx"] == [] and result["implicit"] is False


def test_an_exchange_that_is_no_host_name_is_listed_without_addresses(call):
    result = call("mx_lookup", "oddmx.example.test")
    assert result["mx"] == [{"preference": 10, "exchange": "odd\\000mx.example.test", "addresses": []}]


def test_mx_lookup_no_mx_no_address(call):
    result = call("mx_lookup", "nomail.example.test")
    assert result["mx"] == [] and result["implicit"] is False and result["null_mx"] is False


def test_mx_lookup_of_a_thousand_exchanges_sends_a_bounded_number_of_queries(call, dns_server):
    def about_manymx(name: str) -> bool:
        return name == "manymx.example.test" or name.endswith(".manymx.example.test")

    before = dns_server.authority.questions(about_manymx)
    result = call("mx_lookup", "manymx.example.test")
    sent = dns_server.authority.questions(about_manymx) - before
    assert result["truncated"] is True and len(result["mx"]) == MAX_EXCHANGES
    assert [mx["preference"] for mx in result["mx"]] == [0] * MAX_EXCHANGES  # the most preferred
    assert sent <= 2 + 2 * MAX_EXCHANGES  # the MX query (over UDP, then TCP: it is large), A and AAAA each
    assert str(MAX_EXCHANGES) in call("system.methodHelp", "mx_lookup")


def test_mx_lookup_of_a_few_exchanges_is_not_truncated(call):
    assert call("mx_lookup", "example.test")["truncated"] is False


def test_a_reverse_lookup_asks_for_every_name_s_addresses_at_once(call, dns_server):
    """Two PTR names that resolve slowly, one back to the address: all four forward queries are in flight
    together, and the answer is the name that resolves back."""
    dns_server.authority.max_in_flight = 0
    result = call("reverse_lookup", "192.0.2.49")
    assert (result["hostname"], result["forward_confirmed"]) == ("slow2.example.test", True)
    assert dns_server.authority.max_in_flight == 4


def test_a_reverse_lookup_does_not_wait_for_a_name_that_never_answers(call, dns_server):
    """One PTR name never answers, the other resolves back: that is the answer, in whichever order the PTR
    answer lists them (DNS servers shuffle it; this one does), not a timeout."""
    seen = dns_server.authority.blackhole_queries
    for _ in range(4):
        result = call("reverse_lookup", "192.0.2.48")
        assert (result["hostname"], result["forward_confirmed"]) == ("fwd48.example.test", True)
    assert dns_server.authority.blackhole_queries >= seen + 4  # it was asked each time, at once with the other


def test_reverse_lookup_confirms_a_bounded_number_of_names(call, dns_server):
    def about_55(name: str) -> bool:  # the PTR name of 192.0.2.55, and the 20 names it lists
        return name == "55.2.0.192.in-addr.arpa" or re.fullmatch(r"nx\d+\.example\.test", name) is not None

    before = dns_server.authority.questions(about_55)
    result = call("reverse_lookup", "192.0.2.55")
    assert result["forward_confirmed"] is False and result["hostname"].startswith("nx")
    assert dns_server.authority.questions(about_55) - before <= 2 + 2 * MAX_PTR_NAMES
    assert str(MAX_PTR_NAMES) in call("system.methodHelp", "reverse_lookup")


def test_mx_lookup_nxdomain_is_not_found(call):
    assert error_of(call, "mx_lookup", "nope.example.test").code == "not_found"


def test_dns_query_dnskey(call):
    (answer,) = call("dns_query", "example.test", "DNSKEY")["answers"]
    # dnspython writes the key in groups of 32 base64 characters
    assert answer["data"].startswith("257 3 13 mdsswUyr3DPW132mOi8V9xESWE8jTo0d xCjjnopKl+GqJxpVXckHAeF+KkxLbxIL")


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("resolve", ["blackhole.example.test"]),
        ("dns_query", ["blackhole.example.test", "TXT"]),
        ("mx_lookup", ["blackhole.example.test"]),
        ("reverse_lookup", ["192.0.2.51"]),
        ("tls_check", ["blackhole.example.test"]),
        ("fetch_url", ["http://blackhole.example.test/"]),
        ("tcp_connect", ["blackhole.example.test", 80]),
    ],
)
def test_a_silent_nameserver_is_timeout_for_every_operation(quick_gateway, name, args):
    err = error_of(checked_call(quick_gateway), name, *args)
    assert err.code == "timeout" and err.code in quick_gateway.lookup(name).errors


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("resolve", ["www.example.org"]),
        ("dns_query", ["www.example.org", "A"]),
        ("mx_lookup", ["example.org"]),
        ("reverse_lookup", ["198.51.100.7"]),
        ("tls_check", ["www.example.org"]),
        ("fetch_url", ["http://www.example.org/"]),
        ("tcp_connect", ["www.example.org", 80]),
    ],
)
def test_a_refusing_nameserver_is_connection_failed_for_every_operation(call, gateway, name, args):
    """The test server answers REFUSED outside its zones, as an authoritative server does."""
    err = error_of(call, name, *args)
    assert err.code == "connection_failed" and err.code in gateway.lookup(name).errors
