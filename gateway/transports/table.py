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
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from gateway.net.session import TransportCodec

__all__ = ["TABLE", "TRANSPORTS", "TransportRow", "client_class", "codec_class", "row"]


@dataclass(frozen=True)
class TransportRow:
    """One transport: its name, how people write it, where it listens, how it names methods, how to reach it."""

    name: str
    label: str  # as people write it
    default_port: int
    style: Literal["dotted", "underscore"]  # method names with dots (system.listMethods) or underscores
    codec: str  # "module:Class" of its Codec
    client: str  # "module:Class" of its gateway.client backend (on the transport's stock client library)
    scheme: str  # the endpoint's URL scheme, for HTTP transports (tls: an "s" is added)
    path: str = ""  # the URL path, for HTTP transports

    def url(self, host: str, port: int, tls: bool = False) -> str:
        """The endpoint's URL, as stock HTTP clients take it."""
        host = f"[{host}]" if ":" in host else host
        scheme = self.scheme + ("s" if tls and self.scheme == "http" else "")
        return f"{scheme}://{host}:{port}{self.path}"


_T, _C = "gateway.transports.", "gateway.client:"
TABLE: tuple[TransportRow, ...] = (
    TransportRow("xmlrpc", "XML-RPC", 7001, "dotted", _T + "xmlrpc:XMLRPCCodec", _C + "_XMLRPC", "http", "/RPC2"),
    TransportRow("jsonrpc", "JSON-RPC 2.0", 7002, "dotted", _T + "jsonrpc:JSONRPCCodec", _C + "_JSONRPC", "http", "/"),
    TransportRow("pyro", "Pyro5", 7003, "underscore", _T + "pyro:PyroCodec", _C + "_Pyro", "pyro"),
    TransportRow("thrift", "Thrift", 7004, "underscore", _T + "thrift:ThriftCodec", _C + "_Thrift", "thrift"),
    TransportRow("rpyc", "RPyC", 18861, "underscore", _T + "rpyc:RPyCCodec", _C + "_RPyC", "rpyc"),
    TransportRow("mcp", "MCP", 7005, "underscore", _T + "mcp:MCPCodec", _C + "_MCP", "http", "/mcp"),
    TransportRow("grpc", "gRPC", 50051, "underscore", _T + "grpc:GRPCCodec", _C + "_GRPC", "grpc"),
)
TRANSPORTS = tuple(r.name for r in TABLE)
_BY_NAME = {r.name: r for r in TABLE}


def row(name: str) -> TransportRow:
    """The row of transport ``name`` (KeyError if there is none)."""
    return _BY_NAME[name]


def _load(path: str) -> Any:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def codec_class(name: str) -> type[TransportCodec]:
    """Import and return the codec class of transport ``name``."""
    return _load(row(name).codec)  # type: ignore[no-any-return]


def client_class(name: str) -> type:
    """Import and return the :mod:`gateway.client` backend class of transport ``name``."""
    return _load(row(name).client)  # type: ignore[no-any-return]
