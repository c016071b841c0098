"""XML-RPC: the stdlib's marshalling over the shared HTTP/1.1 server, parsed by defusedxml (a flat call of
numbers and strings by a strict reader that takes only what expat reads the same way: see :func:`_flat`).

Types: XML-RPC int/double/boolean/string/array/struct map one to one onto the
registry's types; ``<nil/>``, dates and base64 are refused by argument
validation.  Errors: a ``Fault`` whose faultCode comes from
:data:`gateway.errors.NUMERIC` and whose faultString starts with the stable
code (``not_found: …``); a body that is not well-formed XML-RPC is -32700.
Entity declarations are refused (defusedxml) and gzip request bodies are not
accepted at all, so no payload can expand beyond the request size cap.
"""

from __future__ import annotations

import re
import xml.parsers.expat
import xmlrpc.client
from collections.abc import Callable, Mapping
from typing import Any

from defusedxml import DefusedXmlException
from defusedxml.xmlrpc import DefusedExpatParser

from gateway.core import DOTTED
from gateway.errors import INVALID_ARGUMENT, PARSE_ERROR, GatewayError
from gateway.net.budget import MAX_DEPTH, MAX_ITEMS
from gateway.net.session import Deferred
from gateway.observe import Caller
from gateway.transports._http import App, HTTPCodec
from gateway.transports.base import guarded, internal_error
from gateway.transports.long_strings import pieces

__all__ = ["XMLRPCCodec"]


MAX_ELEMENTS = 8 * MAX_ITEMS  # XML elements in one request: a value takes two to four (<value><string>…)


class _Budget(Exception):
    """The request holds more elements, or nests deeper, than the work budget allows."""


class _BoundedUnmarshaller(xmlrpc.client.Unmarshaller):
    """The stdlib's unmarshaller, counting elements and nesting as expat reports them.

    Past the budget it builds nothing more: expat is told to call nothing of
    it, and still reads to the end, so a body that is not well-formed is
    still a parse error (-32700), and one that is well-formed but over the
    budget is refused at ``close``.  Only elements' starts are counted, and
    their text and ends go to the stdlib's own methods: no call of ours
    between expat and them.
    """

    def __init__(self) -> None:
        super().__init__()
        self.elements = 0
        self.over = False
        self.expat: Any = None  # the parser calling us, told to stop calling past the budget

    def start(self, tag: str, attrs: Any) -> None:
        self.elements += 1
        if self.elements > MAX_ELEMENTS or len(self._marks) > MAX_DEPTH:  # type: ignore[attr-defined]
            self.over = True
            self.expat.StartElementHandler = self.expat.EndElementHandler = self.expat.CharacterDataHandler = None
            return
        super().start(tag, attrs)


# A flat call (numbers and strings only) read without expat: half of what the gateway spent on a small call
# went to making an expat parser and walking a few elements with it (79K of 158K instructions). It takes only
# what expat reads the same way: no declaration but version 1.0 in UTF-8, whitespace only between elements,
# text without markup, entities, carriage returns (expat turns them into line feeds) or what XML forbids.
# Anything else (arrays, structs, attributes, other types or encodings) goes to expat, which decides.
_S = r"[ \t\r\n]*"  # XML's whitespace (a regex's \s would take Unicode spaces expat refuses)
_TEXT = r"[^<>&\x00-\x08\x0b-\x1f\ufffe\uffff]*"
_FLAT_CALL = re.compile(
    rf"(?:<\?xml[ \t\r\n]+version=(['\"])1\.0\1(?:[ \t\r\n]+encoding=(['\"])(?:utf|UTF)-8\2)?{_S}\?>)?{_S}"
    rf"<methodCall>{_S}<methodName>([A-Za-z_][A-Za-z0-9_.:]*)</methodName>{_S}"
    rf"(?:<params>(.*)</params>{_S}|<params/>{_S})?</methodCall>{_S}",
    re.DOTALL,
)
_FLAT_PARAM = re.compile(
    rf"{_S}<param>{_S}<value>(?:{_S}<(string|int|i4|i8|double|boolean)>({_TEXT})</\1>{_S}|({_TEXT}))</value>"
    rf"{_S}</param>"
)
_FROM_TEXT: dict[str, Callable[[str], Any]] = {"string": str, "int": int, "i4": int, "i8": int, "double": float}
_MAX_FLAT = MAX_ELEMENTS // 4  # parameters: each takes four elements (param, value, a type)


