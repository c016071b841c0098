"""gRPC: grpcio serving ``netops.v1.NetOps`` (see :mod:`gateway.proto`), with server reflection and health.

gRPC's core owns its HTTP/2 connections, so this is the one transport the
connection layer does not accept for (a :class:`ServingCodec`): the caps are
the same settings, given to the core as its channel arguments (connections,
message sizes, concurrent streams, idle and handshake time, keep-alive pings,
metadata size).  It is grpcio's asyncio server on an event loop of its own
(``grpc-io`` thread): an instant call (listings, help) is answered on that loop,
any other runs on a pool of ``call_workers`` threads, so threads never grow
with connections.  grpcio's threaded server hands every call to a pool
thread, which then waits for the poller thread to bring it the request: two
thread hand-offs a call, which cost more CPU on a VM than the call's own
work.  Nothing is deserialized before
authentication: a call without an accepted token is refused by an
interceptor whose handler never parses the request.

Tokens are ``authorization: Bearer …`` metadata; TLS and mutual TLS come from
``tls_cert``/``tls_key``/``tls_client_ca``.  A failure is a status from
:data:`STATUS` with the message ``code: text`` and the gateway's stable code
in the trailing metadata ``netops-code``.  A client deadline shorter than the
operation's time limit ends the operation (just after the deadline: see
``PAST_DEADLINE``).  Reflection and
listing are introspection (closed without a token unless
``open_introspection``); the health service answers everyone, like
``/healthz``.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import io
import logging
import socket
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import message_factory
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc

from gateway.core import SYSTEM_OPERATIONS, UNDERSCORE, Failed, Gateway, public_name
from gateway.errors import GRPC_STATUS, INVALID_ARGUMENT, UNAUTHENTICATED, GatewayError
from gateway.eventloop import LoopThread, name_native_thread
from gateway.net.session import Deferred, ServingCodec, each_piece
from gateway.observe import Caller
from gateway.proto import PACKAGE, SERVICE, Method, default_pool, methods
from gateway.registry import Operation, describe
from gateway.transports.base import internal_error
from gateway.transports.long_strings import LONG, MARKER_LENGTH, LongStrings, prefixed, utf8, varint

__all__ = ["STATUS", "GRPCCodec"]

log = logging.getLogger("gateway.grpc")

FULL_SERVICE = f"{PACKAGE}.{SERVICE}"
STATUS = {code: grpc.StatusCode[name] for code, name in GRPC_STATUS.items()}  # our stable codes as gRPC's
CODE_KEY = "netops-code"
MAX_STREAMS = 100  # concurrent calls on one HTTP/2 connection (gRPC's usual default)
# The work of a call ends this long after the caller's deadline: the caller's own library reports the deadline
# (grpcio drops an answer sent after it), instead of a race between our timeout answer and its timer.
PAST_DEADLINE = 0.1
MAX_CALLERS = 4096  # callers kept by peer address: a bound, whatever the connections come and go
INTROSPECTION = frozenset(
    {f"/{FULL_SERVICE}/{m}" for m in ("ListMethods", "MethodHelp", "MethodSignature")}
    | {f"/{reflection.SERVICE_NAME}/ServerReflectionInfo", "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"}
)
OPEN = frozenset({f"/{health.SERVICE_NAME}/Check", f"/{health.SERVICE_NAME}/Watch"})


def _token(metadata: Any) -> str | None:
    for key, value in metadata or ():
        if key == "authorization":
            scheme, _, token = str(value).partition(" ")
            return token.strip() if scheme.lower() == "bearer" else ""
    return None


def _client(peer: str) -> str:
    """The client's address in a gRPC peer string ("ipv4:127.0.0.1:5000", "ipv6:[::1]:5000")."""
    kind, _, rest = peer.partition(":")
    return rest if kind in ("ipv4", "ipv6") else peer


class _Malformed:
    """A request whose bytes are not its message: answered invalid_argument, never internal."""


MALFORMED = _Malformed()


def _parser(message: Any) -> Callable[[bytes], Any]:
    def parse(data: bytes) -> Any:
        try:
            return message.FromString(data)
        except Exception:  # DecodeError, or a message nested past protobuf's recursion limit
            return MALFORMED

    return parse


