"""tcp_connect: refused and timed-out connections are results; bad targets are errors."""

from __future__ import annotations

import pytest

from tests.conftest import error_of


def test_listening_port(call, http_server):
    result = call("tcp_connect", "web.local.test", http_server.port)
    assert result["connected"] is True and result["error"] == "" and result["address"] == "127.0.0.1"
    assert result["host"] == "web.local.test" and result["port"] == http_server.port


def test_refused_is_a_result(call, closed_port):
    result = call("tcp_connect", "127.0.0.1", closed_port)
    assert result["connected"] is False and result["error"] == "connection refused"


def test_timeout_is_a_result(quick_call, unanswered_port):
    result = quick_call("tcp_connect", "127.0.0.1", unanswered_port)
    assert result["connected"] is False and result["error"] == "timeout"


def test_only_allowed_addresses_are_tried(call, http_server):
    """mixed.example.test has 10.0.0.1 and 127.0.0.1: only the allowed one is connected."""
    result = call("tcp_connect", "mixed.example.test", http_server.port)
    assert result["connected"] is True and result["address"] == "127.0.0.1"


def test_unknown_name_is_not_found(call):
    assert error_of(call, "tcp_connect", "nope.example.test", 80).code == "not_found"


@pytest.mark.parametrize("host", ["127.0.0.1", "2130706433", "0x7f.1", "127.1", "[::ffff:127.0.0.1]", "::1"])
def test_loopback_in_any_notation_is_forbidden_by_default(strict_call, host, http_server):
    err = error_of(strict_call, "tcp_connect", host, http_server.port)
    assert err.code == "forbidden_target"


@pytest.mark.parametrize(
    "host", ["private.example.test", "metadata.example.test", "mapped.example.test", "mixed.example.test"]
)
def test_names_resolving_to_forbidden_addresses(strict_call, host):
    err = error_of(strict_call, "tcp_connect", host, 80)
    assert err.code == "forbidden_target" and host in err.message


@pytest.mark.parametrize("port", [0, 65536])
def test_port_out_of_range(call, port):
    assert error_of(call, "tcp_connect", "127.0.0.1", port).code == "invalid_argument"