def _flat(body: bytes) -> tuple[tuple[Any, ...], str] | None:
    """(params, method name) of a flat methodCall, read as :func:`loads` would; None for anything else."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    call = _FLAT_CALL.fullmatch(text)
    if call is None:
        return None
    block, at = call[4] or "", 0
    params: list[Any] = []
    while at < len(block):
        param = _FLAT_PARAM.match(block, at)
        if param is None:
            return None if block[at:].strip(" \t\r\n") else (tuple(params), call[3])
        kind, typed, untyped = param.groups()
        if kind is None:
            params.append(untyped)
        elif kind == "boolean":
            if typed not in ("0", "1"):
                return None  # the stdlib's error, from expat's path
            params.append(typed == "1")
        else:
            try:
                params.append(_FROM_TEXT[kind](typed))
            except ValueError:
                return None
        if len(params) > _MAX_FLAT:
            return None  # the budget's refusal, from expat's path
        at = param.end()
    return tuple(params), call[3]


# What the stdlib's unmarshaller raises on a body it cannot read: expat's and defusedxml's errors, its own for an
# unknown element (xmlrpc.client.ResponseError), and the conversions' (int, base64: ValueError; boolean:
# TypeError; bigdecimal: decimal.InvalidOperation, an ArithmeticError); IndexError for a struct's lone member.
_UNREADABLE = (
    xml.parsers.expat.ExpatError,
    DefusedXmlException,
    xmlrpc.client.Error,
    ValueError,
    TypeError,
    IndexError,
    ArithmeticError,
)


def loads(body: bytes) -> tuple[tuple[Any, ...], str]:
    """Parse a methodCall with entity expansion forbidden, within the work budget: (params, method name)."""
    flat = _flat(body)
    return flat if flat is not None else _expat_loads(body)


def _expat_loads(body: bytes) -> tuple[tuple[Any, ...], str]:
    """What :func:`loads` does with any call: expat and the stdlib's unmarshaller, counted."""
    unmarshaller = _BoundedUnmarshaller()
    parser = DefusedExpatParser(unmarshaller)
    unmarshaller.expat = parser._parser  # type: ignore[attr-defined]
    parser.feed(body)
    parser.close()
    if unmarshaller.over:
        raise _Budget
    name = unmarshaller.getmethodname()
    if not isinstance(name, str):
        raise ValueError("no methodName")
    return unmarshaller.close(), name


PART_CHARS = 64 * 1024  # a string this long is encoded on its own: joining it to the markup would copy it


def _dump(value: Any, write: Callable[[str | Deferred], None], depth: int = 0) -> None:
    """``value`` as the stdlib's Marshaller writes it, for the plain data results are (dicts, lists,
    strings, ints, bools, floats), without its per-value dispatch; anything else goes to the Marshaller."""
    kind = type(value)
    if kind is str:
        if len(value) > PART_CHARS:
            write("<value><string>")
            write(_xml_text(value))
            write("</string></value>\n")
        else:
            write(f"<value><string>{_text(value)}</string></value>\n")
    elif kind is dict and depth < MAX_DEPTH:
        write("<value><struct>\n")
        for key, item in value.items():
            if type(key) is not str:
                raise TypeError("dictionary key must be string")
            if type(item) is str and len(item) <= PART_CHARS:  # most members: written at once
                write(
                    f"<member>\n<name>{_text(key)}</name>\n<value><string>{_text(item)}</string></value>\n</member>\n"
                )
                continue
            write(f"<member>\n<name>{_text(key)}</name>\n")
            _dump(item, write, depth + 1)
            write("</member>\n")
        write("</struct></value>\n")
    elif (kind is list or kind is tuple) and depth < MAX_DEPTH:
        if value and _plain_strings(value):  # a list of names, addresses: written at once, in C-speed joins
            write(
                f"<value><array><data>\n<value><string>{_BETWEEN.join(value)}</string></value>\n</data></array></value>\n"
            )
            return
        write("<value><array><data>\n")
        for item in value:
            if type(item) is str and len(item) <= PART_CHARS:  # a list of names: written at once
                write(f"<value><string>{_text(item)}</string></value>\n")
            else:
                _dump(item, write, depth + 1)
        write("</data></array></value>\n")
    elif kind is bool:
        write("<value><boolean>1</boolean></value>\n" if value else "<value><boolean>0</boolean></value>\n")
    elif kind is int and xmlrpc.client.MININT <= value <= xmlrpc.client.MAXINT:
        write(f"<value><int>{value}</int></value>\n")
    else:  # a float, and whatever else: the stdlib's own rules and errors
        xmlrpc.client.Marshaller("utf-8", allow_none=False)._Marshaller__dump(value, write)  # type: ignore[attr-defined]


_BETWEEN = "</string></value>\n<value><string>"


