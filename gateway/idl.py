"""The Thrift IDL, generated from the registry.

The Thrift transport loads this text directly; ``idl/netops.thrift`` holds the
same text for generated clients in other languages, and a test fails when it
is stale.  Regenerate it with ``python -m gateway.idl`` (both IDLs, into idl/).

Each operation becomes a function taking its parameters as fields and
returning its result struct; every function throws ``NetOpsError {code,
message}``.  ``system_multicall`` is typed: ``union Call`` has one field per
operation (its argument struct), ``union Outcome`` the matching result
struct or ``error``.
"""

from __future__ import annotations

import functools
import io
import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from gateway.registry import Operation, Registry, Schema, describe
from gateway.wire_ids import numbers

__all__ = ["args_struct_name", "render", "scopes", "structs", "thrift_module", "thrift_type"]

_SCALARS = {"string": "string", "int": "i32", "double": "double", "boolean": "bool"}
ERROR_FIELD_ID = 99  # Outcome.error: far from the operations' ids so new operations never collide


def thrift_type(schema: Schema) -> str:
    """The Thrift type of a schema."""
    if schema.kind in _SCALARS:
        return _SCALARS[schema.kind]
    if schema.kind == "array":
        assert schema.item is not None
        return f"list<{thrift_type(schema.item)}>"
    if schema.kind == "map":
        assert schema.item is not None
        return f"map<string, {thrift_type(schema.item)}>"
    if schema.kind == "struct":
        return schema.name
    raise TypeError(f"no Thrift type for {schema.kind}")


def args_struct_name(op: Operation) -> str:
    """Name of the struct holding an operation's arguments in a multicall ``Call``."""
    return "".join(part.capitalize() for part in op.name.split("_")) + "Args"


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list, str, int, float)):
        return json.dumps(value)
    raise TypeError(f"no Thrift literal for {value!r}")


def _comment(text: str, indent: str = "") -> list[str]:
    lines = [line.rstrip() for line in text.strip().splitlines()]
    if len(lines) == 1:
        return [f"{indent}/** {lines[0]} */"]
    return [f"{indent}/**", *(f"{indent} * {line}".rstrip() for line in lines), f"{indent} */"]


def structs(registry: Registry) -> dict[str, Schema]:
    """Every struct reachable from the results, dependencies first."""
    found: dict[str, Schema] = {}

    def visit(schema: Schema) -> None:
        for child in [f.schema for f in schema.fields] + ([schema.item] if schema.item else []):
            visit(child)
        if schema.kind == "struct" and schema.name not in found:
            found[schema.name] = schema

    for op in registry:
        visit(op.result)
        for p in op.params:
            visit(p.schema)
    return found


def scopes(registry: Registry) -> dict[str, list[str]]:
    """Every list of numbered names the IDLs hold (see :mod:`gateway.wire_ids`), in declaration order."""
    out = {f"struct:{name}": [f.name for f in schema.fields] for name, schema in structs(registry).items()}
    out.update({f"args:{op.name}": [p.name for p in op.params] for op in registry})
    out["call"] = [op.name for op in registry]
    return out


def _struct(scope: str, name: str, fields: Iterable[tuple[str, Schema, Any]], doc: str) -> list[str]:
    lines = _comment(doc) if doc else []
    lines.append(f"struct {name} {{")
    fields = list(fields)
    ids = numbers(scope, [f[0] for f in fields])
    for field, schema, default in fields:
        number = ids[field]
        if schema.doc:
            lines += _comment(schema.doc, "  ")
        suffix = "" if default is None else f" = {_literal(default)}"
        lines.append(f"  {number}: {thrift_type(schema)} {field}{suffix},")
    return [*lines, "}", ""]


def _function(op: Operation) -> list[str]:
    ids = numbers(f"args:{op.name}", [p.name for p in op.params])
    params = ", ".join(
        f"{ids[p.name]}: {thrift_type(p.schema)} {p.name}" + ("" if p.required else f" = {_literal(p.default)}")
        for p in op.params
    )
    return [
        *_comment(op.help(), "  "),
        f"  {thrift_type(op.result)} {op.name}({params}) throws (1: NetOpsError error),",
        "",
    ]