class _Refuser(grpc.aio.ServerInterceptor):
    """Refuse a call without an accepted token from its metadata alone: its message is never parsed."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        introspection_open = gateway.services.settings.open_introspection
        self.open = OPEN | (INTROSPECTION if introspection_open else frozenset())

    async def intercept_service(
        self, continuation: Callable[[Any], Awaitable[grpc.RpcMethodHandler]], details: Any
    ) -> grpc.RpcMethodHandler:
        tokens = self.gateway.services.tokens
        if not tokens.required or details.method in self.open:
            return await continuation(details)
        token = _token(details.invocation_metadata)
        if token is not None and tokens.name_of(token):
            return await continuation(details)
        caller = Caller("grpc", "", typed=True, rejected=token is not None)
        error = self.gateway.refusal(caller) or GatewayError(UNAUTHENTICATED, "this gateway requires a token")
        self.gateway.refused(caller, UNAUTHENTICATED)

        async def refuse(_: Any, context: grpc.aio.ServicerContext) -> None:
            await _abort(context, error)

        # grpcio reads a None from a deserializer as a failure: the unread request stands as MALFORMED
        return grpc.unary_unary_rpc_method_handler(refuse, request_deserializer=lambda _: MALFORMED)


async def _abort(context: grpc.aio.ServicerContext, error: GatewayError) -> None:
    """End the call with the error's status, its stable code in the trailing metadata (raises AbortError)."""
    await context.abort(STATUS.get(error.code, grpc.StatusCode.INTERNAL), str(error), ((CODE_KEY, error.code),))


def _probe(host: str, port: int) -> None:
    """Raise OSError if ``port`` cannot be bound (bound and let go at once, as grpcio would bind it)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # grpcio's own: a TIME_WAIT port is free
        sock.bind((host, port))


class _GenericOnly:
    """A server as the generated ``add_*_to_server`` functions see it, which takes their generic handler only.

    They also register each method by name (``add_registered_method_handlers``). On grpcio's asyncio
    server that made every call of *another* service dearer: health's three methods cost each NetOps call
    16K instructions more (303K -> 319K, callgrind, a bare server of one method), as many as the gateway's
    own core. Looked up generically, after the NetOps handler, they cost nothing until called."""

    def __init__(self, server: grpc.aio.Server) -> None:
        self.server = server

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        """Add the service's generic handler to the server."""
        self.server.add_generic_rpc_handlers(handlers)

    def add_registered_method_handlers(self, service: str, handlers: Any) -> None:
        """Drop the by-name registration (see the class)."""


