"""Call operations by name, many at once, and describe them. No I/O of its own.

Every transport reduces a request to :meth:`Gateway.call` (one operation) and
gets back plain data or a :class:`~gateway.errors.GatewayError`.  Introspection
(``system.listMethods``, ``methodHelp``, ``methodSignature``) and
``system.multicall`` are ordinary registered operations, so every transport
has them without code of its own.  Transports whose names cannot hold a dot
(RPyC, Pyro5, Thrift) use the *underscore* style: ``system_listMethods``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import functools
import logging
import secrets
import threading
from collections.abc import Callable, Coroutine, Mapping, Sequence
from time import perf_counter
from typing import Any, Literal, NamedTuple, TypedDict, TypeVar

from gateway.config import operation_settings
from gateway.context import Context, Deadline, Services
from gateway.errors import INTERNAL, INVALID_ARGUMENT, METHOD_NOT_FOUND, UNAUTHENTICATED, GatewayError
from gateway.eventloop import DNS_LOOP, name_native_thread
from gateway.limits import Admission, Hold, Place, ResultBudget
from gateway.observe import NO_CALLER, Caller, Observer
from gateway.registry import Operation, Registry, describe, operation

__all__ = ["DOTTED", "UNDERSCORE", "Gateway", "Style"]

log = logging.getLogger("gateway")
T = TypeVar("T")

Style = Literal["dotted", "underscore"]
DOTTED: Style = "dotted"
UNDERSCORE: Style = "underscore"


def public_name(name: str, style: Style) -> str:
    """The name a transport of ``style`` exposes for registry name ``name``."""
    return name.replace(".", "_") if style == UNDERSCORE else name


class Session(NamedTuple):
    """What a system operation receives: the gateway, the calling transport's naming style, the caller.

    A tuple made in C (``tuple.__new__(Session, ...)`` in :meth:`Gateway.call`): a class's ``__init__`` was
    one more Python frame on every listing's path, and once the client's process has run on the core each
    frame costs its cache misses more than its instructions."""

    gateway: Gateway
    style: Style
    caller: Caller


class Fault(TypedDict):
    """A failed multicall element, in the XML-RPC multicall convention."""

    faultCode: int
    faultString: str


class MultiCall(TypedDict, total=False):
    """One element of a multicall: the method's name and its positional (or named) parameters."""

    methodName: str
    params: Any


@operation(errors=(), name="system.listMethods", instant=True)
def list_methods(session: Session) -> list[str]:
    """List the names of every method callable on this transport."""
    # (Gateway.method_names' own lookup, without its frame: this is every listing's path)
    return list(session.gateway._names[session.style, session.caller.typed])


@operation(errors=(INVALID_ARGUMENT,), name="system.methodHelp", example={"name": "resolve"}, instant=True)
def method_help(session: Session, name: str) -> str:
    """Describe a method: what it does, its parameters, its result and its errors."""
    return session.gateway.lookup(name, session.style, session.caller).help()


@operation(errors=(INVALID_ARGUMENT,), name="system.methodSignature", example={"name": "resolve"}, instant=True)
def method_signature(session: Session, name: str) -> list[list[str]]:
    """List a method's signatures: [return type, parameter types…], one per number of arguments it accepts."""
    return session.gateway.lookup(name, session.style, session.caller).signatures()


@operation(
    errors=(INVALID_ARGUMENT,),
    name="system.multicall",
    example={
        "calls": [
            {"methodName": "resolve", "params": ["example.com"]},
            {"methodName": "mx_lookup", "params": ["example.com"]},
        ]
    },
)
def multicall(session: Session, calls: list[Any]) -> list[Any]:
    """Run several calls concurrently; in order, [result] per success or {faultCode, faultString} per failure."""
    return session.gateway.multicall(calls, session.style, session.caller)


