"""The registry: each operation described once, from its Python signature.

An operation is a plain function whose first parameter receives the call's
:class:`~gateway.context.Context`; the remaining parameters, their defaults, the
return annotation (a ``TypedDict``) and the docstring are the single source of
every name, type and help text that dispatch, introspection, multicall and the
Thrift IDL expose.  Annotations are restricted to the types that travel
identically over every transport:

=========================  ============  ==========================
Python annotation          schema kind   XML-RPC type name
=========================  ============  ==========================
``str`` / ``Literal[...]``  string        ``string``
``int`` (32-bit)           int           ``int``
``float``                  double        ``double``
``bool``                   boolean       ``boolean``
``list[T]``                array         ``array``
``TypedDict``              struct        ``struct``
``dict[str, T]``           map           ``struct``
=========================  ============  ==========================

``Annotated[T, "doc", Range(lo, hi)]`` adds documentation and bounds.
"""

from __future__ import annotations

import functools
import inspect
import json
import math
import types
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args, get_origin, is_typeddict

from gateway.errors import INVALID_ARGUMENT, METHOD_NOT_FOUND, GatewayError

__all__ = [
    "INT32_MAX",
    "Operation",
    "Param",
    "Range",
    "Registry",
    "Schema",
    "conforms",
    "operation",
    "schema_of",
]

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
REQUIRED: Any = inspect.Parameter.empty

XMLRPC_TYPE = {
    "string": "string",
    "int": "int",
    "double": "double",
    "boolean": "boolean",
    "array": "array",
    "struct": "struct",
    "map": "struct",
    "any": "struct",
}


@dataclass(frozen=True)
class Range:
    """Inclusive bounds for an ``int`` parameter, used in ``Annotated``."""

    lo: int
    hi: int


@dataclass(frozen=True)
class Field:
    """One member of a struct schema."""

    name: str
    schema: Schema


@dataclass(frozen=True)
class Schema:
    """A wire type: one of string, int, double, boolean, array, struct, map, any."""

    kind: str
    doc: str = ""
    item: Schema | None = None  # array items, map values
    fields: tuple[Field, ...] = ()  # struct members
    name: str = ""  # struct type name (becomes the Thrift struct name)
    choices: tuple[str, ...] = ()  # allowed strings (from Literal)
    bounds: Range | None = None

    @property
    def xmlrpc_type(self) -> str:
        """The XML-RPC introspection name of this type."""
        return XMLRPC_TYPE[self.kind]

    def field(self, name: str) -> Schema:
        """Return the schema of struct member ``name``."""
        for f in self.fields:
            if f.name == name:
                return f.schema
        raise KeyError(name)


_SCALARS = {str: "string", int: "int", float: "double", bool: "boolean"}
ANY = Schema("any")


def schema_of(annotation: Any, doc: str = "") -> Schema:
    """Translate a Python annotation into a wire schema."""
    bounds = None
    if get_origin(annotation) is typing.Annotated:
        annotation, *meta = get_args(annotation)
        for m in meta:
            if isinstance(m, str):
                doc = m
            elif isinstance(m, Range):
                bounds = m
    origin = get_origin(annotation)
    if annotation in _SCALARS:
        return Schema(_SCALARS[annotation], doc=doc, bounds=bounds)
    if annotation is Any:
        return Schema("any", doc=doc)
    if origin is Literal:
        return Schema("string", doc=doc, choices=tuple(get_args(annotation)))
    if origin is list:
        (item,) = get_args(annotation)
        return Schema("array", doc=doc, item=schema_of(item))
    if origin is dict:
        key, value = get_args(annotation)
        if key is not str:
            raise TypeError("struct keys must be str")
        return Schema("map", doc=doc, item=schema_of(value))
    if is_typeddict(annotation):
        hints = typing.get_type_hints(annotation, include_extras=True)
        fields = tuple(Field(n, schema_of(t)) for n, t in hints.items())
        return Schema("struct", doc=doc or inspect.getdoc(annotation) or "", fields=fields, name=annotation.__name__)
    raise TypeError(f"annotation {annotation!r} cannot travel on every transport")


@dataclass(frozen=True)
class Param:
    """One parameter of an operation as callers see it."""

    name: str
    schema: Schema
    default: Any = REQUIRED

    @property
    def required(self) -> bool:
        """True when the caller must supply this parameter."""
        return self.default is REQUIRED


