"""The gRPC service generated from the registry: protobuf messages built in code, and the same as ``.proto`` text.

One model (:func:`messages`, :func:`methods`) gives both the file descriptor
the gRPC transport serves (and reflects) and ``idl/netops.proto`` for clients
generated in other languages; a test compiles the text with protoc and checks
that it describes the same thing.  Field numbers come from
:mod:`gateway.wire_ids`, like the Thrift IDL's.

Package ``netops.v1``, service ``NetOps``: one unary RPC per operation
(``resolve`` → ``Resolve(ResolveRequest) returns (ResolveResult)``), its
parameters as fields (``optional`` where they have a default, so a default
is told apart from a zero), plus ``ListMethods``, ``MethodHelp``,
``MethodSignature`` and a typed ``Multicall`` (one ``Call`` per operation
in a ``oneof``; each ``Outcome`` its result or an ``Error``).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from gateway.registry import Operation, Registry, Schema
from gateway.wire_ids import RESERVED, numbers, retired

__all__ = ["PACKAGE", "SERVICE", "Method", "descriptor", "messages", "methods", "render", "rpc_name"]

PACKAGE = "netops.v1"
SERVICE = "NetOps"
FILE = "netops.proto"  # as idl/netops.proto is named when compiled
ERROR_NUMBER = min(RESERVED)  # Outcome.error, as in the Thrift IDL
_SCALARS = {"string": "string", "int": "int32", "double": "double", "boolean": "bool"}
_SYSTEM_RPC = {
    "system.listMethods": "ListMethods",
    "system.methodHelp": "MethodHelp",
    "system.methodSignature": "MethodSignature",
    "system.multicall": "Multicall",
}


@dataclass(frozen=True)
class PField:
    """One field: its type is a scalar's proto name or a message's; ``map`` means map<string, type>."""

    name: str
    number: int
    type: str
    repeated: bool = False
    optional: bool = False
    map: bool = False
    oneof: str = ""
    doc: str = ""


@dataclass
class PMessage:
    """One message, its fields in order, and the numbers it must never reuse."""

    name: str
    doc: str
    fields: list[PField]
    reserved: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class Method:
    """One RPC: its name, its request and response messages, and the registry operation it runs."""

    name: str
    request: str
    response: str
    operation: str
    doc: str


def rpc_name(operation: str) -> str:
    """The RPC of an operation: ``mx_lookup`` → ``MxLookup``, ``system.listMethods`` → ``ListMethods``."""
    return _SYSTEM_RPC.get(operation) or "".join(part.capitalize() for part in operation.split("_"))


def _field(name: str, number: int, schema: Schema, optional: bool = False) -> PField:
    doc = schema.doc
    if schema.kind == "array":
        assert schema.item is not None
        return PField(name, number, _type(schema.item), repeated=True, doc=doc)
    if schema.kind == "map":
        assert schema.item is not None
        return PField(name, number, _type(schema.item), map=True, doc=doc)
    return PField(name, number, _type(schema), optional=optional, doc=doc)


def _type(schema: Schema) -> str:
    if schema.kind in _SCALARS:
        return _SCALARS[schema.kind]
    if schema.kind == "struct":
        return schema.name
    raise TypeError(f"no protobuf type for {schema.kind}")  # nested lists, any: not in the operations


def _struct(scope: str, name: str, doc: str, fields: list[tuple[str, Schema, bool]]) -> PMessage:
    ids = numbers(scope, [f[0] for f in fields])
    out = [_field(n, ids[n], schema, optional) for n, schema, optional in fields]
    return PMessage(name, doc, out, retired(scope, ids))


def messages(registry: Registry) -> list[PMessage]:
    """Every message of the service, in the order the .proto lists them."""
    from gateway.idl import structs

    ops = [op for op in registry if not op.name.startswith(("system.", "rpc."))]
    out = [PMessage("Error", "A failure: code is one of the gateway's stable error codes.", [
        PField("code", 1, "string", doc="invalid_argument, not_found, timeout, …"),
        PField("message", 2, "string"),
    ])]  # fmt: skip
    for name, schema in structs(registry).items():
        out.append(_struct(f"struct:{name}", name, schema.doc, [(f.name, f.schema, False) for f in schema.fields]))
    for op in ops:
        params = [(p.name, p.schema, not p.required and p.schema.kind not in ("array", "map")) for p in op.params]
        out.append(_struct(f"args:{op.name}", f"{rpc_name(op.name)}Request", f"Arguments of {op.name}.", params))
    call = numbers("call", [op.name for op in ops])
    out += [
        PMessage("ListMethodsRequest", "", []),
        PMessage("ListMethodsResponse", "", [PField("methods", 1, "string", repeated=True)]),
        PMessage("MethodHelpRequest", "", [PField("name", 1, "string", doc="a method name, e.g. resolve")]),
        PMessage("MethodHelpResponse", "", [PField("help", 1, "string")]),
        PMessage("MethodSignatureRequest", "", [PField("name", 1, "string", doc="a method name, e.g. resolve")]),
        PMessage("Signature", "[result type, parameter types…]", [PField("types", 1, "string", repeated=True)]),
        PMessage("MethodSignatureResponse", "", [PField("signatures", 1, "Signature", repeated=True)]),
        PMessage(
            "Call",
            "One call of a multicall: set the field of the operation to call.",
            [PField(op.name, call[op.name], f"{rpc_name(op.name)}Request", oneof="call") for op in ops],
            retired("call", call),
        ),
        PMessage(
            "Outcome",
            "The outcome of one call: the result of the operation called, or error.",
            [PField(op.name, call[op.name], op.result.name, oneof="outcome") for op in ops]
            + [PField("error", ERROR_NUMBER, "Error", oneof="outcome")],
            retired("call", call),
        ),
        PMessage("MulticallRequest", "", [PField("calls", 1, "Call", repeated=True)]),
        PMessage("MulticallResponse", "", [PField("outcomes", 1, "Outcome", repeated=True)]),
    ]
    return out


def methods(registry: Registry, system: Iterable[Operation]) -> list[Method]:
    """Every RPC of the service: the operations in ``registry``, then the system ones."""
    out = [
        Method(rpc_name(op.name), f"{rpc_name(op.name)}Request", op.result.name, op.name, op.help())
        for op in registry
        if not op.name.startswith(("system.", "rpc."))
    ]
    for op in system:
        if op.name in _SYSTEM_RPC:
            name = _SYSTEM_RPC[op.name]
            out.append(Method(name, f"{name}Request", f"{name}Response", op.name, op.doc))
    return out


# -- the descriptor --------------------------------------------------------------------------------
def descriptor(registry: Registry, system: Iterable[Operation]) -> Any:
    """The ``FileDescriptorProto`` of the service."""
    from google.protobuf import descriptor_pb2

    proto = descriptor_pb2.FileDescriptorProto(name=FILE, package=PACKAGE, syntax="proto3")
    kinds = {
        "string": descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
        "int32": descriptor_pb2.FieldDescriptorProto.TYPE_INT32,
        "double": descriptor_pb2.FieldDescriptorProto.TYPE_DOUBLE,
        "bool": descriptor_pb2.FieldDescriptorProto.TYPE_BOOL,
    }
    label = descriptor_pb2.FieldDescriptorProto

    def typed(target: Any, name: str, number: int, kind: str, repeated: bool) -> Any:
        f = target.add(name=name, number=number, json_name=_json_name(name))
        f.label = label.LABEL_REPEATED if repeated else label.LABEL_OPTIONAL
        if kind in kinds:
            f.type = kinds[kind]
        else:
            f.type, f.type_name = label.TYPE_MESSAGE, f".{PACKAGE}.{kind}"
        return f

    for message in messages(registry):
        m = proto.message_type.add(name=message.name)
        oneofs = list(dict.fromkeys(f.oneof for f in message.fields if f.oneof))
        for name in oneofs:
            m.oneof_decl.add(name=name)
        for pf in message.fields:
            if pf.map:
                entry = m.nested_type.add(name=_entry_name(pf.name))
                entry.options.map_entry = True
                typed(entry.field, "key", 1, "string", False)
                typed(entry.field, "value", 2, pf.type, False)
                f = typed(m.field, pf.name, pf.number, "", True)
                f.type, f.type_name = label.TYPE_MESSAGE, f".{PACKAGE}.{message.name}.{entry.name}"
                continue
            f = typed(m.field, pf.name, pf.number, pf.type, pf.repeated)
            if pf.oneof:
                f.oneof_index = oneofs.index(pf.oneof)
            elif pf.optional:  # proto3 optional: a synthetic oneof after the real ones, as protoc makes it
                f.proto3_optional = True
                f.oneof_index = len(m.oneof_decl)
                m.oneof_decl.add(name=f"_{pf.name}")
        for number in message.reserved:
            m.reserved_range.add(start=number, end=number + 1)
    service = proto.service.add(name=SERVICE)
    for method in methods(registry, system):
        service.method.add(
            name=method.name, input_type=f".{PACKAGE}.{method.request}", output_type=f".{PACKAGE}.{method.response}"
        )
    return proto


def _json_name(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def _entry_name(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_")) + "Entry"


@functools.cache
def default_pool() -> tuple[Any, Any]:
    """The descriptor pool holding the service of the default registry, and the file's descriptor."""
    from google.protobuf import descriptor_pool

    from gateway.core import SYSTEM_OPERATIONS
    from gateway.ops import default_registry
    from gateway.registry import describe

    pool = descriptor_pool.DescriptorPool()
    file = pool.Add(descriptor(default_registry(), [describe(f) for f in SYSTEM_OPERATIONS]))
    return pool, file