@operation(errors=(), name="rpc.discover", untyped=True)
def discover(session: Session) -> dict[str, Any]:
    """Describe this service as an OpenRPC 1.x document (https://spec.open-rpc.org)."""
    from gateway.openrpc import openrpc_document

    return openrpc_document(session.gateway, session.style, session.caller)


SYSTEM_OPERATIONS = (list_methods, method_help, method_signature, multicall, discover)
SYSTEM_NAMES = frozenset(f.__netops__["name"] for f in SYSTEM_OPERATIONS)  # type: ignore[attr-defined]
INTROSPECTION = frozenset(
    public_name(f.__netops__["name"], style)  # type: ignore[attr-defined]
    for f in (list_methods, method_help, method_signature, discover)
    for style in (DOTTED, UNDERSCORE)
)


class Gateway:
    """The service layer as transports see it: call, multicall, describe."""

    def __init__(self, registry: Registry, services: Services, observers: Sequence[Observer] = ()) -> None:
        self.registry = Registry(list(registry))
        self.observers = list(observers)
        for func in SYSTEM_OPERATIONS:
            self.registry.add(describe(func))
        self.services = services
        self._tokens = services.tokens
        self._token_required = services.tokens.required
        settings = services.settings
        known = {op.name for op in self.registry}
        unknown = sorted({*settings.disable, *(e.split(".", 1)[0] for e in settings.limits)} - known)
        if unknown:
            raise ValueError(f"unknown operation {unknown[0]!r} in disable or limits")
        # Operations whose result has elapsed_ms: its declared field order, when elapsed_ms is not the last
        # field (added later, at the end of the struct, so its wire id did not move), else None.
        self._timed = {op.name: _field_order(op) for op in self.registry if _has_elapsed(op)}
        self.admission = Admission(
            settings.rate_limit, settings.rate_burst, settings.max_calls_per_client, settings.max_outbound
        )
        self._admits_system = self.admission.limits_local_calls  # asked once: a system call is a local one
        self._settings = {op.name: operation_settings(settings, op.name) for op in self.registry}
        enabled = [op for op in self.registry if op.name not in settings.disable]  # disabled: gone from every list
        self._by_style: dict[Style, dict[str, Operation]] = {
            style: {public_name(op.name, style): op for op in enabled} for style in (DOTTED, UNDERSCORE)
        }
        self._names = {
            (style, typed): tuple(sorted(n for n, op in ops.items() if not (op.untyped and typed)))
            for style, ops in self._by_style.items()
            for typed in (False, True)
        }  # system.listMethods' answers, sorted once
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self._lookup_slots: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None  # on the DNS loop

    # -- describing -------------------------------------------------------
    def method_names(self, style: Style = DOTTED, caller: Caller = NO_CALLER) -> list[str]:
        """Every method name callable by ``caller`` in ``style``, sorted."""
        return list(self._names[style, caller.typed])

    def lookup(self, name: str, style: Style = DOTTED, caller: Caller = NO_CALLER) -> Operation:
        """The operation a transport of ``style`` calls ``name``, or ``method_not_found``."""
        op = self._by_style[style].get(name) if isinstance(name, str) else None
        if op is None or (op.untyped and caller.typed):
            raise _not_found(name)
        return op

    def instant(self, name: Any, style: Style = DOTTED) -> bool:
        """Whether ``name`` is an operation that answers without I/O (a caller's name may be anything)."""
        op = self._by_style[style].get(name) if type(name) is str else None
        return op is not None and op.instant

    def is_lookup(self, name: Any, style: Style = DOTTED) -> bool:
        """Whether ``name`` is a coroutine operation (a DNS lookup), which a multicall or a JSON-RPC batch runs
        on the DNS loop."""
        op = self._by_style[style].get(name) if type(name) is str else None
        return op is not None and op.is_async

    # -- calling ----------------------------------------------------------
    def call(
        self,
        name: str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        style: Style = DOTTED,
        caller: Caller = NO_CALLER,
        element: bool = False,
        raw: bool = False,
        timeout: float | None = None,
        later: bool = False,
    ) -> Any:
        """Validate the arguments, run the operation and return its plain-data result (``element``: of a multicall).

        ``timeout``: the seconds the caller will wait (a gRPC deadline), when shorter than the operation's.
        ``later``: for a coroutine operation (:attr:`Operation.is_async`), return, once admitted, the coroutine
        that runs it and ends the call, for a multicall to await on the DNS loop beside its other elements.

        The one door into the core: authorisation first (an unauthenticated call is reported as refused,
        never labelled with the name it sent), then the observers, admission, binding and the operation.
        Observers see the registry's public name of the method, or ``unknown``: whatever callers send,
        the set of labels stays the registry's.
        """
        if self._token_required and not caller.principal:  # else there is nothing to check, and no call is made for it
            self.authorize(name, caller)
        op = self._by_style[style].get(name) if isinstance(name, str) else None  # looked up once per call
        observers = self.observers
        method, instant, start = "unknown", False, 0.0
        if observers:  # (method, instant and start are read only when there are observers)
            if op is not None:
                method, instant = name, op.instant  # an instant call is told once, at its end (Observer.answered)
            if not instant:
                for observer in observers:
                    observer.started(caller, method)
            start = perf_counter()
        outcome, place, handed_on = "ok", None, False
        try:
            if op is None or (op.untyped and caller.typed):
                raise _not_found(name)
            system = op.name in SYSTEM_NAMES
            if not system or self._admits_system:  # for a system call, decided once at start: no limit applies
                place = self.admission.take(caller.identity, not system, element)
            # A call that gives no arguments, to an operation that needs none (every listing), takes the
            # defaults as they are: bind would only copy them.
            defaults = op.defaults if not args and not kwargs else None
            bound = defaults if defaults is not None else op.bind(args, kwargs or {})
            if raw and op.name == "system.multicall":
                return self._call_many(bound["calls"], style, caller)
            if system:
                session = tuple.__new__(Session, (self, style, caller))
                # Every listing takes no arguments: unpacking an empty dict would cost 650 instructions a call.
                return op.func(session, **bound) if bound else op.func(session)
            if later and op.is_async:
                handed_on = True  # the coroutine ends the call
                return self._run_then_end(op, bound, (caller, method, instant, start, place))
            return self.run(op, bound, timeout)
        except GatewayError as exc:
            outcome = exc.code
            raise
        finally:
            if not handed_on:
                self._end((caller, method, instant, start, place), outcome)

    def _end(self, opened: _Opened, outcome: str) -> None:
        """A call's last step, on whichever thread it ended: its place in admission back, the observers told."""
        caller, method, instant, start, place = opened
        if place is not None:
            place.give_back()
        if self.observers:
            elapsed = perf_counter() - start
            for observer in self.observers:
                (observer.answered if instant else observer.finished)(caller, method, outcome, elapsed)

    def authorize(self, name: Any, caller: Caller) -> None:
        """Raise ``unauthenticated`` (counted as a refusal) unless ``caller`` may call ``name``; for a
        transport that must know before it touches the arguments (RPyC copies them in from the caller)."""
        try:
            self._authorize(name, caller)
        except GatewayError:
            self.refused(caller, UNAUTHENTICATED)
            raise

    def refused(self, caller: Caller, reason: str) -> None:
        """Tell the observers a request was refused before it reached an operation."""
        for observer in self.observers:
            observer.refused(caller, reason)

    def _authorize(self, name: str, caller: Caller) -> None:
        """Refuse a caller without an accepted token, before the method is even looked up."""
        if not self._tokens.required or caller.principal:
            return
        if self.services.settings.open_introspection and isinstance(name, str) and name in INTROSPECTION:
            return
        raise _unauthenticated(caller)

    def refusal(self, caller: Caller) -> GatewayError | None:
        """The error for a caller who could be answered nothing at all (tokens required, introspection
        closed, no accepted token), so transports can refuse it before reading a request; else None."""
        if not self._tokens.required or caller.principal or self.services.settings.open_introspection:
            return None
        return _unauthenticated(caller)

    def identify(self, caller: Caller, token: str | None) -> Caller:
        """``caller`` with the name of the token it presented, or marked as having presented a bad one."""
        if token is None or not self._tokens.required:
            return caller
        name = self._tokens.name_of(token)
        return dataclasses.replace(caller, principal=name or "", rejected=name is None)

    def run(self, op: Operation, bound: Mapping[str, Any], timeout: float | None = None) -> Any:
        """Run a non-system operation with already-bound arguments, mapping stray exceptions to ``internal``;
        within the operation's time limit, or ``timeout`` seconds when the caller waits less. A coroutine
        operation runs on the DNS loop, this thread waiting for it."""
        start = perf_counter()
        settings = self._settings[op.name]
        seconds = settings.timeout if timeout is None else max(0.001, min(settings.timeout, timeout))
        ctx = Context(self.services, Deadline(seconds), settings)
        try:
            with self.services.results.scope():  # nested in the connection layer's: held until encoded
                result = self._wait(op.func(ctx, **bound), ctx, seconds) if op.is_async else op.func(ctx, **bound)
        except GatewayError:
            raise
        except Exception:
            raise _internal(op) from None
        return self._stamped(op, result, start)

    @staticmethod
    def _wait(operation: Coroutine[Any, Any, T], ctx: Context, seconds: float) -> T:
        """Run a coroutine operation on the DNS loop, this thread waiting for it."""
        try:
            return DNS_LOOP.wait(_within_deadline(operation, ctx), seconds)
        except TimeoutError:  # the loop did not answer in time (the coroutine's own timeout is a GatewayError)
            raise ctx.deadline.expired() from None

    async def _run_then_end(self, op: Operation, bound: Mapping[str, Any], opened: _Opened) -> Any:
        """:meth:`run` for a multicall's coroutine element, on the DNS loop; then the end of its call (as
        :meth:`call` would have ended it): its result, or :class:`Failed`."""
        outcome = "ok"
        try:
            start = perf_counter()
            settings = self._settings[op.name]
            ctx = Context(self.services, Deadline(settings.timeout), settings)
            try:
                result = await _within_deadline(op.func(ctx, **bound), ctx)
            except GatewayError:
                raise
            except Exception:
                raise _internal(op) from None
            return self._stamped(op, result, start)
        except GatewayError as exc:
            outcome = exc.code
            return Failed(exc)
        finally:
            self._end(opened, outcome)

    def _stamped(self, op: Operation, result: Any, start: float) -> Any:
        """``result`` with the time its operation took, when it reports one (elapsed_ms), in declared order."""
        if op.name in self._timed:
            result["elapsed_ms"] = round((perf_counter() - start) * 1000, 3)
            order = self._timed[op.name]
            if order is not None:  # every transport lists the fields in the same, declared order
                result = {name: result[name] for name in order if name in result}
        return result

    def call_many(self, calls: Sequence[Any], style: Style = DOTTED, caller: Caller = NO_CALLER) -> list[Any]:
        """``system.multicall`` through the same door as every call, with each element's result, or
        :class:`Failed` holding its error, in order (for transports that type each outcome: Thrift)."""
        outcomes: list[Any] = self.call(
            public_name("system.multicall", style), [list(calls)], style=style, caller=caller, raw=True
        )
        return outcomes

    def multicall(self, calls: Sequence[Any], style: Style = DOTTED, caller: Caller = NO_CALLER) -> list[Any]:
        """Run calls concurrently on a bounded pool; results in order, failures as faults."""
        return [fault(r.error) if isinstance(r, Failed) else [r] for r in self._call_many(calls, style, caller)]

    def _call_many(self, calls: Sequence[Any], style: Style, caller: Caller) -> list[Any]:
        limit = self.services.settings.max_batch
        if len(calls) > limit:
            raise GatewayError(INVALID_ARGUMENT, f"a multicall holds at most {limit} calls ({len(calls)} given)")
        outcomes: list[Any] = [None] * len(calls)
        lookups: dict[int, Callable[[], Coroutine[Any, Any, Any]]] = {}
        threaded: dict[int, Callable[[], Any]] = {}
        for index, item in enumerate(calls):
            try:
                name, args, kwargs = unpack_call(item)
                op = self.lookup(name, style, caller)
                if op.name == "system.multicall":
                    raise GatewayError(INVALID_ARGUMENT, "system.multicall cannot be nested in a multicall")
            except GatewayError as exc:
                outcomes[index] = Failed(exc)
                continue
            if op.is_async:
                lookups[index] = functools.partial(self.call_later, name, args, kwargs, style, caller)
            else:
                threaded[index] = functools.partial(self._one_of_many, name, args, kwargs, style, caller)
        return self.run_elements(outcomes, threaded, lookups)

    def run_elements(
        self,
        outcomes: list[Any],
        threaded: Mapping[int, Callable[[], Any]],
        lookups: Mapping[int, Callable[[], Coroutine[Any, Any, Any]]],
    ) -> list[Any]:
        """Run a multicall's (or a batch's) elements at once and put each outcome in ``outcomes`` at its index:
        the lookups (coroutines of :meth:`call_later`'s kind) together on the DNS loop, the rest on the
        multicall threads meanwhile. 100 mx_lookups on 100 threads cost ~0.9 ms of CPU each in hand-offs and
        wake-ups, on top of their queries."""
        gathered = DNS_LOOP.submit(self._take_turns(list(lookups.values()))) if lookups else None
        for index, outcome in zip(threaded, self.run_all(list(threaded.values())), strict=True):
            outcomes[index] = outcome
        if gathered is not None:
            for index, outcome in zip(lookups, gathered.result(), strict=True):
                outcomes[index] = outcome
        return outcomes

    async def _take_turns(self, lookups: Sequence[Callable[[], Coroutine[Any, Any, T]]]) -> list[T]:
        """Lookups on the DNS loop, at most ``multicall_workers`` of every multicall's at once, the others
        waiting their turn, as on the multicall threads (all at once, a multicall of 1,000 would meet the
        outbound cap, 256, and have 744 refused); each is started, and so enters the door, in its turn."""
        loop = asyncio.get_running_loop()
        if self._lookup_slots is None or self._lookup_slots[0] is not loop:  # (a loop started again: a fresh one)
            self._lookup_slots = (loop, asyncio.Semaphore(self.services.settings.multicall_workers))
        slots = self._lookup_slots[1]

        async def in_turn(lookup: Callable[[], Coroutine[Any, Any, T]]) -> T:
            async with slots:
                return await lookup()

        return await asyncio.gather(*(in_turn(lookup) for lookup in lookups))

    async def call_later(
        self, name: str, args: Sequence[Any], kwargs: Mapping[str, Any], style: Style, caller: Caller
    ) -> Any:
        """A multicall's (or a batch's) element naming a coroutine operation (:meth:`is_lookup`), on the DNS
        loop: through the same door as :meth:`call`; its result, or :class:`Failed`."""
        try:
            running = self.call(name, args, kwargs, style=style, caller=caller, element=True, later=True)
        except GatewayError as exc:
            return Failed(exc)
        return await running

    def run_all(self, tasks: Sequence[Callable[[], T]]) -> list[T]:
        """Run tasks concurrently on the bounded multicall pool; results in order.

        A task already running on the pool runs its own tasks inline: waiting on
        the pool from inside it could leave every worker waiting on queued work.
        """
        if len(tasks) <= 1 or getattr(_on_pool, "active", False):
            return [task() for task in tasks]
        pool = self._executor()
        holds = ResultBudget.current()  # what the elements hold counts in this call's scope
        futures = [pool.submit(_pooled, task, holds) for task in tasks]
        return [f.result() for f in futures]

    def _one_of_many(
        self, name: str, args: Sequence[Any], kwargs: Mapping[str, Any], style: Style, caller: Caller
    ) -> Any:
        try:
            return self.call(name, args, kwargs, style=style, caller=caller, element=True)
        except GatewayError as exc:
            return Failed(exc)

    def _executor(self) -> concurrent.futures.ThreadPoolExecutor:
        if self._pool is None:
            with self._pool_lock:
                if self._pool is None:
                    self._pool = concurrent.futures.ThreadPoolExecutor(
                        max_workers=self.services.settings.multicall_workers,
                        thread_name_prefix="multicall",
                        initializer=name_native_thread,
                    )
        return self._pool

    def close(self) -> None:
        """Stop the multicall pool (waits for running elements)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)


def _not_found(name: Any) -> GatewayError:
    return GatewayError(METHOD_NOT_FOUND, f"no method named {str(name)[:100]!r}")


def _unauthenticated(caller: Caller) -> GatewayError:
    return GatewayError(
        UNAUTHENTICATED, "the token was not accepted" if caller.rejected else "this gateway requires a token"
    )


# What a call's end needs: its caller, method, whether it is instant, its start and its place in admission.
_Opened = tuple[Caller, str, bool, float, "Place | None"]


async def _within_deadline(operation: Coroutine[Any, Any, T], ctx: Context) -> T:
    """Await a coroutine operation, cut at its deadline with ``timeout``."""
    try:
        async with asyncio.timeout(ctx.deadline.remaining()):
            return await operation
    except TimeoutError:
        raise ctx.deadline.expired() from None
    finally:
        operation.close()  # not started (no time was left): closed, not left to be reported as never awaited


def _internal(op: Operation) -> GatewayError:
    """Log the exception being handled under an incident id, and the ``internal`` error that names only it."""
    incident = secrets.token_hex(4)
    log.exception("internal error in %s (incident %s)", op.name, incident)
    return GatewayError(INTERNAL, f"internal error (incident {incident})")


class Failed:
    """A multicall element's error, kept apart from results (a result is never an instance of this)."""

    __slots__ = ("error",)

    def __init__(self, error: GatewayError) -> None:
        self.error = error


