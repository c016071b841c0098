"""The server TLS context every endpoint shares, built once from the settings."""

from __future__ import annotations

import ssl

from gateway.config import Settings

__all__ = ["server_context"]


def server_context(settings: Settings) -> ssl.SSLContext | None:
    """The server TLS context of every endpoint, or None when TLS is off; ValueError names a bad file."""
    if not settings.tls_cert:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(settings.tls_cert, settings.tls_key)
        if settings.tls_client_ca:
            context.load_verify_locations(settings.tls_client_ca)
            context.verify_mode = ssl.CERT_REQUIRED
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"cannot load the TLS certificate, key or client CA: {exc}") from None
    return context
