"""fetch_url against local HTTP and HTTPS servers: bodies, encodings, redirects, limits and the target policy."""

from __future__ import annotations

import base64
import json
import resource
import tracemalloc
from urllib.parse import quote

import pytest

from tests.conftest import error_of
from tests.servers.http import GZIP_TEXT, TEXT


@pytest.fixture(scope="module")
def web(http_server):
    return f"http://web.local.test:{http_server.port}"


@pytest.fixture(scope="module")
def secure(https_server):
    return f"https://web.local.test:{https_server.port}"


def test_plain_text(call, web):
    result = call("fetch_url", f"{web}/text")
    assert result["status"] == 200 and result["reason"] == "OK" and result["http_version"] == "HTTP/1.1"
    assert result["body"] == TEXT and result["body_encoding"] == "text" and result["body_bytes"] == len(TEXT)
    assert result["content_type"] == "text/plain; charset=utf-8" and result["truncated"] is False
    assert result["url"] == result["final_url"] == f"{web}/text" and result["redirects"] == []
    assert result["address"] == "127.0.0.1"
    assert result["tls"] == {
        "protocol": "",
        "cipher": "",
        "verified": False,
        "subject": "",
        "issuer": "",
        "not_after": "",
    }


def test_timings_cover_each_phase(call, web):
    timings = call("fetch_url", f"{web}/text")["timings"]
    assert set(timings) == {"dns_ms", "connect_ms", "tls_ms", "ttfb_ms", "total_ms"}
    assert timings["tls_ms"] == 0
    assert timings["total_ms"] >= timings["dns_ms"] + timings["connect_ms"] + timings["ttfb_ms"] - 0.01


def test_json_is_text(call, web):
    result = call("fetch_url", f"{web}/json")
    assert json.loads(result["body"]) == {"ok": True, "items": [1, 2, 3]} and result["body_encoding"] == "text"


def test_https_reports_the_tls_session(call, secure):
    result = call("fetch_url", f"{secure}/text")
    assert result["body"] == TEXT
    assert result["tls"]["verified"] is True and result["tls"]["protocol"].startswith("TLSv1.")
    assert "NetOps Test CA" in result["tls"]["issuer"] and result["tls"]["not_after"].endswith("Z")
    assert result["timings"]["tls_ms"] > 0


def test_https_to_a_certificate_with_unreadable_names_is_fetched(call, https_server):
    # OpenSSL verified it; what the gateway cannot read of it is left out of the summary, not made an error.
    result = call("fetch_url", f"https://oddsan.local.test:{https_server.port}/text")
    assert result["status"] == 200 and result["tls"]["verified"] is True
    assert result["tls"]["subject"] == "CN=oddsan.local.test" and "NetOps Test CA" in result["tls"]["issuer"]


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("expired", "expired"),
        ("wronghost", "hostname mismatch"),
        ("unknownca", "unknown issuer"),
        ("selfsigned", "self-signed"),
    ],
)
def test_https_that_does_not_verify_is_connection_failed(call, https_server, host, reason):
    err = error_of(call, "fetch_url", f"https://{host}.local.test:{https_server.port}/")
    assert err.code == "connection_failed" and reason in err.message


def test_binary_is_base64(call, web):
    result = call("fetch_url", f"{web}/binary")
    assert result["body_encoding"] == "base64" and base64.b64decode(result["body"]) == bytes(range(256))


def test_control_characters_in_a_response_head_are_escaped(call, web):
    # XML-RPC could not carry them, and a terminal printing the result would act on the ESC.
    result = call("fetch_url", f"{web}/controls-in-head")
    assert result["status"] == 200 and result["reason"] == "Fine\\x07" and result["body"] == "ok"
    assert result["headers"]["x-paint"] == "\\x1b[31mred\\x1b[0m"
    assert result["content_type"] == result["headers"]["content-type"] == "text/plain; x=\\x01"


def test_a_redirect_s_control_characters_are_percent_escaped(call, web):
    result = call("fetch_url", f"{web}/redirect-to?url=/te%01xt")
    assert result["final_url"] == f"{web}/te%01xt" and result["status"] == 404


def test_text_with_control_characters_travels_as_base64(call, web):
    result = call("fetch_url", f"{web}/control")
    assert result["body_encoding"] == "base64" and b"\x01" in base64.b64decode(result["body"])


def test_charset_is_honoured(call, web):
    result = call("fetch_url", f"{web}/latin1")
    assert result["body"] == "café crème" and result["charset"] == "iso8859-1"


