"""TLS helpers shared by tls_check and fetch_url: handshakes, verification reasons, certificate reports."""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import re
import socket
import ssl
from typing import Annotated, TypedDict

from cryptography import x509

from gateway.context import Deadline
from gateway.errors import CONNECTION_FAILED, INVALID_ARGUMENT, GatewayError
from gateway.ops._net import os_reason
from gateway.ops._text import dn_escape, shown
from gateway.policy import ip_literal

__all__ = ["Certificate", "Names", "certificate_report", "handshake", "hostname_matches", "iso_utc", "verify_problem"]

# OpenSSL X509_V_ERR_* codes, named the way people say them.
_VERIFY_REASONS = {
    9: "not yet valid",
    10: "expired",
    18: "self-signed",
    19: "self-signed",
    2: "unknown issuer",
    20: "unknown issuer",
    21: "unknown issuer",
    62: "hostname mismatch",
}


class Certificate(TypedDict):
    """The server's leaf certificate."""

    subject: Annotated[str, "RFC 4514 distinguished name"]
    issuer: Annotated[str, "RFC 4514 distinguished name"]
    san: Annotated[list[str], "subject alternative names (DNS names and IP addresses)"]
    not_before: Annotated[str, "ISO 8601 UTC"]
    not_after: Annotated[str, "ISO 8601 UTC"]
    days_remaining: Annotated[int, "whole days until not_after; negative once expired"]
    serial: Annotated[str, "serial number, hex"]
    sha256: Annotated[str, "SHA-256 fingerprint of the DER certificate, hex"]


def iso_utc(moment: datetime.datetime) -> str:
    """ISO 8601 UTC with a Z, to the second."""
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def verify_problem(exc: ssl.SSLCertVerificationError) -> str:
    """A clear reason for a failed verification, e.g. ``expired: certificate has expired``."""
    message = (exc.verify_message or exc.reason or "certificate verify failed").strip()
    label = _VERIFY_REASONS.get(exc.verify_code)
    if not label:
        return message
    if message.lower().startswith(label):
        return label + message[len(label) :]  # "Hostname mismatch, …" reads "hostname mismatch, …"
    return f"{label}: {message}"


def tls_name(name: str) -> str:
    """``name`` if TLS can send it as SNI and check a certificate against it: a host name whose labels
    encode (IDNA), or an IP literal (no SNI is sent for one; its IP SANs are checked); else invalid_argument."""
    if ip_literal(name) is not None:
        return name
    problem = ""
    if not name or len(name) > 253 or any(c in name for c in "\x00/\\@ :"):
        problem = "not a host name"
    else:
        try:
            name.encode("idna")
        except (UnicodeError, ValueError) as exc:
            problem = str(exc.__cause__ or exc).removeprefix("encoding with 'idna' codec failed ")
    if problem:
        raise GatewayError(INVALID_ARGUMENT, f"{name[:100]!r} cannot be a TLS server name: {problem}")
    return name


def handshake(sock: socket.socket, context: ssl.SSLContext, server_name: str, deadline: Deadline) -> ssl.SSLSocket:
    """Run a client TLS handshake within the deadline; verification failures propagate, others are errors.

    ``server_name`` is sent as SNI and checked against the certificate (an IP literal: checked, not sent).
    """
    sock.settimeout(deadline.remaining())
    try:
        return context.wrap_socket(sock, server_hostname=server_name or None)
    except ssl.SSLCertVerificationError:
        sock.close()
        raise
    except ssl.SSLError as exc:
        sock.close()
        reason = (exc.reason or str(exc)).lower().replace("_", " ")
        raise GatewayError(CONNECTION_FAILED, f"TLS handshake failed: {reason}") from None
    except TimeoutError:
        sock.close()
        raise deadline.expired() from None
    except OSError as exc:
        sock.close()
        raise GatewayError(CONNECTION_FAILED, f"TLS handshake failed: {os_reason(exc)}") from None


# A certificate's DNS names and IP addresses (as text) from its subjectAltName.
Names = tuple[list[str], list[str]]

# What cryptography raises for a certificate, or an extension, it will not read.
_UNREADABLE = (ValueError, x509.InvalidVersion, x509.DuplicateExtension, x509.UnsupportedGeneralNameType)


def _names(cert: x509.Certificate) -> Names:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return [], []
    return san.get_values_for_type(x509.DNSName), [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]


def hostname_matches(names: Names, name: str) -> bool:
    """RFC 6125 matching of ``name`` against a certificate's SAN: wildcards only as the whole leftmost label."""
    dns_names, ips = names
    ip = ip_literal(name)
    if ip is not None:
        return any(ipaddress.ip_address(i) == ip for i in ips)
    wanted = name.lower().rstrip(".").split(".")
    for pattern in dns_names:
        labels = pattern.lower().rstrip(".").split(".")
        if len(labels) != len(wanted):
            continue
        if labels == wanted or (labels[0] == "*" and len(labels) > 2 and labels[1:] == wanted[1:]):
            return True
    return False


def certificate_report(der: bytes) -> tuple[Certificate, Names | None, str]:
    """Describe a DER certificate as far as it can be read: the report, its names (None when they cannot be
    read), and what could not be read ("" when everything could).

    OpenSSL completes a handshake with certificates that cryptography's stricter parser refuses (an underscore
    in a PrintableString, an IP address of 5 bytes in the SAN, a version 1 certificate with extensions): a
    server's malformed certificate is something to report, and what cannot be read is left absent.
    """
    sha256 = hashlib.sha256(der).hexdigest()
    try:
        cert = x509.load_der_x509_certificate(der)
        not_after = cert.not_valid_after_utc
        report: Certificate = {
            "subject": shown(cert.subject.rfc4514_string(), dn_escape),
            "issuer": shown(cert.issuer.rfc4514_string(), dn_escape),
            "san": [],
            "not_before": iso_utc(cert.not_valid_before_utc),
            "not_after": iso_utc(not_after),
            "days_remaining": int((not_after - datetime.datetime.now(datetime.UTC)).total_seconds() // 86400),
            "serial": format(cert.serial_number, "x"),
            "sha256": sha256,
        }
    except _UNREADABLE as exc:
        unread: Certificate = {
            "subject": "",
            "issuer": "",
            "san": [],
            "not_before": "",
            "not_after": "",
            "days_remaining": 0,
            "serial": "",
            "sha256": sha256,
        }
        return unread, None, f"the certificate cannot be parsed: {_unreadable(exc)}"
    try:
        names = _names(cert)
    except _UNREADABLE as exc:
        return report, None, f"the certificate's extensions cannot be parsed: {_unreadable(exc)}"
    report["san"] = [shown(name) for name in names[0]] + names[1]
    return report, names, ""


def _unreadable(exc: Exception) -> str:
    """Why cryptography refused, in words: its parse errors name Rust types ("ParseError { kind: InvalidValue,
    location: [..., "AttributeValue::PrintableString"] }"), read here as "invalid value in PrintableString"."""
    text = str(exc)
    found = re.search(r"kind: (\w+)(?:.*?\"(?:\w+::)*(\w+)\" *\])?", text)
    if found is None:
        return text[:200]
    kind, where = found.groups()
    words = re.sub(r"(?<!^)(?=[A-Z])", " ", kind).lower()
    return f"{words} in {where}" if where else words