class GRPCCodec(ServingCodec):
    """``netops.v1.NetOps`` on grpcio's server, reflection and health beside it."""

    name = "grpc"
    typed = True  # every RPC has typed messages: rpc.discover (any shape) has none

    def __init__(self, gateway: Gateway) -> None:
        super().__init__(gateway)
        self.pool, _ = default_pool()
        try:  # the health service's types, for reflection (they live in protobuf's default pool)
            self.pool.FindFileByName(health_pb2.DESCRIPTOR.name)
        except KeyError:
            self.pool.AddSerializedFile(health_pb2.DESCRIPTOR.serialized_pb)
        self.server: grpc.aio.Server | None = None
        self.started = self.stopped = False
        self.up = False  # grpcio's server accepts calls, or is being made again (see _serve_again)
        self.address = ("", 0, False)  # host, bound port, reuse_port: where to serve again
        self.recovery: set[asyncio.Future[Any]] = set()  # serving again, and the failed server's end (kept alive)
        self.io = LoopThread("grpc-io")
        self.workers: ThreadPoolExecutor | None = None
        self.health: health.aio.HealthServicer | None = None
        self._callers: dict[str, Caller] = {}  # by peer, when no token is required (see _caller)

    # -- the server --------------------------------------------------------------------------------
    def bind(self, host: str, port: int, reuse_port: bool) -> int:
        """Start the loop thread, build the server on it with every cap from the settings and bind its port."""
        try:
            bound = self._on_loop(self._build(host, port, reuse_port))
        except BaseException:
            self._end_loop()
            raise
        if not bound:  # grpcio says only "failed to bind"; a busy port is by far the likeliest cause
            self._end_loop()
            raise OSError(errno.EADDRINUSE, "address already in use")
        self.address = (host, bound, reuse_port)
        return bound

    def _on_loop(self, work: Coroutine[Any, Any, Any], timeout: float | None = 30.0) -> Any:
        """Run ``work`` on the server's loop and wait for its result."""
        return self.io.submit(work).result(timeout)

    async def _build(self, host: str, port: int, reuse_port: bool) -> int:
        if port and not reuse_port:
            _probe(host, port)  # a busy port is our one-line error, before grpcio logs its own to stderr
        settings = self.gateway.services.settings
        options = [
            ("grpc.so_reuseport", int(reuse_port)),
            ("grpc.max_receive_message_length", settings.max_request_bytes),
            ("grpc.max_send_message_length", settings.max_result_bytes or -1),
            ("grpc.max_allowed_incoming_connections", settings.max_connections),
            ("grpc.max_concurrent_streams", MAX_STREAMS),
            ("grpc.max_connection_idle_ms", int(settings.idle_timeout * 1000)),
            ("grpc.server_handshake_timeout_ms", int(settings.handshake_timeout * 1000)),
            ("grpc.max_metadata_size", 16 * 1024),
            # Keep-alive: answer a client's pings at most every 10 s; more is a ping flood and closes it.
            ("grpc.http2.min_recv_ping_interval_without_data_ms", 10_000),
            ("grpc.http2.max_ping_strikes", 2),
            # No bandwidth-probing pings with each answer: a call is one round trip on the wire.
            ("grpc.http2.bdp_probe", 0),
        ]
        if self.workers is None:  # (kept when the server is made again)
            self.workers = ThreadPoolExecutor(
                settings.call_workers, thread_name_prefix="grpc", initializer=name_native_thread
            )
        server = grpc.aio.server(
            handlers=[self._service()],
            # Only when tokens are required: grpcio runs an interceptor in Python on every call.
            interceptors=[_Refuser(self.gateway)] if self.gateway.services.tokens.required else [],
            options=options,
            maximum_concurrent_rpcs=settings.call_workers * 4,  # beyond: RESOURCE_EXHAUSTED at once
        )
        self.health = health.aio.HealthServicer()
        beside = _GenericOnly(server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, beside)
        names = (FULL_SERVICE, health.SERVICE_NAME, reflection.SERVICE_NAME)
        reflection_pb2_grpc.add_ServerReflectionServicer_to_server(
            reflection.aio.ReflectionServicer(names, pool=self.pool), beside
        )
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        try:
            bound = server.add_secure_port(address, self._credentials()) if settings.tls_cert else None
            bound = bound if bound is not None else server.add_insecure_port(address)
        except RuntimeError:
            bound = 0
        if bound:
            self.server = server
        else:
            await server.stop(None)
        return bound

    def _credentials(self) -> grpc.ServerCredentials:
        settings = self.gateway.services.settings
        key, cert = Path(settings.tls_key).read_bytes(), Path(settings.tls_cert).read_bytes()
        client_ca = Path(settings.tls_client_ca).read_bytes() if settings.tls_client_ca else None
        return grpc.ssl_server_credentials([(key, cert)], client_ca, require_client_auth=client_ca is not None)

    def start(self) -> None:
        """Serve."""
        assert self.server is not None, "bind() before start()"
        self._on_loop(self._start())
        self.started = True

    async def _start(self) -> None:
        server, health_servicer = self.server, self.health
        assert server is not None and health_servicer is not None
        # The first task grpcio makes as it starts (before it awaits anything) is its accept loop: watched, to
        # serve again if it fails.
        loop = asyncio.get_running_loop()
        made: list[asyncio.Task[Any]] = []

        def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
            loop.set_task_factory(None)
            task = asyncio.Task(coro, loop=loop, **kwargs)
            made.append(task)
            return task

        loop.set_task_factory(factory)  # type: ignore[arg-type]  # typeshed: the factory's own signature
        try:
            await server.start()
        finally:
            loop.set_task_factory(None)
        if made:
            made[0].add_done_callback(functools.partial(self._accepting_ended, server))
        self.up = True
        await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
        await health_servicer.set(FULL_SERVICE, health_pb2.HealthCheckResponse.SERVING)

    def _accepting_ended(self, server: grpc.aio.Server, accepting: asyncio.Task[Any]) -> None:
        """grpcio's accept loop ended: when it failed while serving, serve again (on the loop)."""
        if accepting.cancelled() or accepting.exception() is None or self.stopped or server is not self.server:
            return
        self._keep(self._serve_again(server))  # up meanwhile: the gateway's watchdog would exit on a blink

    async def _serve_again(self, failed: grpc.aio.Server) -> None:
        """A new server on the same port, in place of one that stopped on its own.

        grpcio's asyncio server decodes each call's method path as UTF-8 in its accept loop (1.85): a path
        that is not UTF-8 (one HTTP/2 request, before any check of ours can run) fails the loop, and grpcio
        then stops the server. Its calls in progress still end as they would (``failed`` stops with their
        time limit as its grace); new connections reach the new server, which binds as soon as the old one
        lets the port go.
        """
        host, port, reuse_port = self.address
        self.gateway.refused(Caller(self.name), "parse_error")
        log.warning(
            "grpc: the server stopped on a request it could not read (its method path was not UTF-8); "
            "serving again on port %d",
            port,
        )
        timeout = self.gateway.services.settings.timeout
        self._keep(failed.stop(grace=timeout))
        for _ in range(50):  # its listening socket closes as it shuts down: at once, or nearly
            if self.stopped:
                return  # the gateway is stopping: nothing to serve again
            try:
                bound = await self._build(host, port, reuse_port)
            except OSError:
                bound = 0
            if bound == port:
                await self._start()
                return
            await asyncio.sleep(0.05)
        log.error("grpc: could not serve on port %d again; gRPC is down", port)
        self.up = False

    def _keep(self, work: Coroutine[Any, Any, Any]) -> None:
        """Run ``work`` on the loop, held until it ends (the loop keeps only a weak reference to a task)."""
        task = asyncio.ensure_future(work)
        self.recovery.add(task)
        task.add_done_callback(self.recovery.discard)

    def serving(self) -> bool:
        """Started, not stopped, and grpcio's server accepting calls (or being made again, in milliseconds)."""
        return self.started and not self.stopped and self.up

    def close(self) -> None:
        """Stop: calls in progress get a second to finish."""
        if self.server is not None and not self.stopped:
            self.stopped = True
            try:
                self._on_loop(self._stop(), timeout=5)
            finally:
                self._end_loop()

    async def _stop(self) -> None:
        assert self.server is not None and self.health is not None
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace=1.0)

    def _end_loop(self) -> None:
        self.io.stop()
        if self.workers is not None:
            self.workers.shutdown(wait=False, cancel_futures=True)

    # -- the calls ---------------------------------------------------------------------------------
    def _service(self) -> grpc.GenericRpcHandler:
        from gateway.ops import default_registry

        system = [describe(f) for f in SYSTEM_OPERATIONS]
        ops = {op.name: op for op in (*default_registry(), *system)}
        handlers = {m.name: self._handler(m, ops[m.operation]) for m in methods(default_registry(), system)}
        return grpc.method_handlers_generic_handler(FULL_SERVICE, handlers)

    def _message(self, name: str) -> Any:
        return message_factory.GetMessageClass(self.pool.FindMessageTypeByName(f"{PACKAGE}.{name}"))

    def _handler(self, method: Method, op: Operation) -> grpc.RpcMethodHandler:
        request, response = self._message(method.request), self._message(method.response)
        public = public_name(op.name, UNDERSCORE)
        shape: Callable[[Any], Any]
        if op.name == "system.multicall":
            return grpc.unary_unary_rpc_method_handler(
                functools.partial(self._multicall, response),
                request_deserializer=_parser(request),
                response_serializer=_serialize,
            )
        if op.name == "system.listMethods":
            shape = lambda names: response(methods=names)  # noqa: E731
        elif op.name == "system.methodHelp":
            shape = lambda text: response(help=text)  # noqa: E731
        elif op.name == "system.methodSignature":
            signature = self._message("Signature")
            shape = lambda sigs: response(signatures=[signature(types=s) for s in sigs])  # noqa: E731
        else:
            shape = functools.partial(_shape, response)
        params = [(p.name, not p.required) for p in op.params]
        # An instant operation does no I/O: it is answered on the loop, without the caller's deadline (a call
        # into grpcio less) or a worker; any other runs on a worker, ending just after the caller's deadline.
        instant = op.instant
        call = self.gateway.call

        async def handle(message: Any, context: grpc.aio.ServicerContext) -> Any:
            caller = self._caller(context)
            if message is MALFORMED:
                self.gateway.refused(caller, "parse_error")
                await _abort(context, GatewayError(INVALID_ARGUMENT, f"the request is not a valid {method.request}"))
            try:
                kwargs = _arguments(message, params) if params else None
                if instant:
                    result = call(public, (), kwargs, style=UNDERSCORE, caller=caller)
                else:
                    remaining = context.time_remaining()  # None: the caller set no deadline
                    timeout = None if remaining is None else remaining + PAST_DEADLINE
                    work = functools.partial(call, public, (), kwargs, style=UNDERSCORE, caller=caller, timeout=timeout)
                    result = await asyncio.get_running_loop().run_in_executor(self.workers, work)
                return shape(result)
            except GatewayError as exc:
                error = exc
            except Exception as exc:  # a result the message cannot hold: a defect, logged with an incident id
                error = internal_error(exc, f"grpc {method.name}")
            await _abort(context, error)

        return grpc.unary_unary_rpc_method_handler(
            handle, request_deserializer=_parser(request), response_serializer=_serialize
        )

    def _caller(self, context: grpc.aio.ServicerContext) -> Caller:
        """Who is calling. Without tokens a caller is its connection (the peer's address and port), made once
        per connection and not once per call; with tokens every call's metadata is checked."""
        peer = context.peer()
        if self.gateway.services.tokens.required:
            return self.gateway.identify(
                Caller("grpc", _client(peer), typed=True), _token(context.invocation_metadata())
            )
        caller = self._callers.get(peer)
        if caller is None:
            if len(self._callers) >= MAX_CALLERS:
                self._callers.clear()  # connections come and go: the next call of each makes its caller again
            caller = self._callers[peer] = Caller("grpc", _client(peer), typed=True)
        return caller

    async def _multicall(self, response: Any, message: Any, context: grpc.aio.ServicerContext) -> Any:
        caller = self._caller(context)
        if message is MALFORMED:
            self.gateway.refused(caller, "parse_error")
            await _abort(context, GatewayError(INVALID_ARGUMENT, "the request is not a valid MulticallRequest"))
        limit = self.gateway.services.settings.max_batch
        if len(message.calls) > limit:  # before a dict is built for any of them
            self.gateway.refused(caller, "batch_too_large")
            given = len(message.calls)
            await _abort(
                context, GatewayError(INVALID_ARGUMENT, f"a multicall holds at most {limit} calls ({given} given)")
            )
        outcome, error = self._message("Outcome"), self._message("Error")
        calls: list[Any] = []
        for call in message.calls:
            picked = call.WhichOneof("call")
            if picked is None:
                calls.append(None)
                continue
            arguments = getattr(call, picked)
            fields = arguments.DESCRIPTOR.fields
            params = [(f.name, f.has_presence) for f in fields]
            calls.append({"methodName": picked, "params": _arguments(arguments, params)})
        runnable = [c for c in calls if c is not None]
        work = functools.partial(self.gateway.call_many, runnable, UNDERSCORE, caller)
        try:
            results = iter(await asyncio.get_running_loop().run_in_executor(self.workers, work))
        except GatewayError as exc:
            await _abort(context, exc)
        outcomes = []
        for call in calls:
            if call is None:
                failed = GatewayError(INVALID_ARGUMENT, "each Call sets the field of one operation")
                outcomes.append(outcome(error=error(code=failed.code, message=str(failed))))
                continue
            result = next(results)
            if isinstance(result, Failed):
                outcomes.append(outcome(error=error(code=result.error.code, message=str(result.error))))
            else:
                outcomes.append(outcome(**{call["methodName"]: result}))
        return response(outcomes=outcomes)

    # -- what clients are told ---------------------------------------------------------------------
    def endpoint(self, host: str, port: int, tls: bool) -> str:
        """The target a gRPC channel opens (``grpc.secure_channel`` when TLS is on), and what it serves."""
        host = f"[{host}]" if ":" in host else host
        return f"{host}:{port} (service {FULL_SERVICE}, idl/netops.proto, server reflection)"

    def snippet(self, host: str, port: int, tls: bool) -> str:
        """grpcio calling Resolve with no .proto at all: the service's types come from server reflection."""
        target = self.endpoint(host, port, tls).split(" ", 1)[0]
        channel = (
            f"grpc.secure_channel({target!r}, grpc.ssl_channel_credentials())"
            if tls
            else (f"grpc.insecure_channel({target!r})")
        )
        token = self.gateway.services.tokens.required
        lines = [
            *(["import os"] if token else []),
            "import grpc",
            "from google.protobuf.descriptor_pool import DescriptorPool",
            "from google.protobuf.message_factory import GetMessageClass",
            "from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (",
            "    ProtoReflectionDescriptorDatabase,",
            ")",
            "",
            f"channel = {channel}",
        ]
        if token:
            lines += [
                "",
                "class Token(grpc.UnaryUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):",
                "    def add(self, details):",
                "        bearer = ('authorization', 'Bearer ' + os.environ['NETOPS_TOKEN'])",
                "        return details._replace(metadata=[*(details.metadata or ()), bearer])",
                "    intercept_unary_unary = lambda self, call, details, request: call(self.add(details), request)",
                "    intercept_stream_stream = lambda self, call, details, requests: call(self.add(details), requests)",
                "",
                "channel = grpc.intercept_channel(channel, Token())",
            ]
        lines += [
            "pool = DescriptorPool(ProtoReflectionDescriptorDatabase(channel))",
            "method = pool.FindServiceByName('netops.v1.NetOps').methods_by_name['Resolve']",
            "Request, Result = GetMessageClass(method.input_type), GetMessageClass(method.output_type)",
            "resolve = channel.unary_unary('/netops.v1.NetOps/Resolve', Request.SerializeToString, Result.FromString)",
            "print(resolve(Request(host='example.com')))",
        ]
        return "\n".join(lines)


