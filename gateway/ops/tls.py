"""tls_check: a TLS handshake and a report on the certificate the server presents."""

from __future__ import annotations

import ssl
from typing import Annotated, TypedDict

from gateway.context import Context
from gateway.errors import CONNECTION_FAILED, FORBIDDEN_TARGET, INVALID_ARGUMENT, NOT_FOUND, TIMEOUT, GatewayError
from gateway.ops._net import connect_any, open_tcp
from gateway.ops._tls import Certificate, certificate_report, handshake, hostname_matches, tls_name, verify_problem
from gateway.policy import ip_literal
from gateway.registry import Range, operation

__all__ = ["tls_check"]


class TlsReport(TypedDict):
    """The outcome of a TLS handshake: a certificate that fails verification is reported, not raised."""

    host: str
    port: int
    server_name: Annotated[str, "SNI sent: server_name, else host unless it is an IP address"]
    address: Annotated[str, "IP address actually connected"]
    protocol: Annotated[str, "e.g. TLSv1.3"]
    cipher: str
    verified: Annotated[bool, "the chain verifies against the trust store and the name matches"]
    verify_error: Annotated[
        str, "empty when verified; else expired, not yet valid, self-signed, unknown issuer, hostname mismatch…"
    ]
    hostname_match: Annotated[bool, "the certificate's names cover server_name (or host)"]
    certificate: Certificate
    elapsed_ms: float


@operation(
    errors=(INVALID_ARGUMENT, NOT_FOUND, FORBIDDEN_TARGET, TIMEOUT, CONNECTION_FAILED),
    example={"host": "example.com", "port": 443},
)
def tls_check(
    ctx: Context,
    host: Annotated[str, "host name or IP address"],
    port: Annotated[int, "TCP port", Range(1, 65535)] = 443,
    server_name: Annotated[str, "name to send as SNI and check the certificate against; default: host"] = "",
) -> TlsReport:
    """Perform a TLS handshake and report the protocol, cipher and certificate, and whether it verifies."""
    checked_name = tls_name(server_name or host)  # before any connection: a name TLS cannot carry is the caller's
    sni = "" if ip_literal(checked_name) is not None else checked_name
    conn = open_tcp(ctx, host, port)
    problem = ""
    try:
        tls = handshake(conn.sock, ctx.services.tls.chain, checked_name, ctx.deadline)
    except ssl.SSLCertVerificationError as exc:
        # Verification failed: look again without verifying, at the same checked address, to report the certificate.
        problem = verify_problem(exc)
        sock, _, reason = connect_any(ctx, [conn.address], port)
        if sock is None:
            raise GatewayError(CONNECTION_FAILED, f"cannot reconnect to {host} port {port}: {reason}") from None
        tls = handshake(sock, ctx.services.tls.none, checked_name, ctx.deadline)
    try:
        der = tls.getpeercert(binary_form=True)
        protocol, cipher = tls.version() or "", (tls.cipher() or ("",))[0]
    finally:
        tls.close()
    if not der:
        raise GatewayError(CONNECTION_FAILED, f"{host} port {port} presented no certificate")
    report, names, unreadable = certificate_report(der)
    matches = names is not None and hostname_matches(names, checked_name)
    problems = [problem] if problem else []
    if unreadable:  # the names cannot be checked: not verified, however OpenSSL read them
        problems.append(unreadable)
    elif not matches:
        problems.append(f"hostname mismatch: certificate does not cover {checked_name}")
    return {  # type: ignore[typeddict-item]
        "host": host,
        "port": port,
        "server_name": sni,
        "address": conn.address,
        "protocol": protocol,
        "cipher": cipher,
        "verified": not problems,
        "verify_error": "; ".join(problems),
        "hostname_match": matches,
        "certificate": report,
    }