# -- the text --------------------------------------------------------------------------------------
def _comment(text: str, indent: str) -> list[str]:
    return [f"{indent}//{' ' if line else ''}{line}".rstrip() for line in text.strip().splitlines()] if text else []


def render(registry: Registry, system: Iterable[Operation]) -> str:
    """``idl/netops.proto``: the same service as :func:`descriptor`, with the registry's docs as comments."""
    lines = [
        "// Generated from the NetOps Gateway registry by `python -m gateway.idl`. Do not edit.",
        "// Field numbers never move: they are pinned in gateway/wire_ids.json.",
        'syntax = "proto3";',
        "",
        f"package {PACKAGE};",
        "",
    ]
    for message in messages(registry):
        lines += _comment(message.doc, "")
        lines.append(f"message {message.name} {{")
        oneof = ""
        for pf in message.fields:
            if pf.oneof != oneof:
                if oneof:
                    lines.append("  }")
                if pf.oneof:
                    lines.append(f"  oneof {pf.oneof} {{")
                oneof = pf.oneof
            indent = "    " if oneof else "  "
            lines += _comment(pf.doc, indent)
            if pf.map:
                kind = f"map<string, {pf.type}>"
            else:
                kind = ("repeated " if pf.repeated else "optional " if pf.optional else "") + pf.type
            lines.append(f"{indent}{kind} {pf.name} = {pf.number};")
        if oneof:
            lines.append("  }")
        if message.reserved:
            lines.append(f"  reserved {', '.join(map(str, message.reserved))};")
        lines += ["}", ""]
    lines.append(f"service {SERVICE} {{")
    for method in methods(registry, system):
        lines += _comment(method.doc, "  ")
        lines.append(f"  rpc {method.name}({method.request}) returns ({method.response});")
    lines.append("}")
    return "\n".join(lines) + "\n"
