"""XML-RPC: the stdlib's marshalling over the shared HTTP/1.1 server, parsed by defusedxml.

Types: XML-RPC int/double/boolean/string/array/struct map one to one onto the
registry's types; ``<nil/>``, dates and base64 are refused by argument
validation.  Errors: a ``Fault`` whose faultCode comes from
:data:`gateway.errors.NUMERIC` and whose faultString starts with the stable
code (``not_found: …``); a body that is not well-formed XML-RPC is -32700.
Entity declarations are refused (defusedxml) and gzip request bodies are not
accepted at all, so no payload can expand beyond the request size cap.
"""

from __future__ import annotations

import xml.parsers.expat
import xmlrpc.client
from typing import Any

from defusedxml import DefusedXmlException
from defusedxml.xmlrpc import DefusedExpatParser

from gateway.core import DOTTED
from gateway.errors import INVALID_ARGUMENT, PARSE_ERROR, GatewayError
from gateway.observe import Caller
from gateway.transports._http import App, HTTPCodec
from gateway.transports.base import guarded, internal_error

__all__ = ["XMLRPCCodec"]


def loads(body: bytes) -> tuple[tuple[Any, ...], str]:
    """Parse a methodCall with entity expansion forbidden: (params, method name)."""
    unmarshaller = xmlrpc.client.Unmarshaller()
    parser = DefusedExpatParser(unmarshaller)
    parser.feed(body)
    parser.close()
    name = unmarshaller.getmethodname()
    if not isinstance(name, str):
        raise ValueError("no methodName")
    return unmarshaller.close(), name


def fault(error: GatewayError, number: int | None = None) -> bytes:
    """A methodResponse carrying a fault."""
    return xmlrpc.client.dumps(xmlrpc.client.Fault(number or error.number, str(error)), methodresponse=True).encode()


class _XMLRPCApp(App):
    paths = frozenset({"/", "/RPC2"})
    content_type = "text/xml; charset=utf-8"
    accepts = frozenset({"text/xml", "application/xml"})
    transport = "xmlrpc"

    def handle(self, body: bytes, caller: Caller) -> bytes:
        try:
            params, name = loads(body)
        except (xml.parsers.expat.ExpatError, DefusedXmlException, ValueError, TypeError, IndexError):
            self.gateway.refused(caller, "parse_error")
            return fault(GatewayError(INVALID_ARGUMENT, "request is not a well-formed XML-RPC methodCall"), PARSE_ERROR)
        try:
            result = guarded(
                lambda: self.gateway.call(name, params, style=DOTTED, caller=caller), f"xmlrpc {name[:50]}"
            )
            return xmlrpc.client.dumps((result,), methodresponse=True, encoding="utf-8").encode()
        except GatewayError as exc:
            return fault(exc)
        except Exception as exc:  # encoding the result failed: a bug, not the caller's fault
            return fault(internal_error(exc, f"xmlrpc encoding {name[:50]}"))

    def refuse(self, error: GatewayError) -> bytes:
        return fault(error)


class XMLRPCCodec(HTTPCodec):
    """XML-RPC on ``/RPC2`` (and ``/``)."""

    name = "xmlrpc"
    path = "/RPC2"
    app_class = _XMLRPCApp

    def snippet(self, host: str, port: int, tls: bool) -> str:
        """A stdlib client calling resolve."""
        url = self.endpoint(host, port, tls)
        return f'import xmlrpc.client\nxmlrpc.client.ServerProxy("{url}").resolve("example.com")'