def _arguments(message: Any, params: list[tuple[str, bool]]) -> dict[str, Any]:
    """A request message's fields as keyword arguments: an optional one only when the caller set it."""
    out: dict[str, Any] = {}
    for name, optional in params:
        value = getattr(message, name)
        if hasattr(value, "keys"):  # a map
            if value:
                out[name] = dict(value)
        elif isinstance(value, (str, bytes, int, float, bool)):
            if not optional or message.HasField(name):
                out[name] = value
        elif len(value):  # a repeated field
            out[name] = list(value)
    return out


def _shape(response: Any, result: dict[str, Any]) -> Any:
    """The result as its message; one with a long string is kept apart from protobuf (see :class:`_Spliced`)."""
    for value in result.values():
        if type(value) is str and len(value) >= LONG:
            long = LongStrings()
            taken = {key: long.take(item) if type(item) is str else item for key, item in result.items()}
            return _Spliced(response(**taken), long)
    return response(**result)


class _Spliced:
    """A result message with markers for its long strings (top-level fields), put back as it is serialized.

    protobuf copies a string into its message, serializes into a buffer of
    its own and then into bytes, and a cleared message keeps its memory: a
    10 MiB body was held three times. Here the small rest is serialized and
    each string's UTF-8 written after its length into one buffer, handed over
    as bytes without a copy, and the strings are let go before grpcio copies
    those bytes: the body is held twice at most, and for a moment.
    """

    __slots__ = ("long", "message")

    def __init__(self, message: Any, long: LongStrings) -> None:
        self.message = message
        self.long = long

    def serialize(self) -> bytes:
        """The bytes the message would have with the strings in it (a protobuf string: length, UTF-8)."""
        parts = self.long.splice(self.message.SerializeToString(), varint(MARKER_LENGTH), b"", _proto_string)
        out = io.BytesIO()
        for piece in each_piece(parts):
            out.write(piece)
        self.long.strings.clear()  # before grpcio copies the bytes, not after
        return out.getvalue()  # BytesIO hands over its own buffer, without a copy


def _proto_string(text: str) -> Deferred:
    data = utf8(text)
    return prefixed(varint(data.size), data)


# A message whose bytes are larger is emptied once serialized; a small one is let go as it is (emptying it
# costs more than it frees).
CLEAR_BYTES = 64 * 1024


def _serialize(message: Any) -> bytes:
    """The message's bytes, and a large message emptied (grpcio copies the bytes while it still holds it)."""
    if type(message) is _Spliced:
        return message.serialize()
    data: bytes = message.SerializeToString()
    if len(data) > CLEAR_BYTES:
        message.Clear()
    return data
