"""tls_check against local TLS servers with certificates from a test CA."""

from __future__ import annotations

import hashlib
import re
import ssl

import pytest

from tests.conftest import error_of

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def test_valid_certificate(call, https_server, pki):
    result = call("tls_check", "valid.local.test", https_server.port)
    assert result["verified"] is True and result["verify_error"] == "" and result["hostname_match"] is True
    assert result["server_name"] == "valid.local.test" and result["address"] == "127.0.0.1"
    assert result["protocol"].startswith("TLSv1.") and result["cipher"]
    cert = result["certificate"]
    assert "NetOps Test CA" in cert["issuer"] and cert["subject"].startswith("OU=") and "O=trustme" in cert["subject"]
    assert cert["san"] == ["valid.local.test", "web.local.test", "127.0.0.1"]
    assert ISO.match(cert["not_before"]) and ISO.match(cert["not_after"])
    assert cert["days_remaining"] in (88, 89, 90)
    assert re.fullmatch(r"[0-9a-f]+", cert["serial"])
    leaf_der = ssl.PEM_cert_to_DER_cert(pki.leaves["valid.local.test"].cert_chain_pems[0].bytes().decode())
    assert cert["sha256"] == hashlib.sha256(leaf_der).hexdigest()


@pytest.mark.parametrize(
    ("host", "reason", "hostname_match"),
    [
        ("expired.local.test", "expired", True),
        ("notyet.local.test", "not yet valid", True),
        ("wronghost.local.test", "hostname mismatch", False),
        ("selfsigned.local.test", "self-signed", False),
        ("unknownca.local.test", "unknown issuer", True),
    ],
)
def test_failed_verification_is_a_report(call, https_server, host, reason, hostname_match):
    result = call("tls_check", host, https_server.port)
    assert result["verified"] is False
    assert result["verify_error"].startswith(reason)
    assert result["hostname_match"] is hostname_match
    assert result["certificate"]["sha256"]  # the certificate is still described


def test_a_certificate_whose_names_cannot_be_read_is_a_report(call, https_server, pki):
    # OpenSSL serves and verifies it (its SAN holds an IP address of 5 bytes); its names cannot be checked.
    result = call("tls_check", "oddsan.local.test", https_server.port)
    assert result["verified"] is False and result["hostname_match"] is False
    assert result["verify_error"].startswith("the certificate's extensions cannot be parsed: ")
    cert = result["certificate"]
    assert cert["subject"] == "CN=oddsan.local.test" and "NetOps Test CA" in cert["issuer"] and cert["san"] == []
    assert cert["days_remaining"] in (29, 30)
    assert cert["sha256"] == hashlib.sha256(pki.odd["oddsan.local.test"]).hexdigest()


def test_a_certificate_that_cannot_be_read_is_a_report(call, https_server, pki):
    result = call("tls_check", "badcert.local.test", https_server.port)
    assert result["verified"] is False and result["hostname_match"] is False
    assert "the certificate cannot be parsed: invalid value in PrintableString" in result["verify_error"]
    assert result["protocol"].startswith("TLSv1.") and result["cipher"]
    assert result["certificate"] == {
        "subject": "",
        "issuer": "",
        "san": [],
        "not_before": "",
        "not_after": "",
        "days_remaining": 0,
        "serial": "",
        "sha256": hashlib.sha256(pki.odd["badcert.local.test"]).hexdigest(),
    }


def test_control_characters_in_a_certificate_s_names_are_escaped(call, https_server):
    # RFC 4514's escape in a distinguished name; \x01 in a SAN DNS name (see gateway.ops._text).
    result = call("tls_check", "ctlname.local.test", https_server.port)
    assert result["verified"] is True
    assert result["certificate"]["subject"] == "CN=ctl\\1Bname"
    assert result["certificate"]["san"] == ["ctlname.local.test", "ctl\\x01name.local.test"]


def test_expired_certificate_has_negative_days(call, https_server):
    assert call("tls_check", "expired.local.test", https_server.port)["certificate"]["days_remaining"] < 0


def test_server_name_overrides_sni_and_the_name_checked(call, https_server):
    result = call("tls_check", "127.0.0.1", https_server.port, "expired.local.test")
    assert result["server_name"] == "expired.local.test"
    assert result["certificate"]["san"] == ["expired.local.test"]
    assert result["hostname_match"] is True and result["verify_error"].startswith("expired")


def test_ip_literal_sends_no_sni_and_matches_ip_san(call, https_server):
    result = call("tls_check", "127.0.0.1", https_server.port)
    assert result["server_name"] == "" and result["hostname_match"] is True and result["verified"] is True


def test_not_a_tls_server_is_connection_failed(call, http_server):
    err = error_of(call, "tls_check", "web.local.test", http_server.port)
    assert err.code == "connection_failed" and "TLS handshake failed" in err.message


def test_refused_is_connection_failed(call, closed_port):
    err = error_of(call, "tls_check", "127.0.0.1", closed_port)
    assert err.code == "connection_failed" and "connection refused" in err.message


def test_stalled_handshake_is_timeout(quick_call, silent_port):
    assert error_of(quick_call, "tls_check", "127.0.0.1", silent_port).code == "timeout"


def test_unknown_name_is_not_found(call):
    assert error_of(call, "tls_check", "nope.example.test").code == "not_found"


def test_forbidden_target(strict_call, https_server):
    assert error_of(strict_call, "tls_check", "valid.local.test", https_server.port).code == "forbidden_target"


@pytest.mark.parametrize("port", [0, 65536, -1])
def test_port_out_of_range(call, port):
    assert error_of(call, "tls_check", "valid.local.test", port).code == "invalid_argument"
