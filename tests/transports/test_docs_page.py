"""The docs page in a real browser: Debian's Chromium, driven by Playwright (no browser download).

It loads the page, fills the resolve form, submits it, reads the answer from the page and saves a
screenshot under test-artifacts/. Outside CI the test skips when Chromium is not installed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import require_tool

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_FLAGS = [
    "--no-sandbox",  # CI runs as root
    "--disable-gpu",
    "--disable-background-networking",  # the machine has no network: no update or sync calls
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture(scope="module")
def browser():
    chromium = require_tool("chromium", "apt-get install chromium, or run scripts/setup-tools")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the test extras")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


def test_try_it_form_calls_resolve_and_shows_the_answer(browser, running):
    page = browser.new_page(viewport={"width": 1100, "height": 1300})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(f"http://127.0.0.1:{running.port('jsonrpc')}/")
    assert page.title() == "NetOps Gateway"
    for name in ("resolve", "mx_lookup", "fetch_url", "tls_check", "system.multicall"):
        assert page.locator(f"section[id='{name.replace('.', '-')}']").count() == 1
    page.fill("#resolve-host", "www.example.test")
    page.fill("#resolve-family", "ipv6")
    page.click("#try-resolve button")
    result = page.locator("#result-resolve")
    result.filter(has_text="2001:db8::10").wait_for(timeout=10_000)
    # For people: the struct's fields as a table, its list of addresses as rows with a column per field.
    fields = result.locator(":scope > table > tbody > tr > th").all_inner_texts()
    assert fields == ["host", "canonical_name", "addresses", "elapsed_ms"]
    rows = result.locator("table table tr").all_inner_texts()
    assert rows[0].split() == ["family", "address"] and rows[1].split() == ["ipv6", "2001:db8::10"]
    raw = result.locator("details pre").text_content() or ""  # the raw JSON, one click away
    assert json.loads(raw)["canonical_name"] == "www.example.test"
    page.fill("#resolve-host", "nope.example.test")
    page.click("#try-resolve button")
    page.locator("#result-resolve.error").filter(has_text="not_found").wait_for(timeout=10_000)
    page.fill("#resolve-host", "www.example.test")
    page.click("#try-resolve button")
    result.filter(has_text="2001:db8::10").wait_for(timeout=10_000)
    ARTIFACTS.mkdir(exist_ok=True)
    page.locator("#resolve").scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "docs-page.png"))
    assert errors == []
    assert all(url.startswith(f"http://127.0.0.1:{running.port('jsonrpc')}/") for url in requests), requests  # no CDN


def test_the_xmlrpc_port_sends_the_browser_to_the_docs(browser, running):
    page = browser.new_page()
    page.goto(f"http://127.0.0.1:{running.port('xmlrpc')}/")
    assert page.url == f"http://127.0.0.1:{running.port('jsonrpc')}/" and page.title() == "NetOps Gateway"


@pytest.mark.parametrize(
    ("locked", "tls"), [(False, False), (True, False), (True, True)], ids=["open", "tokens", "tls"]
)
def test_every_snippet_runs_as_written(transport_settings, tmp_path, pki, locked, tls):
    """Each transport's snippet on the docs page, run as a user would paste it (resolving an address, so no
    DNS is needed), against a gateway with and without tokens ($NETOPS_TOKEN set, as the snippet says), and
    under TLS (the test CA given the way each snippet says: SSL_CERT_FILE, or the library's own variable)."""
    import os
    import shutil
    import ssl
    import subprocess
    import sys
    import urllib.request

    from gateway.server import Running
    from gateway.transports import TRANSPORTS

    tokens = tmp_path / "tokens"
    tokens.write_text("docs:snippet-token-0123456789\n")
    settings = transport_settings.replace(token_file=str(tokens) if locked else "")
    if tls:
        leaf = pki.ca.issue_cert("127.0.0.1", "localhost")
        leaf.cert_chain_pems[0].write_to_path(str(tmp_path / "gateway.pem"))
        leaf.private_key_pem.write_to_path(str(tmp_path / "gateway.key"))
        settings = settings.replace(tls_cert=str(tmp_path / "gateway.pem"), tls_key=str(tmp_path / "gateway.key"))
    running = Running(settings)
    running.start()
    try:
        idl = urllib.request.Request(
            f"{'https' if tls else 'http'}://127.0.0.1:{running.port('jsonrpc')}/idl/netops.thrift",
            headers={"Authorization": "Bearer snippet-token-0123456789"},
        )
        trust = ssl.create_default_context(cafile=str(pki.ca_file))
        with urllib.request.urlopen(idl, timeout=10, context=trust) as response:  # where the Thrift snippet says
            (tmp_path / "netops.thrift").write_bytes(response.read())
        env = {**os.environ, "NETOPS_TOKEN": "snippet-token-0123456789"}
        if tls:  # the test CA, where each client looks for a trust store
            ca = str(pki.ca_file)
            env.update(SSL_CERT_FILE=ca, CURL_CA_BUNDLE=ca, GRPC_DEFAULT_SSL_ROOTS_FILE_PATH=ca)
        for listener in running.listeners:
            snippet = listener.codec.snippet("127.0.0.1", listener.port, tls).replace("example.com", "127.0.0.1")
            assert ("https://" in snippet or "ssl" in snippet.lower()) == tls, snippet  # it says how it is secured
            if snippet.startswith("curl"):
                if shutil.which("curl") is None:
                    continue
                result = subprocess.run(
                    ["bash", "-c", snippet], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=30
                )
                assert '"result"' in result.stdout, (listener.name, result.stdout, result.stderr)
            else:
                result = subprocess.run(
                    [sys.executable, "-c", snippet], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
                )
                assert result.returncode == 0, (listener.name, snippet, result.stderr[-2000:])
        assert {listener.name for listener in running.listeners} == set(TRANSPORTS)
    finally:
        running.stop()
