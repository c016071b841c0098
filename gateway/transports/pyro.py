"""Pyro5: the registry's operations as methods of one exposed object, ``PYRO:netops@host:port``.

Types: serpent carries dicts, lists, strings, numbers and booleans as they
are (only serpent: a client choosing marshal, json or msgpack is refused at
the handshake).  Errors: a builtin exception class (see
:data:`gateway.transports.EXCEPTIONS`) whose message starts with the stable
code; the exception reply carries no traceback and no server path.
Configuration is set here in code (Pyro5 otherwise reads ``PYRO_*`` from the
environment): message size capped, idle connections dropped after
``idle_timeout``.
"""

from __future__ import annotations

import logging
import socket
import ssl
import struct
import threading
from typing import Any

import Pyro5.api
import Pyro5.errors
import Pyro5.protocol
import Pyro5.serializers
import Pyro5.server

from gateway.core import UNDERSCORE, Gateway
from gateway.errors import INTERNAL, INVALID_ARGUMENT, METHOD_NOT_FOUND, GatewayError
from gateway.observe import Caller
from gateway.transports._secure import Rewindable, open_connection, server_context
from gateway.transports._watchdog import WATCHDOG
from gateway.transports.base import Transport, guarded
from gateway.transports.exceptions import is_native, native_exception

__all__ = ["PyroTransport"]

log = logging.getLogger("gateway.pyro")
OBJECT_ID = "netops"
_HEADER_SIZE = struct.calcsize(Pyro5.protocol._header_format)


def configure_pyro(max_response_bytes: int, idle_timeout: float) -> None:
    """Pyro5's process-wide settings for a server of this gateway."""
    Pyro5.api.config.SERIALIZER = "serpent"
    Pyro5.api.config.SERVERTYPE = "thread"
    # Pyro5 has one size limit for both directions; it is set for the largest response
    # (a fetch_url body in base64) and requests are held to the smaller cap in _Daemon.
    Pyro5.api.config.MAX_MESSAGE_SIZE = max_response_bytes
    Pyro5.api.config.COMMTIMEOUT = idle_timeout  # frees a worker held by an idle or silent client
    Pyro5.api.config.DETAILED_TRACEBACK = False
    Pyro5.api.config.THREADPOOL_SIZE = 200
    # Only serpent may be spoken to us: the others would be accepted by default.
    for serializer_id, serializer in list(Pyro5.serializers.serializers_by_id.items()):
        if serializer.serializer_id != Pyro5.serializers.serializers["serpent"].serializer_id:
            del Pyro5.serializers.serializers_by_id[serializer_id]


def _service_class(gateway: Gateway) -> type:
    """A class with one exposed method per public name (underscore style)."""

    def method(name: str) -> Any:
        def call(self: Any, *args: Any, **kwargs: Any) -> Any:
            context = Pyro5.api.current_context
            if context.client is not None:
                WATCHDOG.disarm(context.client.sock)  # the request has been read
            caller = getattr(context.client, "netops_caller", None)
            caller = caller or Caller("pyro", _address(context.client_sock_addr))
            try:
                return guarded(
                    lambda: gateway.call(name, args, kwargs, style=UNDERSCORE, caller=caller), f"pyro {name}"
                )
            except GatewayError as exc:
                raise native_exception(exc) from None

        call.__name__ = name
        call.__doc__ = gateway.lookup(name, UNDERSCORE).summary
        return Pyro5.api.expose(call)

    namespace = {name: method(name) for name in gateway.method_names(UNDERSCORE)}
    return Pyro5.api.behavior(instance_mode="single")(type("NetOps", (), namespace))


def _address(sock_addr: Any) -> str:
    return f"{sock_addr[0]}:{sock_addr[1]}" if sock_addr else ""


