"""Certificates for the local TLS servers, from a test CA (trustme): one per failure people meet."""

from __future__ import annotations

import datetime
import ssl
from pathlib import Path

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtensionOID, NameOID

NOW = datetime.datetime.now(datetime.UTC)
DAY = datetime.timedelta(days=1)


class PKI:
    """A trusted test CA, a stranger CA, and a server context per scenario, chosen by SNI."""

    def __init__(self, directory: Path) -> None:
        self.ca = trustme.CA(organization_name="NetOps Test CA")
        self.stranger = trustme.CA(organization_name="Stranger CA")
        self.ca_file = directory / "test-ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        issue = self.ca.issue_cert
        self.leaves = {
            "valid.local.test": issue("valid.local.test", "web.local.test", "127.0.0.1", not_after=NOW + 90 * DAY),
            "web.local.test": None,  # served by the "valid" certificate
            "expired.local.test": issue("expired.local.test", not_before=NOW - 60 * DAY, not_after=NOW - 2 * DAY),
            "notyet.local.test": issue("notyet.local.test", not_before=NOW + 10 * DAY, not_after=NOW + 100 * DAY),
            "wronghost.local.test": issue("somewhere-else.local.test"),
            "unknownca.local.test": self.stranger.issue_cert("unknownca.local.test"),
        }
        self.contexts = {name: self._context(leaf) for name, leaf in self.leaves.items() if leaf is not None}
        self.contexts["web.local.test"] = self.contexts["valid.local.test"]
        # A self-signed certificate: the stranger CA's own root, presented as the server's certificate.
        self_signed = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.stranger.cert_pem.write_to_path(str(directory / "selfsigned.pem"))
        self.stranger.private_key_pem.write_to_path(str(directory / "selfsigned.key"))
        self_signed.load_cert_chain(str(directory / "selfsigned.pem"), str(directory / "selfsigned.key"))
        self.contexts["selfsigned.local.test"] = self_signed
        # Certificates OpenSSL serves and verifies but cryptography will not read whole (seen on real servers).
        self.odd_key = ec.generate_private_key(ec.SECP256R1())
        self.odd: dict[str, bytes] = {}  # name -> DER
        oddsan = _san(b"\x82\x11oddsan.local.test", b"\x87\x05\x7f\x00\x00\x01\x00")  # an IP of 5 bytes
        self.odd["oddsan.local.test"] = self._issue("oddsan.local.test", oddsan)
        # A PrintableString may not hold "_": the subject is rewritten so (which breaks the CA's signature).
        badcert = self._issue("bad_cert.local", _san(b"\x82\x12badcert.local.test"))
        self.odd["badcert.local.test"] = badcert.replace(b"\x0c\x0ebad_cert.local", b"\x13\x0ebad_cert.local", 1)
        # Names holding control characters (a UTF8String and an IA5String may): ESC in the subject, SOH in the SAN.
        names = [x509.DNSName("ctlname.local.test"), x509.DNSName("ctl\x01name.local.test")]
        self.odd["ctlname.local.test"] = self._issue("ctl\x1bname", x509.SubjectAlternativeName(names))
        for name, der in self.odd.items():
            self.contexts[name] = self._der_context(directory, name, der)

    def _issue(self, common_name: str, san: x509.ExtensionType) -> bytes:
        """A leaf of the test CA with ``san`` as its subjectAltName, written as given (DER)."""
        ca = x509.load_pem_x509_certificate(self.ca.cert_pem.bytes())
        ca_key = serialization.load_pem_private_key(self.ca.private_key_pem.bytes(), None)
        assert isinstance(ca_key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(ca.subject)
            .public_key(self.odd_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - DAY)
            .not_valid_after(NOW + 30 * DAY)
            .add_extension(san, critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        return cert.public_bytes(serialization.Encoding.DER)

    def _der_context(self, directory: Path, name: str, der: bytes) -> ssl.SSLContext:
        (directory / f"{name}.pem").write_text(ssl.DER_cert_to_PEM_cert(der))
        key = self.odd_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        (directory / f"{name}.key").write_bytes(key)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(directory / f"{name}.pem"), str(directory / f"{name}.key"))
        return ctx

    @staticmethod
    def _context(leaf: trustme.LeafCert) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        leaf.configure_cert(ctx)
        return ctx

    def server_context(self) -> ssl.SSLContext:
        """A server context that picks the certificate by the SNI the client sent (valid by default)."""
        default = self.contexts["valid.local.test"]

        def pick(sock: ssl.SSLObject, server_name: str | None, _: ssl.SSLContext) -> None:
            sock.context = self.contexts.get(server_name or "", default)

        default.sni_callback = pick
        return default


def _san(*names: bytes) -> x509.UnrecognizedExtension:
    """A subjectAltName of general names already encoded (tag, length, value), as a server may present one."""
    body = b"".join(names)
    return x509.UnrecognizedExtension(ExtensionOID.SUBJECT_ALTERNATIVE_NAME, b"\x30" + bytes([len(body)]) + body)
