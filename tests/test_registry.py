"""The registry: schemas from type hints, argument binding and validation."""

from __future__ import annotations

from typing import Annotated, Literal, TypedDict

import pytest

from gateway import GatewayError
from gateway.ops import default_registry
from gateway.registry import Range, Registry, conforms, describe, operation, schema_of


class Point(TypedDict):
    """A point."""

    x: int
    label: Annotated[str, "what it is"]


@operation(errors=("not_found",))
def sample(
    ctx: object,
    name: Annotated[str, "a name"],
    count: Annotated[int, Range(1, 10)] = 3,
    mode: Literal["fast", "slow"] = "fast",
    ratio: float = 0.5,
    tags: list[str] = [],  # noqa: B006
    extra: dict[str, str] = {},  # noqa: B006
    flag: bool = False,
) -> Point:
    """Do a sample thing.

    More words.
    """
    return {"x": count, "label": name}


@pytest.fixture(scope="module")
def op():
    return describe(sample)


def test_description_comes_from_the_signature(op):
    assert op.name == "sample"
    assert [p.name for p in op.params] == ["name", "count", "mode", "ratio", "tags", "extra", "flag"]
    assert op.summary == "Do a sample thing."
    assert op.errors == ("not_found",)
    assert op.result.kind == "struct" and op.result.name == "Point"
    assert [f.name for f in op.result.fields] == ["x", "label"]
    assert op.result.field("label").doc == "what it is"
    assert op.params[1].schema.bounds == Range(1, 10)
    assert op.params[2].schema.choices == ("fast", "slow")


def test_signatures_one_per_accepted_arity(op):
    signatures = op.signatures()
    assert signatures[0] == ["struct", "string"]
    assert signatures[-1] == ["struct", "string", "int", "string", "double", "array", "struct", "boolean"]
    assert len(signatures) == 7


def test_bind_fills_defaults_and_accepts_names(op):
    assert op.bind(["a"], {"flag": True}) == {
        "name": "a",
        "count": 3,
        "mode": "fast",
        "ratio": 0.5,
        "tags": [],
        "extra": {},
        "flag": True,
    }
    assert op.bind([], {"name": "b", "ratio": 2})["ratio"] == 2.0


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ([], {}, "needs parameter 'name'"),
        (["a", 1, "fast", 1.0, [], {}, True, "x"], {}, "at most 7 arguments"),
        (["a"], {"nope": 1}, "no parameter 'nope'"),
        (["a"], {"name": "b"}, "got 'name' twice"),
        ([1], {}, "name must be a string, not an integer"),
        (["a", 0], {}, "count must be between 1 and 10"),
        (["a", True], {}, "count must be an integer, not a boolean"),
        (["a", 2.0], {}, "count must be an integer, not a number"),
        (["a"], {"mode": "medium"}, "mode must be one of fast, slow"),
        (["a"], {"ratio": float("nan")}, "ratio must be a finite number"),
        (["a"], {"tags": "x"}, "tags must be an array"),
        (["a"], {"tags": ["x", 2]}, "tags[1] must be a string"),
        (["a"], {"extra": {"k": 1}}, "extra['k'] must be a string"),
        (["a"], {"extra": [1]}, "extra must be a struct, not an array"),
        (["a"], {"flag": 1}, "flag must be a boolean"),
        ([None], {}, "name must be a string, not nil"),
    ],
)
def test_bad_arguments_are_invalid_argument(op, args, kwargs, message):
    with pytest.raises(GatewayError) as info:
        op.bind(args, kwargs)
    assert info.value.code == "invalid_argument"
    assert message in info.value.message


def test_ints_are_32_bit_unless_bounded():
    schema = schema_of(int)
    from gateway.registry import check

    assert check(2**31 - 1, schema, "n") == 2**31 - 1
    with pytest.raises(GatewayError):
        check(2**31, schema, "n")


def test_conforms_rejects_none_and_extra_keys(op):
    assert conforms({"x": 1, "label": "a"}, op.result)
    assert not conforms({"x": 1, "label": None}, op.result)
    assert not conforms({"x": 1, "label": "a", "more": 1}, op.result)
    assert not conforms({"x": 2**40, "label": "a"}, op.result)


def test_registry_rejects_duplicates_and_unmarked_functions():
    registry = Registry()
    registry.register(sample)
    with pytest.raises(ValueError):
        registry.register(sample)
    with pytest.raises(TypeError):
        describe(lambda ctx: None)
    with pytest.raises(GatewayError) as info:
        registry.get("missing")
    assert info.value.code == "method_not_found"


def test_unsupported_annotations_are_refused():
    with pytest.raises(TypeError):
        schema_of(bytes)
    with pytest.raises(TypeError):
        schema_of(dict[int, str])


def test_every_operation_is_fully_described():
    """Every registered operation has a docstring, typed parameters, a struct result with elapsed_ms, and errors."""
    registry = default_registry()
    assert [op.name for op in registry] == [
        "resolve",
        "reverse_lookup",
        "dns_query",
        "mx_lookup",
        "tls_check",
        "fetch_url",
        "tcp_connect",
    ]
    for op in registry:
        assert op.doc and op.summary.endswith(".")
        assert op.result.kind == "struct"
        assert "elapsed_ms" in [f.name for f in op.result.fields]
        assert "invalid_argument" in op.errors
        for p in op.params:
            assert p.schema.doc, f"{op.name}.{p.name} has no documentation"


def test_every_example_binds_to_its_operation():
    """The examples the docs and OpenRPC show are valid calls."""
    from gateway import build_gateway

    gateway = build_gateway()
    for name in gateway.method_names():
        op = gateway.lookup(name)
        assert op.bind((), op.example) or not op.params
