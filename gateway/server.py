"""Start the gateway: settings -> registry -> every chosen transport, until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import errno
import gc
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence

from gateway import __version__
from gateway.accesslog import AccessLog, configure_logging
from gateway.config import ConfigError, Settings, add_arguments, settings_from_args, to_toml
from gateway.context import Services
from gateway.core import Gateway
from gateway.docs import Endpoint
from gateway.eventloop import name_native_thread
from gateway.metrics import MULTIPROCESS_DIR, Metrics
from gateway.net import ConnectionLayer, Listener
from gateway.net.layer import BACKLOG
from gateway.net.session import ServingCodec
from gateway.net.tls import server_context
from gateway.observe import Observer
from gateway.ops import default_registry
from gateway.transports import codec_class
from gateway.transports._http import HTTPCodec
from gateway.transports.pyro import PyroCodec
from gateway.web import Site

__all__ = ["Running", "StartError", "main", "settle_collector"]

log = logging.getLogger("gateway")


class StartError(RuntimeError):
    """A transport could not be started; the message names it and its port."""


class Running:
    """A gateway, its transports' codecs and the connection layer, started together and stopped together."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = Metrics()
        observers: list[Observer] = [self.metrics, AccessLog()] if settings.access_log else [self.metrics]
        self.gateway = Gateway(default_registry(), Services.from_settings(settings), observers)
        # A certificate or key that cannot be loaded stops the start before any port opens.
        self.layer = ConnectionLayer(self.gateway, server_context(settings))
        self.listeners: list[Listener] = []
        self.tls = bool(settings.tls_cert)

    def start(self) -> None:
        """Bind every transport first, then serve: a busy port leaves nothing running."""
        inherited = _inherited_sockets()
        for name in self.settings.transports:
            port = getattr(self.settings, f"{name}_port")
            listener = Listener(codec_class(name)(self.gateway), self.settings.host, port)
            try:
                if name in inherited:
                    listener.adopt(inherited[name])
                else:
                    listener.bind(self.settings.reuse_port)
            except OSError as exc:
                self.stop()
                reason = "address already in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
                raise StartError(f"cannot start {name} on {self.settings.host} port {port}: {reason}") from None
            self.listeners.append(listener)
            self.layer.add(listener)
        self._attach_site()
        try:
            self.layer.start()
        except RuntimeError as exc:  # the system refused a worker thread
            self.stop()
            raise StartError(f"cannot start the worker threads: {exc}") from None
        pyro = next((listener.codec for listener in self.listeners if isinstance(listener.codec, PyroCodec)), None)
        if self.settings.pyro_ns and pyro is not None:
            try:
                pyro.register(self.settings.pyro_ns, self.endpoint("pyro"))
            except OSError as exc:
                self.stop()
                raise StartError(str(exc)) from None

    def _attach_site(self) -> None:
        ports = {listener.name: listener.port for listener in self.listeners}
        site = Site(
            self.gateway,
            self.metrics,
            self.not_ready,
            [
                Endpoint(t.name, self.endpoint(t.name), t.codec.snippet(self.settings.host, t.port, self.tls))
                for t in self.listeners
            ],
            ports.get("jsonrpc"),
        )
        for listener in self.listeners:
            if isinstance(listener.codec, HTTPCodec):
                listener.codec.site = site

    def not_ready(self) -> str:
        """Why the gateway is not ready ("" when every transport serves and the resolver answers)."""
        if not self.listeners:
            return "no transport is running"
        for listener in self.listeners:
            if not listener.serving():
                return f"{listener.name} is not serving"
        if not self.layer.serving():
            return "the connection layer is not serving"
        if not self.gateway.services.names.probe(1.0):
            return "the resolver does not answer"
        return ""

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the connection layer, every codec and the multicall pool."""
        self.layer.stop(timeout)
        for listener in self.listeners:
            try:
                listener.codec.close()
            except Exception:
                log.warning("stopping %s failed", listener.name, exc_info=True)
        self.listeners = []
        self.gateway.close()

    def port(self, name: str) -> int:
        """The port a started transport is bound to."""
        return next(listener.port for listener in self.listeners if listener.name == name)

    def endpoint(self, name: str) -> str:
        """How a client reaches transport ``name``."""
        listener = next(t for t in self.listeners if t.name == name)
        return listener.codec.endpoint(self.settings.host, listener.port, self.tls)

    def table(self) -> str:
        """The endpoint table printed at start."""
        methods = len(self.gateway.method_names())
        lines = [
            f"NetOps Gateway {__version__}: {methods} methods on {len(self.listeners)} transports",
            f"{'transport':<10} {'port':<6} endpoint",
        ]
        lines += [f"{t.name:<10} {t.port:<6} {self.endpoint(t.name)}" for t in self.listeners]
        return "\n".join(lines)


LISTEN_FDS = "NETOPS_LISTEN_FDS"  # "xmlrpc=5,jsonrpc=6": listening sockets the supervisor bound, by transport
LIFELINE_FD = "NETOPS_LIFELINE_FD"  # the read end of a pipe only the supervisor writes to: EOF, it is gone


def _inherited_sockets() -> dict[str, int]:
    """The listening sockets a supervisor handed this worker, by transport (none when run alone)."""
    pairs = (item.partition("=") for item in os.environ.get(LISTEN_FDS, "").split(",") if item)
    return {name: int(fd) for name, _, fd in pairs}


def _watch_lifeline(stop: threading.Event) -> None:
    """Stop this worker when its supervisor is gone, however it went (SIGKILL included): the pipe's only
    writer closes with the supervisor, and the read returns."""
    fd = os.environ.get(LIFELINE_FD)
    if not fd:
        return

    def watch() -> None:
        name_native_thread()
        try:
            os.read(int(fd), 1)
        except OSError:
            pass
        log.error("the supervisor is gone; stopping")
        stop.set()

    threading.Thread(target=watch, name="lifeline", daemon=True).start()


def supervise(settings: Settings) -> int:
    """Run ``settings.workers`` gateway processes on the same ports; stop them all on SIGINT/SIGTERM.

    The supervisor binds every port itself (a port 0 becomes a free port, held from then on) and hands the
    listening sockets to the workers, which accept on them in turn: no port is chosen twice, and a port
    another gateway (or a stale worker) holds stops the start. Workers stop when the supervisor is gone.
    """
    sockets: dict[str, socket.socket] = {}
    try:
        for name in settings.transports:
            port = getattr(settings, f"{name}_port")
            try:
                sockets[name] = _hold(name, settings.host, port)
            except OSError as exc:
                reason = "address already in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
                print(f"error: cannot start {name} on {settings.host} port {port}: {reason}", file=sys.stderr)
                return 1
        ports = {f"{name}_port": sock.getsockname()[1] for name, sock in sockets.items()}
        return _run_workers(settings.replace(workers=1, **ports), settings.workers, sockets)
    finally:
        for sock in sockets.values():
            sock.close()


def _hold(name: str, host: str, port: int) -> socket.socket:
    """The supervisor's socket on a transport's port: listening, for the workers to accept on; or, for a
    transport whose library binds its own (gRPC), bound but not listening, so the workers bind beside it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    if not issubclass(codec_class(name), ServingCodec):
        return socket.create_server((host, port), family=family, backlog=BACKLOG)
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def _run_workers(worker: Settings, count: int, sockets: dict[str, socket.socket]) -> int:
    lifeline, keep = os.pipe()  # the workers hold the read end; the write end lives and dies with us
    metrics_dir = tempfile.mkdtemp(prefix="netops-metrics-")
    with tempfile.NamedTemporaryFile("w", suffix=".toml", prefix="netops-worker-", delete=False) as fh:
        fh.write(to_toml(worker))
    env = {
        **os.environ,
        LISTEN_FDS: ",".join(f"{name}={sock.fileno()}" for name, sock in sockets.items()),
        LIFELINE_FD: str(lifeline),
        MULTIPROCESS_DIR: metrics_dir,
    }
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    fds = (lifeline, *(sock.fileno() for sock in sockets.values()))
    children = [
        subprocess.Popen(
            [sys.executable, "-m", "gateway", "--config", fh.name], stdout=subprocess.PIPE, text=True, env=env,
            pass_fds=fds,
        )
        for _ in range(count)
    ]  # fmt: skip
    os.close(lifeline)
    try:
        table = [children[0].stdout.readline() for _ in range(2 + len(worker.transports))]  # type: ignore[union-attr]
        if not all(table):
            return 1  # the worker printed why on standard error
        print(table[0].rstrip("\n") + f", {count} worker processes")
        print("".join(table[1:]), end="", flush=True)
        while not stop.wait(0.5):
            if any(child.poll() is not None for child in children):
                log.error("a worker process exited; stopping the others")
                return 1
        return 0
    finally:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.wait(15)
            except subprocess.TimeoutExpired:
                child.kill()
        os.close(keep)
        os.unlink(fh.name)
        shutil.rmtree(metrics_dir, ignore_errors=True)


