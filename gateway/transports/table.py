"""The one table of transports: everything that differs between them, in one row each.

Settings, ``server.py``, :mod:`gateway.client`, ``netops``, the docs page, the
benchmark and the tests read their lists of transports from here.  Adding a
transport is one codec module (a :class:`~gateway.net.session.Codec`) and one
row.  Codecs are named by import path, so reading the table imports no
protocol library.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from gateway.net.session import Codec

__all__ = ["TABLE", "TRANSPORTS", "TransportRow", "codec_class", "row"]


@dataclass(frozen=True)
class TransportRow:
    """One transport: its name, how people write it, where it listens, how it names methods, how to reach it."""

    name: str
    label: str  # as people write it
    default_port: int
    style: Literal["dotted", "underscore"]  # method names with dots (system.listMethods) or underscores
    codec: str  # "module:Class" of its Codec
    scheme: str  # the URL scheme gateway.client and netops take (tls: an "s" is added to http)
    path: str = ""  # the URL path, for HTTP transports

    def url(self, host: str, port: int, tls: bool = False) -> str:
        """The URL ``gateway.client.connect`` and ``netops --url`` take for this transport."""
        host = f"[{host}]" if ":" in host else host
        scheme = self.scheme + ("s" if tls and self.scheme == "http" else "")
        return f"{scheme}://{host}:{port}{self.path}"


TABLE: tuple[TransportRow, ...] = (
    TransportRow("xmlrpc", "XML-RPC", 7001, "dotted", "gateway.transports.xmlrpc:XMLRPCCodec", "http", "/RPC2"),
    TransportRow("jsonrpc", "JSON-RPC 2.0", 7002, "dotted", "gateway.transports.jsonrpc:JSONRPCCodec", "http", "/"),
    TransportRow("pyro", "Pyro5", 7003, "underscore", "gateway.transports.pyro:PyroCodec", "pyro"),
    TransportRow("thrift", "Thrift", 7004, "underscore", "gateway.transports.thrift:ThriftCodec", "thrift"),
    TransportRow("rpyc", "RPyC", 18861, "underscore", "gateway.transports.rpyc:RPyCCodec", "rpyc"),
)
TRANSPORTS = tuple(r.name for r in TABLE)
_BY_NAME = {r.name: r for r in TABLE}


def row(name: str) -> TransportRow:
    """The row of transport ``name`` (KeyError if there is none)."""
    return _BY_NAME[name]


def codec_class(name: str) -> type[Codec]:
    """Import and return the codec class of transport ``name``."""
    module, _, cls = row(name).codec.partition(":")
    return getattr(importlib.import_module(module), cls)  # type: ignore[no-any-return]