_on_pool = threading.local()


def _pooled(task: Callable[[], T], holds: list[Hold] | None = None) -> T:
    _on_pool.active = True
    try:
        with ResultBudget.joined(holds):
            return task()
    finally:
        _on_pool.active = False


def unpack_call(item: Any) -> tuple[str, Sequence[Any], Mapping[str, Any]]:
    """Split one multicall element ``{methodName, params}`` into name, positional and named arguments."""
    if not isinstance(item, dict) or type(item.get("methodName")) is not str:
        raise GatewayError(INVALID_ARGUMENT, "each multicall element must be a struct with a string methodName")
    extra = sorted(set(item) - {"methodName", "params"})
    if extra:
        raise GatewayError(INVALID_ARGUMENT, f"multicall element has unknown member {extra[0]!r}")
    params = item.get("params", [])
    if isinstance(params, (list, tuple)):
        return item["methodName"], params, {}
    if isinstance(params, dict):
        return item["methodName"], (), params
    raise GatewayError(INVALID_ARGUMENT, "multicall params must be an array or a struct")


def fault(exc: GatewayError) -> Fault:
    """A multicall fault struct for an error."""
    return {"faultCode": exc.number, "faultString": str(exc)}


def _field_order(op: Operation) -> tuple[str, ...] | None:
    names = tuple(f.name for f in op.result.fields)
    return None if names[-1] == "elapsed_ms" else names


def _has_elapsed(op: Operation) -> bool:
    return op.result.kind == "struct" and any(f.name == "elapsed_ms" for f in op.result.fields)
