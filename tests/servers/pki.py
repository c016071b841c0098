"""Certificates for the local TLS servers, from a test CA (trustme): one per failure people meet."""

from __future__ import annotations

import datetime
import ssl
from pathlib import Path

import trustme

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