@dataclass(frozen=True)
class Operation:
    """Everything known about one callable operation."""

    name: str
    func: Callable[..., Any]
    params: tuple[Param, ...]
    result: Schema
    errors: tuple[str, ...]
    doc: str
    takes_context: bool = True
    example: Mapping[str, Any] = field(default_factory=dict)
    untyped: bool = False
    instant: bool = False
    is_async: bool = False  # a coroutine function: it runs on the DNS loop (and must not block it)
    _by_name: Mapping[str, Param] = field(default_factory=dict, repr=False, compare=False)

    @property
    def summary(self) -> str:
        """The first line of the docstring."""
        return self.doc.split("\n", 1)[0]

    def help(self) -> str:
        """Help text: the docstring, then parameters, result type and errors."""
        lines = [self.doc, "", "Parameters:"]
        for p in self.params:
            default = "" if p.required else f" = {json.dumps(p.default)}"  # JSON: readers use any language
            doc = f": {p.schema.doc}" if p.schema.doc else ""
            lines.append(f"  {p.name} ({p.schema.xmlrpc_type}{default}){doc}")
        if not self.params:
            lines.append("  none")
        lines.append(f"Returns: {self.result.name or self.result.xmlrpc_type}")
        lines.append(f"Errors: {', '.join(self.errors) or 'none beyond invalid_argument'}")
        return "\n".join(lines)

    def signatures(self) -> list[list[str]]:
        """XML-RPC style signatures: ``[return, params…]``, one per accepted arity."""
        required = sum(p.required for p in self.params)
        types_ = [p.schema.xmlrpc_type for p in self.params]
        return [[self.result.xmlrpc_type, *types_[:n]] for n in range(required, len(self.params) + 1)]

    @functools.cached_property
    def defaults(self) -> Mapping[str, Any] | None:
        """The arguments of a call that gives none, worked out once (not to be changed: a call unpacks them
        with ``**``); None when a parameter is required."""
        return None if any(p.required for p in self.params) else {p.name: p.default for p in self.params}

    def bind(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """Match positional and named arguments to parameters, validated and defaulted."""
        if not args and not kwargs and self.defaults is not None:
            return dict(self.defaults)  # nothing to check (every listing call)
        if len(args) > len(self.params):
            raise GatewayError(
                INVALID_ARGUMENT, f"{self.name} takes at most {len(self.params)} arguments ({len(args)} given)"
            )
        bound: dict[str, Any] = {}
        for param, value in zip(self.params, args, strict=False):
            bound[param.name] = value
        for name, value in kwargs.items():
            if name not in self._by_name:
                raise GatewayError(INVALID_ARGUMENT, f"{self.name} has no parameter {name!r}")
            if name in bound:
                raise GatewayError(INVALID_ARGUMENT, f"{self.name} got {name!r} twice")
            bound[name] = value
        for param in self.params:
            if param.name in bound:
                bound[param.name] = check(bound[param.name], param.schema, param.name)
            elif param.required:
                raise GatewayError(INVALID_ARGUMENT, f"{self.name} needs parameter {param.name!r}")
            else:
                bound[param.name] = param.default
        return bound


MAX_DEPTH = 32  # nesting no operation needs; deeper input is refused before it can exhaust the stack


def check(value: Any, schema: Schema, where: str, depth: int = 0) -> Any:
    """Validate one argument against its schema; return it as plain data."""
    if depth > MAX_DEPTH:
        raise GatewayError(INVALID_ARGUMENT, f"{where.split('[')[0]} is nested too deeply")
    kind = schema.kind
    if kind == "string":
        if type(value) is not str:
            raise _wrong(where, "a string", value)
        if schema.choices and value not in schema.choices:
            raise GatewayError(INVALID_ARGUMENT, f"{where} must be one of {', '.join(schema.choices)} (got {value!r})")
        return value
    if kind == "int":
        if type(value) is not int:
            raise _wrong(where, "an integer", value)
        lo, hi = (schema.bounds.lo, schema.bounds.hi) if schema.bounds else (INT32_MIN, INT32_MAX)
        if not lo <= value <= hi:
            raise GatewayError(INVALID_ARGUMENT, f"{where} must be between {lo} and {hi} (got {value})")
        return value
    if kind == "double":
        if type(value) not in (int, float) or not math.isfinite(value):
            raise _wrong(where, "a finite number", value)
        return float(value)
    if kind == "boolean":
        if type(value) is not bool:
            raise _wrong(where, "a boolean", value)
        return value
    if kind == "array":
        if not isinstance(value, (list, tuple)):
            raise _wrong(where, "an array", value)
        assert schema.item is not None
        return [check(v, schema.item, f"{where}[{i}]", depth + 1) for i, v in enumerate(value)]
    if kind == "map":
        if not isinstance(value, dict):
            raise _wrong(where, "a struct", value)
        assert schema.item is not None
        out = {}
        for k, v in value.items():
            if type(k) is not str:
                raise _wrong(f"a key of {where}", "a string", k)
            out[k] = check(v, schema.item, f"{where}[{k!r}]", depth + 1)
        return out
    if kind == "struct":
        if not isinstance(value, dict):
            raise _wrong(where, "a struct", value)
        names = {f.name for f in schema.fields}
        unknown = sorted(str(k) for k in value if k not in names)
        if unknown:
            raise GatewayError(INVALID_ARGUMENT, f"{where} has unknown member {unknown[0]!r}")
        return {
            f.name: check(value[f.name], f.schema, f"{where}.{f.name}", depth + 1)
            for f in schema.fields
            if f.name in value
        }
    return value  # "any": checked by the operation itself


def _wrong(where: str, expected: str, value: Any) -> GatewayError:
    return GatewayError(INVALID_ARGUMENT, f"{where} must be {expected}, not {_type_name(value)}")


def _type_name(value: Any) -> str:
    return {
        str: "a string",
        int: "an integer",
        float: "a number",
        bool: "a boolean",
        list: "an array",
        tuple: "an array",
        dict: "a struct",
        type(None): "nil",
        bytes: "binary data",
    }.get(type(value), "a value of another type")


def conforms(value: Any, schema: Schema) -> bool:
    """True when a result is exactly of its schema (no None, no extra or missing keys)."""
    kind = schema.kind
    if kind == "any":
        return value is not None
    if kind in ("string", "boolean"):
        return type(value) is (str if kind == "string" else bool)
    if kind == "int":
        return type(value) is int and INT32_MIN <= value <= INT32_MAX
    if kind == "double":
        return type(value) is float and math.isfinite(value)
    assert kind in ("array", "map", "struct")
    if kind == "array":
        return type(value) is list and all(conforms(v, schema.item) for v in value)  # type: ignore[arg-type]
    if type(value) is not dict:
        return False
    if kind == "map":
        return all(type(k) is str and conforms(v, schema.item) for k, v in value.items())  # type: ignore[arg-type]
    return set(value) == {f.name for f in schema.fields} and all(
        conforms(value[f.name], f.schema) for f in schema.fields
    )


def operation(
    *,
    errors: Sequence[str],
    name: str = "",
    example: Mapping[str, Any] | None = None,
    untyped: bool = False,
    instant: bool = False,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Mark a function as a gateway operation raising the given error codes.

    ``example`` holds arguments for the documentation; ``untyped`` marks a result
    of no fixed type, which typed transports (Thrift) cannot carry; ``instant``
    marks one that does no I/O and answers in microseconds, so the connection
    layer may run it on its event loop instead of handing it to a worker.
    """

    def mark(func: Callable[..., Any]) -> Callable[..., Any]:
        meta = {
            "errors": tuple(errors),
            "name": name or func.__name__,
            "example": dict(example or {}),
            "untyped": untyped,
            "instant": instant,
        }
        func.__netops__ = meta  # type: ignore[attr-defined]
        return func

    return mark


def describe(func: Callable[..., Any], *, takes_context: bool = True) -> Operation:
    """Build the :class:`Operation` for a function marked with :func:`operation`."""
    meta = getattr(func, "__netops__", None)
    if meta is None:
        raise TypeError(f"{func.__qualname__} is not marked with @operation")
    hints = typing.get_type_hints(func, include_extras=True)
    signature = inspect.signature(func)
    params = list(signature.parameters.values())[1 if takes_context else 0 :]
    described = tuple(Param(p.name, schema_of(hints[p.name]), p.default) for p in params)
    for p in described:
        if not p.required:
            check(p.default, p.schema, f"default of {p.name}")
    doc = inspect.getdoc(func)
    if not doc:
        raise TypeError(f"operation {meta['name']} needs a docstring")
    return Operation(
        name=meta["name"],
        func=func,
        params=described,
        result=schema_of(hints["return"]),
        errors=meta["errors"],
        doc=doc,
        takes_context=takes_context,
        example=types.MappingProxyType(meta["example"]),
        untyped=meta["untyped"],
        instant=meta["instant"],
        is_async=inspect.iscoroutinefunction(func),
        _by_name=types.MappingProxyType({p.name: p for p in described}),
    )


class Registry:
    """An ordered collection of operations, looked up by name."""

    def __init__(self, operations: Sequence[Operation] = ()) -> None:
        self._ops: dict[str, Operation] = {}
        for op in operations:
            self.add(op)

    def add(self, op: Operation) -> None:
        """Register one operation; names must be unique."""
        if op.name in self._ops:
            raise ValueError(f"operation {op.name!r} is registered twice")
        self._ops[op.name] = op

    def register(self, func: Callable[..., Any], *, takes_context: bool = True) -> Operation:
        """Describe and register a function marked with :func:`operation`."""
        op = describe(func, takes_context=takes_context)
        self.add(op)
        return op

    def get(self, name: str) -> Operation:
        """Return the operation called ``name`` or raise ``method_not_found``."""
        try:
            return self._ops[name]
        except (KeyError, TypeError):
            raise GatewayError(METHOD_NOT_FOUND, f"no method named {str(name)[:100]!r}") from None

    def __iter__(self) -> Iterator[Operation]:
        return iter(self._ops.values())

    def __len__(self) -> int:
        return len(self._ops)

    def __contains__(self, name: object) -> bool:
        return name in self._ops
