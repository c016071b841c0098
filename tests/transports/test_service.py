"""Running it as a service: docs page, OpenRPC, metrics, access log, health, configuration."""

from __future__ import annotations

import http.client
import io
import json
import logging
import subprocess
import sys
import threading
import tomllib
from pathlib import Path

import jsonschema
import pytest
from prometheus_client.parser import text_string_to_metric_families
from referencing import Registry, Resource

from gateway.accesslog import JSONFormatter
from gateway.cli import main as netops
from gateway.config import Settings, load_settings
from gateway.server import Running
from gateway.transports import TRANSPORTS
from tests.transports.clients import RemoteError, connect

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"


def get(port: int, path: str, headers: dict | None = None) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path, headers=headers or {})
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, body


def openrpc_validator() -> jsonschema.Draft7Validator:
    """The OpenRPC meta-schema, with the JSON-Schema meta-schema it references served from tests/data."""
    tools = Resource.opaque(json.loads((DATA / "json-schema-tools-meta-schema.json").read_text()))
    registry = Registry().with_resources(
        [("https://meta.json-schema.tools", tools), ("https://meta.json-schema.tools/", tools)]
    )
    return jsonschema.Draft7Validator(json.loads((DATA / "openrpc-meta-schema.json").read_text()), registry=registry)


# -- health ------------------------------------------------------------------------------
@pytest.mark.parametrize("transport", ["xmlrpc", "jsonrpc"])
def test_healthz_and_readyz(running, transport):
    assert get(running.port(transport), "/healthz")[::2] == (200, b"ok\n")
    assert get(running.port(transport), "/readyz")[::2] == (200, b"ready\n")


def test_readyz_fails_when_the_resolver_does_not_answer(transport_settings, free_udp_port):
    gateway = Running(transport_settings.replace(nameservers=(f"127.0.0.1:{free_udp_port}",), transports=("jsonrpc",)))
    gateway.start()
    try:
        status, _, body = get(gateway.port("jsonrpc"), "/readyz")
        assert status == 503 and body == b"not ready: the resolver does not answer\n"
        assert get(gateway.port("jsonrpc"), "/healthz")[0] == 200  # alive all the same
    finally:
        gateway.stop()


# -- OpenRPC -----------------------------------------------------------------------------
def test_rpc_discover_is_valid_openrpc(running):
    client = connect(running, "jsonrpc")
    document = client.call("rpc.discover")
    client.close()
    openrpc_validator().validate(document)
    names = [m["name"] for m in document["methods"]]
    assert "resolve" in names and "rpc.discover" in names and "system.multicall" in names
    resolve = next(m for m in document["methods"] if m["name"] == "resolve")
    assert resolve["params"][1]["schema"]["enum"] == ["any", "ipv4", "ipv6"]
    assert {"code": -32001, "message": "not_found"} in resolve["errors"]
    assert document["components"]["schemas"]["ResolveResult"]["required"] == [
        "host",
        "canonical_name",
        "addresses",
        "elapsed_ms",
    ]


def test_a_broken_document_fails_the_validation():
    """The validation above can fail: a document without methods is refused."""
    assert list(openrpc_validator().iter_errors({"openrpc": "1.2.6", "info": {"title": "x", "version": "1"}}))


def test_openrpc_json_route_and_rpc_discover_everywhere_but_thrift(running):
    status, headers, body = get(running.port("xmlrpc"), "/openrpc.json")
    assert status == 200 and headers["content-type"] == "application/json"
    openrpc_validator().validate(json.loads(body))
    for transport in ("xmlrpc", "pyro", "rpyc"):
        client = connect(running, transport)
        assert client.call("rpc.discover")["openrpc"].startswith("1.")
        client.close()
    thrift = connect(running, "thrift")
    assert "rpc_discover" not in thrift.call("system.listMethods")  # no fixed type for Thrift to carry
    thrift.close()


# -- metrics -----------------------------------------------------------------------------
def scrape(port: int) -> dict[tuple[str, tuple], float]:
    _, headers, body = get(port, "/metrics")
    assert headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples, name, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_count_calls_by_transport_method_and_outcome(running):
    before = scrape(running.port("jsonrpc"))
    for transport in TRANSPORTS:
        client = connect(running, transport)
        client.call("resolve", "127.0.0.1")
        with pytest.raises(RemoteError):
            client.call("resolve", "nope.example.test")
        client.close()
    conn = http.client.HTTPConnection("127.0.0.1", running.port("jsonrpc"))
    conn.request("POST", "/", b"{not json", {"Content-Type": "application/json"})
    conn.getresponse().read()
    after = scrape(running.port("xmlrpc"))
    for transport in TRANSPORTS:
        for outcome in ("ok", "not_found"):
            labels = {"transport": transport, "method": "resolve", "outcome": outcome}
            assert value(after, "netops_calls_total", **labels) - value(before, "netops_calls_total", **labels) == 1
        duration = {"transport": transport, "method": "resolve"}
        assert value(after, "netops_call_duration_seconds_count", **duration) >= 2
    refused = {"transport": "jsonrpc", "reason": "parse_error"}
    assert value(after, "netops_refused_total", **refused) - value(before, "netops_refused_total", **refused) == 1
    assert value(after, "netops_outbound_in_flight") == 0
    assert value(after, "netops_calls_in_flight", transport="xmlrpc") == 0