class _Daemon(Pyro5.server.Daemon):
    """A daemon that caps request sizes, speaks TLS and checks tokens on the connection's own thread,
    and whose error replies carry only the stable-coded message."""

    max_request_bytes = 1024 * 1024
    gateway: Gateway | None = None
    tls: ssl.SSLContext | None = None
    handshake_timeout = 10.0
    idle_timeout = 60.0

    def _check_size(self, conn: Any) -> None:
        """Read the next message's header without consuming it; refuse one over the request cap."""
        try:
            header = conn.sock.recv(_HEADER_SIZE, socket.MSG_PEEK | socket.MSG_WAITALL)
        except OSError:
            return  # Pyro5's own read reports the failure
        if len(header) == _HEADER_SIZE:
            fields = struct.unpack(Pyro5.protocol._header_format, header)
            data_size, annotations_size = fields[6], fields[7]
            if data_size + annotations_size > self.max_request_bytes:
                log.info("closing a Pyro connection that sent a %d-byte request", data_size + annotations_size)
                if self.gateway is not None:
                    self.gateway.refused(Caller("pyro", _address(conn.sock.getpeername())), "too_large")
                raise Pyro5.errors.ConnectionClosedError("request too large")

    def _handshake(self, conn: Any, denied_reason: str | None = None) -> bool:
        if self.tls is not None:
            if denied_reason:  # called on the accept loop when every worker is busy: no TLS handshake there
                raise Pyro5.errors.ConnectionClosedError(denied_reason)
            address = _address(conn.sock.getpeername())
            try:
                tls_sock, _ = open_connection(conn.sock, self.tls, False, self.handshake_timeout)
            except (OSError, EOFError):
                if self.gateway is not None:
                    self.gateway.refused(Caller("pyro", address), "tls_handshake")
                return False  # Pyro5 closes the connection
            tls_sock.settimeout(Pyro5.api.config.COMMTIMEOUT or None)
            conn.sock = Rewindable(tls_sock)  # Pyro5 reads TLS without flags; _check_size needs to peek
        if denied_reason is None:
            WATCHDOG.arm(conn.sock, self.handshake_timeout)  # Pyro's connect message, however slow
        try:
            self._check_size(conn)
            return super()._handshake(conn, denied_reason)
        finally:
            WATCHDOG.disarm(conn.sock)

    def validateHandshake(self, conn: Any, data: Any) -> Any:
        """Note who connected and the token presented in ``proxy._pyroHandshake``; refuse the connection
        when it could be served nothing (tokens required, introspection closed, no accepted token)."""
        assert self.gateway is not None
        caller = Caller("pyro", _address(conn.sock.getpeername()))
        # A Pyro5 proxy sends "hello" unless told otherwise: that is no token, not a wrong one.
        token = None if data in (None, "hello") else data if isinstance(data, str) else ""
        caller = self.gateway.identify(caller, token)
        error = self.gateway.refusal(caller)
        if error is not None:
            self.gateway.refused(caller, "unauthenticated")
            raise native_exception(error)
        conn.netops_caller = caller
        return "hello"

    def handleRequest(self, conn: Any) -> None:
        # The next request must arrive in full within idle_timeout (COMMTIMEOUT bounds each read only);
        # the exposed method disarms the watchdog as soon as it runs.
        WATCHDOG.arm(conn.sock, self.idle_timeout)
        try:
            self._check_size(conn)
            super().handleRequest(conn)
        finally:
            WATCHDOG.disarm(conn.sock)

    def _sendExceptionResponse(
        self,
        connection: Any,
        seq: int,
        serializer_id: int,
        exc_value: BaseException,
        tbinfo: Any,
        flags: int = 0,
        annotations: Any = None,
    ) -> None:
        super()._sendExceptionResponse(connection, seq, serializer_id, _safe(exc_value), [], flags, annotations)


def _safe(exc: BaseException) -> BaseException:
    """Replace what Pyro5 itself raised (unknown method, bad message) with a coded builtin exception."""
    if is_native(exc):
        return exc
    if isinstance(exc, AttributeError):
        error = GatewayError(METHOD_NOT_FOUND, "no such method on this object")
    elif isinstance(exc, (Pyro5.errors.SerializeError, Pyro5.errors.ProtocolError, TypeError)):
        error = GatewayError(INVALID_ARGUMENT, "the request could not be decoded")
    else:
        log.error("pyro request failed", exc_info=exc)
        error = GatewayError(INTERNAL, "internal error")
    return native_exception(error)


class PyroTransport(Transport):
    """Pyro5 daemon serving the ``netops`` object."""

    name = "pyro"

    def __init__(self, gateway: Gateway, host: str, port: int) -> None:
        super().__init__(gateway, host, port)
        settings = gateway.services.settings
        configure_pyro(settings.max_body_bytes * 4 // 3 + settings.max_request_bytes, settings.idle_timeout)
        self.daemon: _Daemon | None = None
        self._stopped = threading.Event()

    @property
    def port(self) -> int:
        """The bound port."""
        assert self.daemon is not None
        return self.daemon.sock.getsockname()[1]

    @property
    def endpoint(self) -> str:
        """The Pyro URI of the service object."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"PYRO:{OBJECT_ID}@{host}:{self.port}"

    def bind(self) -> None:
        """Create the daemon (which binds) and register the service object."""
        try:
            self.daemon = _Daemon(host=self.host, port=self.requested_port)
            settings = self.gateway.services.settings
            self.daemon.max_request_bytes = settings.max_request_bytes
            self.daemon.gateway = self.gateway
            self.daemon.tls = server_context(settings)
            self.daemon.handshake_timeout = settings.handshake_timeout
            self.daemon.idle_timeout = settings.idle_timeout
        except Pyro5.errors.CommunicationError as exc:
            raise OSError(str(exc)) from None
        self.daemon.register(_service_class(self.gateway)(), OBJECT_ID)

    def _serve(self) -> None:
        assert self.daemon is not None
        self.daemon.requestLoop(lambda: not self._stopped.is_set())

    def register(self, name_server: str) -> None:
        """Register the object as ``netops`` in the Pyro5 name server at ``HOST:PORT``."""
        host, _, port = name_server.rpartition(":")
        try:
            with Pyro5.api.locate_ns(host, int(port)) as ns:
                ns.register(OBJECT_ID, self.endpoint)
        except Pyro5.errors.PyroError as exc:
            raise OSError(f"cannot register with the Pyro5 name server at {name_server}: {exc}") from None
        self._name_server = name_server

    def stop(self) -> None:
        """Shut the daemon down (leaving the name server, if registered)."""
        if getattr(self, "_name_server", ""):
            host, _, port = self._name_server.rpartition(":")
            try:
                with Pyro5.api.locate_ns(host, int(port)) as ns:
                    ns.remove(OBJECT_ID)
            except Pyro5.errors.PyroError:
                log.warning("could not remove the registration from the Pyro5 name server")
        self._stopped.set()
        if self.daemon is not None:
            self.daemon.shutdown()
