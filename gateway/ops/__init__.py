"""The networking operations, one module per family; :func:`default_registry` lists them all.

Adding an operation means writing one function marked ``@operation`` in one of
these modules, adding it to ``OPERATIONS`` and writing its tests: every
transport, introspection, multicall and the Thrift IDL pick it up from here.
"""

from __future__ import annotations

from gateway.ops.dns import dns_query, mx_lookup, resolve, reverse_lookup
from gateway.ops.http import fetch_url
from gateway.ops.tcp import tcp_connect
from gateway.ops.tls import tls_check
from gateway.registry import Registry

__all__ = ["OPERATIONS", "default_registry"]

OPERATIONS = (resolve, reverse_lookup, dns_query, mx_lookup, tls_check, fetch_url, tcp_connect)


def default_registry() -> Registry:
    """A registry holding every networking operation."""
    registry = Registry()
    for func in OPERATIONS:
        registry.register(func)
    return registry