def _plain_strings(items: list[Any] | tuple[Any, ...]) -> bool:
    """Whether ``items`` are all strings, short together, that need no escaping (one join tells all three)."""
    try:
        joined = "".join(items)
    except TypeError:  # not all strings
        return False
    return len(joined) <= PART_CHARS and not ("&" in joined or "<" in joined or ">" in joined)


def _text(text: str) -> str:
    """``text`` escaped for XML (most texts need nothing: three look-ups instead of three replaces)."""
    return _escape(text) if "&" in text or "<" in text or ">" in text else text


_escape = xmlrpc.client.escape
_MARKUP = b"&<>"
_ALL_BUT_MARKUP = bytes(c for c in range(256) if c not in _MARKUP)


def _xml_text(text: str) -> Deferred:
    """A long string escaped and in UTF-8, made a chunk at a time as it is written (its size counted first)."""
    size = sum(map(_escaped_size, pieces(text)))
    return Deferred(size, (_escape(piece).encode() for piece in pieces(text)))


def _escaped_size(piece: str) -> int:
    """``len(_escape(piece).encode())``, counted: &amp; is 4 bytes more than &, &lt; and &gt; 3."""
    if piece.isascii():
        markup = piece.encode("ascii").translate(None, _ALL_BUT_MARKUP)  # usually (nearly) empty
        return len(piece) + 3 * len(markup) + markup.count(b"&")
    return len(piece.encode()) + 4 * piece.count("&") + 3 * (piece.count("<") + piece.count(">"))


def _response(result: Any) -> bytes | list[bytes | Deferred]:
    """A methodResponse, as ``xmlrpc.client.dumps`` writes it: one encoded str, or, when a long string is
    made as it is written, the markup around it (dumps joins the whole answer into one str twice, then it is
    encoded: three copies of a 10 MiB body beside the body itself; here none)."""
    fragments: list[str | Deferred] = ["<?xml version='1.0'?>\n<methodResponse>\n<params>\n<param>\n"]
    _dump(result, fragments.append)
    fragments.append("</param>\n</params>\n</methodResponse>\n")
    try:
        return "".join(fragments).encode()  # type: ignore[arg-type]
    except TypeError:  # a Deferred among them
        pass
    parts: list[bytes | Deferred] = []
    markup: list[str] = []
    for fragment in fragments:
        if isinstance(fragment, str):
            markup.append(fragment)
            continue
        parts += ["".join(markup).encode(), fragment]
        markup = []
    parts.append("".join(markup).encode())
    return parts


def fault(error: GatewayError, number: int | None = None) -> bytes:
    """A methodResponse carrying a fault."""
    return xmlrpc.client.dumps(xmlrpc.client.Fault(number or error.number, str(error)), methodresponse=True).encode()


class _XMLRPCApp(App):
    paths = frozenset({"/", "/RPC2"})
    content_type = "text/xml; charset=utf-8"
    accepts = frozenset({"text/xml", "application/xml"})
    transport = "xmlrpc"

    def decode(self, body: bytes, caller: Caller, headers: Mapping[str, str]) -> tuple[tuple[Any, ...], str] | bytes:
        try:
            return loads(body)
        except _Budget:
            self.gateway.refused(caller, "decode_limit")
            too_much = f"arguments hold at most {MAX_ELEMENTS} elements, nested at most {MAX_DEPTH} deep"
            return fault(GatewayError(INVALID_ARGUMENT, too_much))
        except _UNREADABLE:
            self.gateway.refused(caller, "parse_error")
            return fault(GatewayError(INVALID_ARGUMENT, "request is not a well-formed XML-RPC methodCall"), PARSE_ERROR)

    def instant(self, decoded: Any) -> bool:
        return type(decoded) is tuple and self.gateway.instant(decoded[1])

    def answer(self, decoded: Any, caller: Caller) -> bytes | list[bytes | Deferred]:
        if type(decoded) is bytes:
            return decoded
        params, name = decoded
        try:
            result = guarded(
                lambda: self.gateway.call(name, params, style=DOTTED, caller=caller), f"xmlrpc {name[:50]}"
            )
            return _response(result)
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
        """A stdlib client calling resolve (presenting $NETOPS_TOKEN when the gateway requires a token)."""
        url = self.endpoint(host, port, tls)
        if self.gateway.services.tokens.required:
            return (
                "import os, xmlrpc.client\n"
                'bearer = [("Authorization", "Bearer " + os.environ["NETOPS_TOKEN"])]\n'
                f'xmlrpc.client.ServerProxy("{url}", headers=bearer).resolve("example.com")'
            )
        return f'import xmlrpc.client\nxmlrpc.client.ServerProxy("{url}").resolve("example.com")'
