"""What the HTTP ports answer to GET: the docs page, health, readiness, metrics and the OpenRPC document.

``GET /idl/netops.thrift`` and ``GET /idl/netops.proto`` are the IDLs the gateway serves.
``GET /`` on the JSON-RPC port is the documentation page, whose forms call
JSON-RPC on the same origin; on the XML-RPC port it redirects there (or, with
no JSON-RPC running, serves the page without forms).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

from gateway.core import DOTTED, Gateway
from gateway.docs import Endpoint, render_page
from gateway.metrics import CONTENT_TYPE, Metrics
from gateway.openrpc import openrpc_document

__all__ = ["Response", "Site"]

Response = tuple[int, bytes, str, tuple[tuple[str, str], ...]]


class Site:
    """The GET routes shared by the XML-RPC and JSON-RPC ports."""

    def __init__(
        self,
        gateway: Gateway,
        metrics: Metrics | None,
        ready: Callable[[], str],
        endpoints: Sequence[Endpoint],
        jsonrpc_port: int | None,
    ) -> None:
        self.gateway = gateway
        self.metrics = metrics
        self.ready = ready  # "" when ready, else the reason it is not
        self.jsonrpc_port = jsonrpc_port
        operations = [(name, gateway.lookup(name)) for name in gateway.method_names(DOTTED)]
        self._page = render_page(operations, endpoints, "/").encode()
        self._page_without_forms = render_page(operations, endpoints, "").encode()
        self._openrpc = json.dumps(openrpc_document(gateway, DOTTED), indent=1).encode()
        self._thrift_idl = _thrift_idl(gateway)
        self._proto = _proto()

    def get(self, path: str, transport: str, local: str) -> Response:
        """Answer ``GET path`` arriving on ``transport``'s port at the gateway's address ``local``.

        The docs redirect goes to that address, the one the client reached: a ``Host`` header is the
        client's to choose, and following it would make the gateway an open redirect.
        """
        path = path.split("?", 1)[0]
        if path == "/healthz":
            return 200, b"ok\n", "text/plain", ()
        if path == "/readyz":
            reason = self.ready()
            return (
                (503, f"not ready: {reason}\n".encode(), "text/plain", ())
                if reason
                else (200, b"ready\n", "text/plain", ())
            )
        if path == "/metrics" and self.metrics is not None:
            return 200, self.metrics.exposition(), CONTENT_TYPE, ()
        if path == "/openrpc.json":
            return 200, self._openrpc, "application/json", ()
        if path == "/idl/netops.thrift":
            return 200, self._thrift_idl, "text/plain; charset=utf-8", ()
        if path == "/idl/netops.proto":
            return 200, self._proto, "text/plain; charset=utf-8", ()
        if path in ("/", "/docs"):
            if transport == "jsonrpc":
                return 200, self._page, "text/html; charset=utf-8", ()
            if self.jsonrpc_port is not None:
                hostname = f"[{local}]" if ":" in local else local
                scheme = "https" if self.gateway.services.settings.tls_cert else "http"
                location = f"{scheme}://{hostname}:{self.jsonrpc_port}/"
                return 302, b"", "text/plain", (("Location", location),)
            return 200, self._page_without_forms, "text/html; charset=utf-8", ()
        return 404, b"not found\n", "text/plain", ()


def _thrift_idl(gateway: Gateway) -> bytes:
    """The Thrift IDL of the operations this gateway serves (what idl/netops.thrift holds for all of them)."""
    from gateway.core import SYSTEM_NAMES
    from gateway.idl import render
    from gateway.registry import Registry

    return render(Registry([op for op in gateway.registry if op.name not in SYSTEM_NAMES])).encode()


def _proto() -> bytes:
    """The gRPC service's .proto (what idl/netops.proto holds): the service serves every operation's RPC."""
    from gateway.core import SYSTEM_OPERATIONS
    from gateway.ops import default_registry
    from gateway.proto import render
    from gateway.registry import describe

    return render(default_registry(), [describe(f) for f in SYSTEM_OPERATIONS]).encode()