@pytest.mark.parametrize("name", ["bz2", "zlib", "rot13", "base64", "hex", "punycode", "idna", "utf-7", "nope"])
def test_a_charset_that_is_no_text_encoding_is_never_decoded_with(call, web, name):
    before = resource.getrusage(resource.RUSAGE_SELF)
    result = call("fetch_url", f"{web}/charset?name={name}", max_bytes=1_000_000)
    after = resource.getrusage(resource.RUSAGE_SELF)
    assert result["body_encoding"] == "base64" and result["charset"] == ""
    assert len(base64.b64decode(result["body"])) == result["body_bytes"] < 1_000_000  # the bytes as sent
    assert after.ru_maxrss - before.ru_maxrss < 50 * 1024  # KiB: nothing inflated (bz2 would make 64 MiB)
    assert after.ru_utime - before.ru_utime < 2.0  # no quadratic decode (punycode: seconds)


@pytest.mark.parametrize("path", ["/gzip", "/deflate", "/deflate?raw=1"])
def test_compressed_bodies_are_decoded(call, web, path):
    result = call("fetch_url", web + path)
    assert result["body"] == GZIP_TEXT and result["body_bytes"] == len(GZIP_TEXT)


def test_chunked_body(call, web):
    assert call("fetch_url", f"{web}/chunked")["body"] == "chunk one, chunk two"


def test_repeated_headers_are_joined(call, web):
    headers = call("fetch_url", f"{web}/headers")["headers"]
    assert headers["x-multi"] == "one, two" and headers["set-cookie"] == "a=1, b=2"
    assert all(name == name.lower() for name in headers)


@pytest.mark.parametrize("status", [404, 500])
def test_error_statuses_are_results(call, web, status):
    result = call("fetch_url", f"{web}/status/{status}")
    assert result["status"] == status and result["body"] == f"status {status}\n"


def test_head_has_no_body(call, web):
    result = call("fetch_url", f"{web}/big", "HEAD")
    assert result["status"] == 200 and result["body"] == "" and result["headers"]["content-length"] == "2097152"


def test_big_body_is_truncated_at_max_bytes(call, web):
    result = call("fetch_url", f"{web}/big")
    assert result["truncated"] is True and result["body_bytes"] == 1024 * 1024 == len(result["body"])
    small = call("fetch_url", f"{web}/big", max_bytes=100)
    assert small["body_bytes"] == 100 and small["body"] == ("0123456789abcdef" * 7)[:100]


def test_exact_size_is_not_truncated(call, web):
    result = call("fetch_url", f"{web}/big?size=100", max_bytes=100)
    assert result["truncated"] is False and result["body_bytes"] == 100


def test_gzip_bomb_costs_only_max_bytes(call, web):
    """64 MiB of zeros in 64 KB of gzip: the gateway inflates max_bytes and stops."""
    tracemalloc.start()
    try:
        result = call("fetch_url", f"{web}/bomb", max_bytes=65536)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result["truncated"] is True and result["body_bytes"] == 65536
    assert peak < 2 * 1024 * 1024


def test_trickling_body_is_timeout(quick_call, web):
    err = error_of(quick_call, "fetch_url", f"{web}/slow?every=0.05")
    assert err.code == "timeout" and "1 s" in err.message


# -- redirects -------------------------------------------------------------------------
def test_redirects_are_followed_and_listed(call, web):
    result = call("fetch_url", f"{web}/redirect/3")
    assert result["final_url"] == f"{web}/text" and result["body"] == TEXT
    assert result["redirects"] == [
        {"url": f"{web}/redirect/3", "status": 302, "address": "127.0.0.1"},
        {"url": f"{web}/redirect/2", "status": 302, "address": "127.0.0.1"},
        {"url": f"{web}/redirect/1", "status": 302, "address": "127.0.0.1"},
    ]


def test_ten_redirects_are_followed_an_eleventh_is_too_many(call, web):
    assert len(call("fetch_url", f"{web}/redirect/10")["redirects"]) == 10
    assert error_of(call, "fetch_url", f"{web}/redirect/11").code == "too_many_redirects"


def test_redirect_loop_is_too_many_redirects(call, web):
    assert error_of(call, "fetch_url", f"{web}/loop").code == "too_many_redirects"


def test_redirects_can_be_left_alone(call, web):
    result = call("fetch_url", f"{web}/redirect/2", follow_redirects=False)
    assert result["status"] == 302 and result["headers"]["location"] == "/redirect/1" and result["redirects"] == []


@pytest.mark.parametrize(
    "target",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://metadata.example.test/",
        "http://10.0.0.1/",
        "http://[::1]:80/",
    ],
)
def test_each_redirect_hop_is_checked_against_the_policy(call, web, target):
    err = error_of(call, "fetch_url", f"{web}/redirect-to?url={target}")
    assert err.code == "forbidden_target"