def render(registry: Registry) -> str:
    """The whole IDL for the operations in ``registry`` plus the system functions."""
    from gateway.core import SYSTEM_OPERATIONS

    ops = list(registry)
    lines = [
        "// Generated from the NetOps Gateway registry by `python -m gateway.idl`. Do not edit.",
        "// Field ids never move: they are pinned in gateway/wire_ids.json.",
        "",
        "namespace py netops",
        "namespace java netops",
        "namespace js netops",
        "",
        *_comment("Every failure: code is one of the gateway's stable error codes (invalid_argument, not_found, …)."),
        "exception NetOpsError {",
        "  1: string code,",
        "  2: string message,",
        "}",
        "",
    ]
    for name, schema in structs(registry).items():
        lines += _struct(f"struct:{name}", name, ((f.name, f.schema, None) for f in schema.fields), schema.doc)
    for op in ops:
        fields = ((p.name, p.schema, None if p.required else p.default) for p in op.params)
        doc = f"Arguments of {op.name}, for system_multicall."
        lines += _struct(f"args:{op.name}", args_struct_name(op), fields, doc)
    call = numbers("call", [op.name for op in ops])
    lines += _comment("One call of a multicall: set exactly one field, named after the operation.")
    lines += ["union Call {", *(f"  {call[op.name]}: {args_struct_name(op)} {op.name}," for op in ops), "}", ""]
    lines += _comment("The outcome of one call: the field of the operation called, or error.")
    lines += ["union Outcome {", *(f"  {call[op.name]}: {thrift_type(op.result)} {op.name}," for op in ops)]
    lines += [f"  {ERROR_FIELD_ID}: NetOpsError error,", "}", ""]
    lines.append("service NetOps {")
    for op in ops:
        lines += _function(op)
    signatures = (
        "list<string> system_listMethods()",
        "string system_methodHelp(1: string name)",
        "list<list<string>> system_methodSignature(1: string name)",
        "list<Outcome> system_multicall(1: list<Call> calls)",
    )
    for signature, func in zip(signatures, SYSTEM_OPERATIONS[: len(signatures)], strict=True):
        lines += [*_comment(describe(func).doc, "  "), f"  {signature} throws (1: NetOpsError error),", ""]
    lines[-1] = "}"
    return "\n".join(lines) + "\n"


@functools.lru_cache(maxsize=8)
def _load(idl: str) -> Any:
    import thriftpy2

    return thriftpy2.load_fp(io.StringIO(idl), module_name="netops_thrift")


def thrift_module(registry: Registry | None = None) -> Any:
    """The thriftpy2 module for ``registry``'s IDL (default: every operation), loaded once."""
    from gateway.core import SYSTEM_NAMES

    if registry is None:
        return _default_module()
    return _load(render(Registry([op for op in registry if op.name not in SYSTEM_NAMES])))


@functools.cache
def _default_module() -> Any:
    """Every client connection needs it: describing the operations and rendering the IDL takes milliseconds."""
    from gateway.ops import default_registry

    return thrift_module(default_registry())


IDL_DIR = Path(__file__).resolve().parents[1] / "idl"


def main(argv: list[str] | None = None) -> int:
    """Pin the numbers of new names in the lock, then write ``idl/netops.thrift`` and ``idl/netops.proto``
    (or the Thrift IDL alone to standard output with ``-``)."""
    from gateway import proto, wire_ids
    from gateway.core import SYSTEM_OPERATIONS
    from gateway.ops import default_registry

    args = sys.argv[1:] if argv is None else argv
    registry = default_registry()
    if args and args[0] == "-":
        sys.stdout.write(render(registry))
        return 0
    wire_ids.write(scopes(registry))
    folder = Path(args[0]) if args else IDL_DIR
    (folder / "netops.thrift").write_text(render(registry))
    (folder / "netops.proto").write_text(proto.render(registry, [describe(f) for f in SYSTEM_OPERATIONS]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