# Python's cyclic collector runs after every 700 new container objects, a figure from when memory was small. A
# multicall of 100 mx_lookups made it run ~25 times, and walk its 300 DNS queries in flight each time, with a
# deeper pass every tenth run: ~35 ms of the ~300 ms of CPU the multicall costs. At 10,000 it runs once or twice.
# Garbage in cycles waits a little longer; everything else is still freed the moment it is dropped.
YOUNG_COLLECTION_AFTER = 10_000


def settle_collector() -> None:
    """Freeze what starting made (the collector never walks it again) and collect less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_COLLECTION_AFTER, *gc.get_threshold()[1:])


def main(argv: Sequence[str] | None = None) -> int:
    """Run the gateway until interrupted; exit status 0 on a clean stop."""
    parser = argparse.ArgumentParser(
        prog="server.py",
        description="Serve the NetOps operations over XML-RPC, JSON-RPC, Pyro5, Thrift and RPyC at once.",
    )
    add_arguments(parser)
    parser.add_argument("--print-config", action="store_true", help="print the effective settings as TOML and exit")
    args = parser.parse_args(argv)
    try:
        settings = settings_from_args(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.print_config:
        print(to_toml(settings), end="")
        return 0
    configure_logging(settings.log_format)
    if settings.workers > 1:
        return supervise(settings)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):  # before the table: a stop right after "ready" is still clean
        signal.signal(sig, lambda *_: stop.set())
    _watch_lifeline(stop)
    try:
        running = Running(settings)
    except ValueError as exc:  # an unknown operation in disable/limits, an unreadable trust store
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        running.start()
    except StartError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    settle_collector()
    print(running.table(), flush=True)
    while not stop.wait(0.5):
        if not running.layer.serving():
            # A listener, the event loop or a worker is gone: exit non-zero so the service manager restarts us.
            log.error("the gateway stopped serving (%s); exiting", running.not_ready() or "a worker thread died")
            running.stop()
            return 1
    print("stopping", flush=True)
    running.stop()
    return 0