def test_redirect_to_another_scheme_is_refused(call, web):
    assert error_of(call, "fetch_url", f"{web}/redirect-to?url=file:///etc/passwd").code == "invalid_argument"


@pytest.mark.parametrize(
    "location",
    [
        "http://127.0.0.1:80ation:/x",
        "http://[::1/",
        "http://127.0.0.1:99999/",
        "http://user:pw@127.0.0.1/",
        "http://127.0.0 301 moved, http/",
    ],
)
def test_a_redirect_to_no_url_is_a_clear_error(call, web, location):
    # The server's Location, not the caller's URL, is broken: refused as a caller's URL would be, saying so.
    err = error_of(call, "fetch_url", f"{web}/redirect-to?url={quote(location)}")
    assert err.code == "invalid_argument" and "the redirect from" in err.message


def test_credentials_do_not_follow_a_redirect_to_another_origin(call, web, http_server):
    other = f"http://127.0.0.1:{http_server.port}/echo-headers"
    headers = {"Authorization": "Bearer secret", "X-Trace": "1"}
    moved = json.loads(call("fetch_url", f"{web}/redirect-to?url={other}", headers=headers)["body"])
    assert "authorization" not in moved and moved["x-trace"] == "1"
    same = json.loads(call("fetch_url", f"{web}/redirect-to?url=/echo-headers", headers=headers)["body"])
    assert same["authorization"] == "Bearer secret"


def test_request_headers(call, web, http_server):
    sent = json.loads(call("fetch_url", f"{web}/echo-headers", headers={"X-Custom": "yes"})["body"])
    assert sent["x-custom"] == "yes" and sent["host"] == f"web.local.test:{http_server.port}"
    assert sent["user-agent"].startswith("netops-gateway/") and sent["connection"] == "close"


# -- target policy and rebinding ----------------------------------------------------------
@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://2130706433/",
        "http://0x7f.1/",
        "http://127.1/",
        "http://0177.0.0.1/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:7f00:1]/",
        "http://169.254.169.254/latest/meta-data/",
        "http://web.local.test/",
        "http://private.example.test/",
        "http://mapped.example.test/",
    ],
)
def test_forbidden_targets_by_default(strict_call, url):
    assert error_of(strict_call, "fetch_url", url).code == "forbidden_target"


def test_connects_to_the_address_it_checked(call, http_server, dns_server):
    """rebind.local.test answers 127.0.0.1, then 10.9.9.9: one lookup, one connection to the checked address."""
    before = dns_server.authority.rebinding_queries
    result = call("fetch_url", f"http://rebind.local.test:{http_server.port}/text")
    assert result["address"] == "127.0.0.1" and result["body"] == TEXT
    assert dns_server.authority.rebinding_queries == before + 1


# -- bad requests -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"url": "ftp://web.local.test/"}, "unsupported scheme"),
        ({"url": "file:///etc/passwd"}, "unsupported scheme"),
        ({"url": "http:///path"}, "has no host"),
        ({"url": "http://user:pw@web.local.test/"}, "credentials"),
        ({"url": "http://web.local.test:99999/"}, "not a valid URL"),
        ({"url": "http://web.local.test/", "method": "POST"}, "only GET and HEAD"),
        ({"url": "http://web.local.test/", "headers": {"Content-Length": "5"}}, "set by the gateway"),
        ({"url": "http://web.local.test/", "headers": {"X-Evil": "a\r\nInjected: yes"}}, "not a valid HTTP header"),
        ({"url": "http://web.local.test/", "headers": {"Bad Name": "x"}}, "not a valid HTTP header"),
        ({"url": "http://web.local.test/", "max_bytes": 10 * 1024 * 1024 + 1}, "max_bytes must be between"),
        ({"url": "http://web.local.test/", "max_bytes": -1}, "max_bytes must be between"),
    ],
)
def test_bad_requests_are_invalid_argument(call, kwargs, message):
    err = error_of(call, "fetch_url", **kwargs)
    assert err.code == "invalid_argument" and message in err.message


def test_settings_can_lower_the_body_cap(settings):
    from tests.conftest import checked_call, make_gateway

    call = checked_call(make_gateway(settings.replace(max_body_bytes=1000)))
    assert error_of(call, "fetch_url", "http://web.local.test/", max_bytes=1001).code == "invalid_argument"


def test_refused_connection(call, closed_port):
    assert error_of(call, "fetch_url", f"http://127.0.0.1:{closed_port}/").code == "connection_failed"


def test_unknown_host_is_not_found(call):
    assert error_of(call, "fetch_url", "http://nope.example.test/").code == "not_found"


def test_server_that_never_answers_is_timeout(quick_call, silent_port):
    assert error_of(quick_call, "fetch_url", f"http://127.0.0.1:{silent_port}/").code == "timeout"
