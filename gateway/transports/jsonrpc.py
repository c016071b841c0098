"""JSON-RPC 2.0: jsonrpcserver's dispatch pipeline over the shared HTTP/1.1 server.

jsonrpcserver resolves and calls methods and shapes responses; this module
adds what the spec asks and the library leaves out: a batch is split here so
an invalid element gets its own -32600 while the valid ones still run, batch
elements run concurrently as a multicall's do (DNS lookups together on the DNS
loop, through the library's async dispatcher; the rest on the core's bounded
pool), the batch size is capped, and requests are validated by a few
structural checks instead of the library's per-request JSON-schema pass
(~130 µs a request).

Types: JSON objects, arrays, strings, numbers and booleans map onto the
registry's types; ``null`` and NaN are refused.  Errors: ``{"code": N,
"message": "not_found: …", "data": {"code": "not_found"}}`` with N from
:data:`gateway.errors.NUMERIC`; -32700 parse error, -32600 invalid request.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from jsonrpcserver.async_dispatcher import dispatch_deserialized as dispatch_later
from jsonrpcserver.dispatcher import dispatch_deserialized
from jsonrpcserver.response import to_serializable_one
from jsonrpcserver.result import Error, Result, Success
from jsonrpcserver.sentinels import NOCONTEXT

from gateway.core import DOTTED, Failed, Gateway
from gateway.errors import INVALID_ARGUMENT, INVALID_REQUEST, PARSE_ERROR, GatewayError
from gateway.net.budget import MAX_DEPTH, MAX_ITEMS, json_within_budget, nested_within
from gateway.observe import Caller
from gateway.transports._http import App, HTTPCodec
from gateway.transports.base import dump_json, guarded, internal_error, load_json

__all__ = ["JSONRPCCodec"]

_MEMBERS = frozenset({"jsonrpc", "method", "params", "id"})
_TOO_MANY = f"a request holds at most {MAX_ITEMS} values, nested at most {MAX_DEPTH} deep"


def error_object(error: GatewayError, number: int | None = None, id: Any = None) -> dict[str, Any]:
    """A JSON-RPC 2.0 error response."""
    return {
        "jsonrpc": "2.0",
        "error": {"code": number or error.number, "message": str(error), "data": {"code": error.code}},
        "id": id,
    }


def _invalid(element: Any) -> str:
    """What makes this not a JSON-RPC 2.0 request object (the checks the spec makes, none more), or ""."""
    if not isinstance(element, dict):
        return "a request must be a JSON object"
    if element.get("jsonrpc") != "2.0":
        return 'a request must have "jsonrpc": "2.0"'
    if not isinstance(element.get("method"), str):
        return 'a request must have a "method" string'
    if not isinstance(element.get("params", []), (list, dict)):
        return '"params" must be an array or an object'
    if type(element.get("id")) not in (str, int, type(None)):
        return '"id" must be a string, an integer or null'
    extra = sorted(set(element) - _MEMBERS)
    if extra:
        return f"unknown member {str(extra[0])[:50]!r} (a request has jsonrpc, method, params and id)"
    return ""


class _Parsed:
    """A body json parsed and the work budget passed (any JSON value: ``null`` is a request too)."""

    __slots__ = ("request",)

    def __init__(self, request: Any) -> None:
        self.request = request


class _Methods(Mapping[str, Callable[..., Any]]):
    """Every name resolves here; the core says whether it exists, so all errors share one shape."""

    def __init__(self, gateway: Gateway, caller: Caller) -> None:
        self.gateway = gateway
        self.caller = caller

    def __getitem__(self, name: str) -> Callable[..., Any]:
        return _Method(self._invoke, name)

    def later(self) -> _LaterMethods:
        """The same methods for jsonrpcserver's async dispatcher: DNS lookups, run on the DNS loop."""
        return _LaterMethods(self.gateway, self.caller)

    def __iter__(self) -> Iterator[str]:
        return iter(self.gateway.method_names(DOTTED))

    def __len__(self) -> int:
        return len(self.gateway.method_names(DOTTED))

    def _invoke(self, name: str, /, *args: Any, **kwargs: Any) -> Any:  # a parameter may be called "name"
        try:
            call = functools.partial(self.gateway.call, name, args, kwargs, style=DOTTED, caller=self.caller)
            return Success(guarded(call, f"jsonrpc {name[:50]}"))
        except GatewayError as exc:
            return _error(exc)


def _error(exc: GatewayError) -> Result:
    return Error(exc.number, str(exc), {"code": exc.code})


class _LaterMethods(_Methods):
    """Methods whose calls are coroutines (a batch's lookups): jsonrpcserver's async dispatcher awaits them."""

    def __getitem__(self, name: str) -> Callable[..., Any]:
        return _Method(self._invoke_later, name)

    async def _invoke_later(self, name: str, /, *args: Any, **kwargs: Any) -> Any:
        try:
            result = await self.gateway.call_later(name, args, kwargs, DOTTED, self.caller)
        except Exception as exc:  # the async dispatcher would answer a stray one with its text: never shown
            return _error(internal_error(exc, f"jsonrpc {name[:50]}"))
        return _error(result.error) if isinstance(result, Failed) else Success(result)


class _Method:
    """One method as jsonrpcserver calls it. It takes any arguments (the core binds them against the
    registry), and says so in a signature made once: jsonrpcserver checks every call's arguments with
    ``inspect.signature(method)``, which costs more than the rest of the call when worked out from a partial."""

    __slots__ = ("invoke", "name")
    __signature__ = inspect.Signature(
        [
            inspect.Parameter("args", inspect.Parameter.VAR_POSITIONAL),
            inspect.Parameter("kwargs", inspect.Parameter.VAR_KEYWORD),
        ]
    )

    def __init__(self, invoke: Callable[..., Any], name: str) -> None:
        self.invoke = invoke
        self.name = name

    def __call__(self, /, *args: Any, **kwargs: Any) -> Any:  # a parameter may be called "self"
        return self.invoke(self.name, *args, **kwargs)


