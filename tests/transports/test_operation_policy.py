"""Per-operation policy: operators switch operations off and tighten limits per operation."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gateway.config import ConfigError, load_settings
from gateway.server import Running
from gateway.transports import TRANSPORTS
from tests.conftest import checked_call, error_of, make_gateway
from tests.transports.clients import RemoteError, connect

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def without_fetch(transport_settings):
    gateway = Running(transport_settings.replace(disable=("fetch_url",)))
    gateway.start()
    yield gateway
    gateway.stop()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_disabled_operation_is_gone_on_every_transport(without_fetch, transport, http_server):
    client = connect(without_fetch, transport)
    try:
        assert "fetch_url" not in client.call("system.listMethods")
        assert "resolve" in client.call("system.listMethods")
        with pytest.raises(RemoteError) as info:
            client.call("system.methodHelp", "fetch_url")
        assert info.value.code == "method_not_found"
        if transport != "pyro":  # Pyro5's client refuses it itself, from the metadata
            with pytest.raises(RemoteError) as info:
                client.call("fetch_url", f"http://web.local.test:{http_server.port}/text")
            assert info.value.code == "method_not_found"
    finally:
        client.close()


def test_a_disabled_operation_is_gone_from_docs_and_openrpc(without_fetch):
    client = connect(without_fetch, "jsonrpc")
    names = [m["name"] for m in client.call("rpc.discover")["methods"]]
    client.close()
    assert "fetch_url" not in names and "resolve" in names
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", without_fetch.port("jsonrpc"))
    conn.request("GET", "/")
    page = conn.getresponse().read().decode()
    assert 'id="fetch_url"' not in page and 'id="resolve"' in page


def test_per_operation_limits(settings, http_server):
    gateway = make_gateway(
        settings.replace(limits=("fetch_url.max_redirects=2", "fetch_url.max_body_bytes=100", "resolve.timeout=0.5"))
    )
    call = checked_call(gateway)
    web = f"http://web.local.test:{http_server.port}"
    assert len(call("fetch_url", f"{web}/redirect/2")["redirects"]) == 2
    assert error_of(call, "fetch_url", f"{web}/redirect/3").code == "too_many_redirects"
    assert error_of(call, "fetch_url", f"{web}/text", max_bytes=101).code == "invalid_argument"
    assert call("fetch_url", f"{web}/big")["body_bytes"] == 100  # the default follows the operator's cap
    err = error_of(call, "resolve", "blackhole.example.test")
    assert err.code == "timeout" and "0.5 s" in err.message
    assert error_of(call, "dns_query", "blackhole.example.test").message.endswith(
        "3 s time limit"
    )  # others keep theirs


@pytest.mark.parametrize(
    "argv",
    [
        ["--limit", "fetch_url.timeout"],
        ["--limit", "fetch_url.colour=3"],
        ["--limit", "fetch_url.timeout=-1"],
        ["--disable", "no way"],
    ],
)
def test_bad_policy_values_are_refused(argv):
    with pytest.raises(ConfigError):
        load_settings(argv, environ={})


def test_limits_as_a_toml_table(tmp_path):
    config = tmp_path / "gw.toml"
    config.write_text('disable = ["tcp_connect"]\n[limits.fetch_url]\ntimeout = 4\nmax_redirects = 3\n')
    settings = load_settings(["--config", str(config)], environ={})
    assert settings.disable == ("tcp_connect",)
    assert set(settings.limits) == {"fetch_url.timeout=4", "fetch_url.max_redirects=3"}


def test_unknown_operation_stops_the_start():
    result = subprocess.run(
        [sys.executable, "server.py", "--disable", "fetch_urls"], cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2
    assert result.stderr.strip() == "error: unknown operation 'fetch_urls' in disable or limits"