# -- logs ----------------------------------------------------------------------------------
def test_access_log_has_one_line_per_call_and_no_arguments(running, caplog):
    client = connect(running, "jsonrpc")
    with caplog.at_level(logging.INFO, logger="gateway.access"):
        with pytest.raises(RemoteError):
            client.call("fetch_url", "http://web.local.test:1/?token=hunter2")
        client.call("system.listMethods")  # instant: logged as it ends, as any call
    client.close()
    lines = [r for r in caplog.records if r.name == "gateway.access"]
    (listing,) = [r for r in lines if r.netops.get("method") == "system.listMethods"]  # one line per call
    (record,) = [r for r in lines if r.netops.get("method") == "fetch_url"]
    assert listing.netops["outcome"] == "ok" and listing.netops["transport"] == "jsonrpc"
    assert record.netops["transport"] == "jsonrpc" and record.netops["outcome"] == "connection_failed"
    assert record.netops["client"].startswith("127.0.0.1:") and record.netops["duration_ms"] >= 0
    assert "hunter2" not in record.getMessage() and "hunter2" not in JSONFormatter().format(record)


def test_json_log_format():
    record = logging.LogRecord("gateway.access", logging.INFO, __file__, 1, "jsonrpc %s", ("x",), None)
    record.netops = {"transport": "jsonrpc", "method": "resolve", "outcome": "ok"}
    line = json.loads(JSONFormatter().format(record))
    assert line["message"] == "jsonrpc x" and line["method"] == "resolve" and line["time"].endswith("Z")


# -- configuration ---------------------------------------------------------------------------
def test_example_toml_documents_and_parses_every_setting():
    text = (ROOT / "gateway.example.toml").read_text()
    parsed = tomllib.loads(text)
    assert set(parsed) == {f for f in Settings.__dataclass_fields__}
    assert load_settings(["--config", str(ROOT / "gateway.example.toml")], environ={}) == Settings()


def test_print_config_round_trips(tmp_path):
    result = subprocess.run(
        [sys.executable, "server.py", "--print-config", "--timeout", "4", "--allow-target", "10.0.0.0/8"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0 and 'allow_targets = ["10.0.0.0/8"]' in result.stdout
    config = tmp_path / "effective.toml"
    config.write_text(result.stdout)
    assert load_settings(["--config", str(config)], environ={}).timeout == 4.0


def test_unknown_key_in_the_file_stops_the_start(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text("timeout = 5\nmax_bach = 3\n")
    result = subprocess.run(
        [sys.executable, "server.py", "--config", str(config)], cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2 and result.stderr.strip() == "error: unknown setting 'max_bach'"


# -- descriptions from the command line -------------------------------------------------------
@pytest.mark.parametrize("fmt", ["openrpc", "thrift", "markdown"])
def test_netops_methods_formats(running, fmt):
    out, err = io.StringIO(), io.StringIO()
    assert (
        netops(["methods", "--url", f"jsonrpc://127.0.0.1:{running.port('jsonrpc')}", "--format", fmt], out, err) == 0
    )
    text = out.getvalue()
    if fmt == "openrpc":
        openrpc_validator().validate(json.loads(text))
    elif fmt == "thrift":
        assert text == (ROOT / "idl" / "netops.thrift").read_text()
    else:
        assert text.startswith("# NetOps Gateway methods") and "## `resolve(host: string" in text


# -- Pyro5 name server -----------------------------------------------------------------------
def test_pyro_name_server_registration(transport_settings):
    import Pyro5.api
    import Pyro5.nameserver

    _, ns_daemon, _ = Pyro5.nameserver.start_ns(host="127.0.0.1", port=0)
    loop = threading.Thread(target=ns_daemon.requestLoop, daemon=True)
    loop.start()
    ns_port = ns_daemon.locationStr.rsplit(":", 1)[1]
    gateway = Running(transport_settings.replace(transports=("pyro",), pyro_ns=f"127.0.0.1:{ns_port}"))
    gateway.start()
    try:
        proxy = Pyro5.api.Proxy(f"PYRONAME:netops@127.0.0.1:{ns_port}")
        assert proxy.resolve("127.0.0.1")["addresses"] == [{"family": "ipv4", "address": "127.0.0.1"}]
        proxy._pyroRelease()
    finally:
        gateway.stop()
        with Pyro5.api.locate_ns("127.0.0.1", int(ns_port)) as ns:
            assert "netops" not in ns.list()  # removed on stop
        ns_daemon.shutdown()


def test_the_thrift_idl_is_served_at_a_stable_url(running):
    for port in (running.port("xmlrpc"), running.port("jsonrpc")):
        status, headers, body = get(port, "/idl/netops.thrift")
        assert status == 200 and headers["content-type"].startswith("text/plain")
        assert body.decode() == (Path(__file__).resolve().parents[2] / "idl" / "netops.thrift").read_text()
