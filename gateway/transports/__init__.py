"""The five transport adapters, each a thin layer over :class:`gateway.core.Gateway`."""

from __future__ import annotations

from gateway.transports.base import Transport
from gateway.transports.jsonrpc import JSONRPCTransport
from gateway.transports.pyro import PyroTransport
from gateway.transports.rpyc import RPyCTransport
from gateway.transports.thrift import ThriftTransport
from gateway.transports.xmlrpc import XMLRPCTransport

__all__ = ["TRANSPORT_CLASSES", "Transport"]

TRANSPORT_CLASSES: dict[str, type[Transport]] = {
    "xmlrpc": XMLRPCTransport,
    "jsonrpc": JSONRPCTransport,
    "pyro": PyroTransport,
    "thrift": ThriftTransport,
    "rpyc": RPyCTransport,
}