class _JSONRPCApp(App):
    paths = frozenset({"/", "/jsonrpc"})
    content_type = "application/json"
    accepts = frozenset({"application/json", "application/json-rpc", "application/jsonrequest"})
    transport = "jsonrpc"

    def decode(self, body: bytes, caller: Caller, headers: Mapping[str, str]) -> Any:
        if not json_within_budget(body):
            self.gateway.refused(caller, "decode_limit")
            return dump_json(error_object(GatewayError(INVALID_ARGUMENT, _TOO_MANY)))
        try:
            request = load_json(body)
        except (ValueError, RecursionError):
            self.gateway.refused(caller, "parse_error")
            return dump_json(error_object(GatewayError(INVALID_ARGUMENT, "request is not valid JSON"), PARSE_ERROR))
        # json's C parser builds at most ~25 MB from a body under the 1 MiB cap, in milliseconds; the budget is
        # then applied to what it built, before any of it reaches jsonrpcserver or an operation.
        if not nested_within(request, MAX_DEPTH, MAX_ITEMS):
            self.gateway.refused(caller, "decode_limit")
            return dump_json(error_object(GatewayError(INVALID_ARGUMENT, _TOO_MANY), id=_id_of(request)))
        return _Parsed(request)

    def instant(self, decoded: Any) -> bool:
        if type(decoded) is not _Parsed:
            return False
        request = decoded.request  # a batch is not: its elements run on the multicall pool, waited for
        return type(request) is dict and self.gateway.instant(request.get("method"))

    def answer(self, decoded: Any, caller: Caller) -> bytes | None:
        if type(decoded) is not _Parsed:
            return decoded  # type: ignore[no-any-return]
        request = decoded.request
        methods = _Methods(self.gateway, caller)
        if not isinstance(request, list):
            answer = self._one(request, methods)
            return None if answer is None else dump_json(answer)  # a notification gets no response
        if not request:
            return dump_json(error_object(GatewayError(INVALID_ARGUMENT, "empty batch"), INVALID_REQUEST))
        limit = self.gateway.services.settings.max_batch
        if len(request) > limit:
            self.gateway.refused(caller, "batch_too_large")
            too_many = GatewayError(INVALID_ARGUMENT, f"a batch holds at most {limit} requests ({len(request)} given)")
            return dump_json(error_object(too_many))
        threaded: dict[int, Callable[[], dict[str, Any] | None]] = {}
        lookups: dict[int, Callable[[], Any]] = {}
        later = methods.later()
        for index, element in enumerate(request):
            if type(element) is dict and self.gateway.is_lookup(element.get("method")):
                lookups[index] = functools.partial(self._one_later, element, later)
            else:
                threaded[index] = functools.partial(self._one, element, methods)
        answers = self.gateway.run_elements([None] * len(request), threaded, lookups)
        answers = [a for a in answers if a is not None]
        return dump_json(answers) if answers else None  # a batch of notifications gets no response

    def _one(self, element: Any, methods: _Methods) -> dict[str, Any] | None:
        problem = self._invalid_answer(element, methods.caller)
        if problem is not None:
            return problem
        # jsonrpc 5.0.9's hints ask for a dict of methods (any Mapping works: it only looks names up) and a
        # serializer returning an iterable (to_serializable_one returns the one response dict).
        return dispatch_deserialized(methods, NOCONTEXT, to_serializable_one, element)  # type: ignore[arg-type,return-value]

    async def _one_later(self, element: Any, methods: _LaterMethods) -> dict[str, Any] | None:
        """A batch's element naming a lookup, on the DNS loop, in its turn: :meth:`_one`, awaited."""
        problem = self._invalid_answer(element, methods.caller)
        if problem is not None:
            return problem
        return await dispatch_later(methods, NOCONTEXT, to_serializable_one, element)  # type: ignore[arg-type,return-value]

    def _invalid_answer(self, element: Any, caller: Caller) -> dict[str, Any] | None:
        """The -32600 answer to an element that is not a JSON-RPC 2.0 request (refused), or None."""
        problem = _invalid(element)
        if not problem:
            return None
        self.gateway.refused(caller, "invalid_request")
        invalid = GatewayError(INVALID_ARGUMENT, f"not a valid JSON-RPC 2.0 request: {problem}")
        return error_object(invalid, INVALID_REQUEST, _id_of(element))

    def refuse(self, error: GatewayError) -> bytes:
        return dump_json(error_object(error))


def _id_of(request: Any) -> Any:
    """The request's id when it has a usable one (a string or an integer), else None."""
    return request.get("id") if isinstance(request, dict) and type(request.get("id")) in (str, int) else None


class JSONRPCCodec(HTTPCodec):
    """JSON-RPC 2.0 on ``/`` (and ``/jsonrpc``)."""

    name = "jsonrpc"
    path = "/"
    app_class = _JSONRPCApp

    def snippet(self, host: str, port: int, tls: bool) -> str:
        """curl calling resolve (with the token header when the gateway requires one)."""
        token = '  -H "Authorization: Bearer $NETOPS_TOKEN" \\\n' if self.gateway.services.tokens.required else ""
        return (
            f"curl -s {self.endpoint(host, port, tls)} -H 'Content-Type: application/json' \\\n{token}"
            '  -d \'{"jsonrpc": "2.0", "method": "resolve", "params": ["example.com"], "id": 1}\''
        )
