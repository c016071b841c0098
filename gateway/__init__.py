"""NetOps Gateway: networking operations (DNS, MX, TLS, HTTP, TCP) over seven RPC transports.

The service layer (registry, core, operations) has no RPC code; the
transports in :mod:`gateway.transports` are thin adapters over :class:`Gateway`.
"""

from __future__ import annotations

__version__ = "0.1.0"

from gateway.config import Settings, load_settings
from gateway.errors import CODES, GatewayError

__all__ = ["CODES", "Gateway", "GatewayError", "Settings", "__version__", "build_gateway", "load_settings"]


def build_gateway(settings: Settings | None = None) -> Gateway:
    """A gateway over every operation, configured by ``settings`` (defaults if None)."""
    from gateway.context import Services
    from gateway.ops import default_registry

    settings = settings or Settings()
    return Gateway(default_registry(), Services.from_settings(settings))


from gateway.core import Gateway  # noqa: E402
