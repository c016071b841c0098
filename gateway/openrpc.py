"""The OpenRPC 1.x document of a gateway, generated from its registry (returned by ``rpc.discover``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gateway import __version__
from gateway.errors import NUMERIC
from gateway.observe import NO_CALLER, Caller
from gateway.registry import Operation, Schema

if TYPE_CHECKING:
    from gateway.core import Gateway, Style

__all__ = ["json_schema", "openrpc_document"]

OPENRPC_VERSION = "1.2.6"


def json_schema(schema: Schema, structs: dict[str, Any], ref: str = "#/components/schemas/") -> dict[str, Any]:
    """JSON Schema of a wire type; structs are collected into ``structs`` and referenced as ``ref`` + name."""
    out: dict[str, Any]
    if schema.kind == "string":
        out = {"type": "string", **({"enum": list(schema.choices)} if schema.choices else {})}
    elif schema.kind == "int":
        lo, hi = (schema.bounds.lo, schema.bounds.hi) if schema.bounds else (-(2**31), 2**31 - 1)
        out = {"type": "integer", "minimum": lo, "maximum": hi}
    elif schema.kind == "double":
        out = {"type": "number"}
    elif schema.kind == "boolean":
        out = {"type": "boolean"}
    elif schema.kind == "array":
        assert schema.item is not None
        out = {"type": "array", "items": json_schema(schema.item, structs, ref)}
    elif schema.kind == "map":
        assert schema.item is not None
        out = {"type": "object", "additionalProperties": json_schema(schema.item, structs, ref)}
    elif schema.kind == "struct":
        if schema.name not in structs:
            structs[schema.name] = {}  # placeholder against recursion
            structs[schema.name] = {
                "type": "object",
                "description": schema.doc,
                "properties": {f.name: json_schema(f.schema, structs, ref) for f in schema.fields},
                "required": [f.name for f in schema.fields],
                "additionalProperties": False,
            }
        return {"$ref": ref + schema.name}
    else:
        out = {}
    if schema.doc:
        out["description"] = schema.doc
    return out


def _method(op: Operation, name: str, structs: dict[str, Any]) -> dict[str, Any]:
    params = []
    for p in op.params:
        schema = json_schema(p.schema, structs)
        if not p.required:
            schema = {**schema, "default": p.default}
        params.append({"name": p.name, "description": p.schema.doc, "required": p.required, "schema": schema})
    method: dict[str, Any] = {
        "name": name,
        "summary": op.summary,
        "description": op.doc,
        "paramStructure": "either",
        "params": params,
        "result": {"name": "result", "schema": json_schema(op.result, structs)},
        "errors": [{"code": NUMERIC[code], "message": code} for code in op.errors],
    }
    if op.example:
        method["examples"] = [
            {"name": f"{name} example", "params": [{"name": k, "value": v} for k, v in op.example.items()]}
        ]
    return method


def openrpc_document(gateway: Gateway, style: Style, caller: Caller = NO_CALLER) -> dict[str, Any]:
    """The OpenRPC document for the methods callable by ``caller`` in ``style``."""
    structs: dict[str, Any] = {}
    methods = [_method(gateway.lookup(n, style, caller), n, structs) for n in gateway.method_names(style, caller)]
    return {
        "openrpc": OPENRPC_VERSION,
        "info": {
            "title": "NetOps Gateway",
            "version": __version__,
            "description": "Networking operations (DNS, MX, TLS, HTTP, TCP) over seven RPC transports.",
        },
        "methods": methods,
        "components": {"schemas": structs},
    }
