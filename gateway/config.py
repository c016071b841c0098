"""Settings: read once, from flags, then environment, then a TOML file, then defaults.

Each setting is declared once in :class:`Settings` with its flag, its
environment variable (``NETOPS_`` + upper-case name) and a parser; nothing
else in the gateway reads the environment.
"""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import os
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway.transports.table import TABLE, TRANSPORTS

__all__ = ["TRANSPORTS", "ConfigError", "Settings", "load_settings", "parse_nameserver"]


MiB = 1024 * 1024


class ConfigError(ValueError):
    """A setting has a bad value or an unknown key; the message names it."""


def parse_nameserver(text: str) -> tuple[str, int]:
    """Parse ``HOST``, ``HOST:PORT``, ``[V6]:PORT`` or a bare IPv6 address."""
    text = text.strip()
    host, port = text, 53
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"bad nameserver {text!r}")
            port = int(rest[1:])
    elif text.count(":") == 1:
        host, _, p = text.partition(":")
        port = int(p)
    ipaddress.ip_address(host)  # nameservers are addresses: naming them would need a resolver
    if not 0 < port < 65536:
        raise ValueError(f"bad port in nameserver {text!r}")
    return host, port


def _positive(kind: Callable[[str], Any]) -> Callable[[Any], Any]:
    def parse(value: Any) -> Any:
        number = kind(value)
        if number <= 0:
            raise ValueError("must be greater than 0")
        return number

    return parse


def _non_negative(kind: Callable[[str], Any]) -> Callable[[Any], Any]:
    def parse(value: Any) -> Any:
        number = kind(value)
        if number < 0:
            raise ValueError("must be 0 (no limit) or more")
        return number

    return parse


def _port(value: Any) -> int:
    number = int(value)
    if not 0 <= number < 65536:
        raise ValueError("must be a port number (0 = any free port)")
    return number


def _cidr(value: Any) -> str:
    return str(ipaddress.ip_network(str(value), strict=False))


def _nameserver(value: Any) -> str:
    parse_nameserver(str(value))
    return str(value)


def _operation_name(value: Any) -> str:
    text = str(value)
    if not text.replace("_", "").isalnum():
        raise ValueError("must be an operation name such as fetch_url")
    return text


PER_OPERATION = {"timeout": _positive(float), "max_body_bytes": _positive(int), "max_redirects": _positive(int)}


def _limit(value: Any) -> str:
    text = str(value).replace(" ", "")
    target, sep, number = text.partition("=")
    op, dot, key = target.partition(".")
    if not sep or not dot or key not in PER_OPERATION:
        raise ValueError(f"must be OPERATION.KEY=VALUE with KEY one of {', '.join(PER_OPERATION)}")
    _operation_name(op)
    PER_OPERATION[key](number)
    return text


def operation_settings(settings: Settings, operation: str) -> Settings:
    """The settings an operation runs under: the global ones with its --limit entries applied."""
    changes = {}
    for entry in settings.limits:
        target, _, number = entry.partition("=")
        op, _, key = target.partition(".")
        if op == operation:
            changes[key] = PER_OPERATION[key](number)
    return dataclasses.replace(settings, **changes) if changes else settings


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "on", "1"):
        return True
    if text in ("false", "no", "off", "0"):
        return False
    raise ValueError("must be true or false")


def _optional_address(value: Any) -> str:
    text = str(value)
    if text:
        host, sep, port = text.rpartition(":")
        if not sep or not host or not 0 < int(port) < 65536:
            raise ValueError("must be HOST:PORT")
    return text


def _origin(value: Any) -> str:
    text = str(value).rstrip("/")
    scheme, sep, rest = text.partition("://")
    if scheme not in ("http", "https") or not sep or not rest or "/" in rest:
        raise ValueError("must be an origin: http(s)://host[:port]")
    return text


def _transport(value: Any) -> str:
    if value not in TRANSPORTS:
        raise ValueError(f"must be one of {', '.join(TRANSPORTS)}")
    return str(value)


def _choice(*allowed: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        if value not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}")
        return str(value)

    return parse


def _setting(default: Any, parse: Callable[[Any], Any], help: str, *, flag: str = "", many: bool = False) -> Any:
    meta = {"parse": parse, "help": help, "flag": flag, "many": many}
    if many:
        return field(default=tuple(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class Settings:
    """Every knob of the gateway, with the reason for each default."""

    # Where to listen. Loopback by default: exposing the gateway is a decision.
    host: str = _setting("127.0.0.1", str, "address every transport listens on")
    # One port per transport (xmlrpc_port, …), from the transport table: a new transport needs no line here.
    for _row in TABLE:
        __annotations__[f"{_row.name}_port"] = "int"
        vars()[f"{_row.name}_port"] = _setting(_row.default_port, _port, f"{_row.label} port")
    del _row
    transports: tuple[str, ...] = _setting(TRANSPORTS, _transport, "transports to start", many=True)
    # Buffered binary is what a stock Apache Thrift client speaks.
    thrift_transport: str = _setting("buffered", _choice("buffered", "framed"), "Thrift transport")
    thrift_protocol: str = _setting("binary", _choice("binary", "compact"), "Thrift protocol")

    # Name resolution: unset means the system resolver (getaddrinfo, /etc/resolv.conf).
    nameservers: tuple[str, ...] = _setting(
        (), _nameserver, "DNS server HOST[:PORT] for every lookup", flag="--nameserver", many=True
    )
    ca_file: str = _setting("", str, "trust store (PEM) for tls_check and https; default: system store")
    allow_targets: tuple[str, ...] = _setting(
        (), _cidr, "CIDR network allowed besides global addresses", flag="--allow-target", many=True
    )
    # 10 s covers a slow TLS handshake on another continent plus a redirect or two.
    timeout: float = _setting(10.0, _positive(float), "seconds one operation may take in all")
    # 10 MiB: the most a caller may ask fetch_url to return; every transport carries it.
    max_body_bytes: int = _setting(10 * MiB, _positive(int), "largest max_bytes a caller may ask of fetch_url")
    # 128 MiB of bodies, each held at most twice while it is encoded and written, stays well inside the 1 GiB MemoryMax
    # of deploy/netops-gateway.service.
    max_result_bytes: int = _setting(
        128 * MiB, _non_negative(int), "bytes of fetch_url bodies held at once across callers (0: no budget)"
    )
    max_redirects: int = _setting(10, _positive(int), "redirects fetch_url follows")
    max_batch: int = _setting(1000, _positive(int), "calls in one multicall or batch")
    max_request_bytes: int = _setting(MiB, _positive(int), "bytes in one request")
    # Calls of one multicall run concurrently: its DNS lookups together on the DNS loop, its other calls (TCP, TLS,
    # HTTP) on threads, each blocked on its I/O; at most this many of each kind at once, the others waiting their
    # turn (under max_outbound, so that a long multicall takes turns rather than meet it). 128: a multicall of 100
    # runs in one wave.
    multicall_workers: int = _setting(
        128,
        _positive(int),
        "multicall elements running at once, across multicalls (threads for those that are not DNS lookups)",
    )
    # Threads that run calls: fixed, started at start, shared by every connection of every transport.
    # Calls mostly wait on the network; 64 keeps the CPU busy on two cores (a call's own fan-out runs on
    # the multicall pool).
    call_workers: int = _setting(64, _positive(int), "threads running calls, shared by every connection")
    # An idle connection costs ~2 KB and a descriptor, no thread; these caps bound what a flood can hold.
    max_connections: int = _setting(
        10_000, _positive(int), "client connections open at once (gRPC's core counts its own against the same cap)"
    )
    # Behind a proxy every client shares one address: raise this there (0 = no per-client cap).
    max_connections_per_client: int = _setting(
        256, _non_negative(int), "connections one client address may hold open at once"
    )
    # Keep-alive connections stay this long without a request, then are closed.
    idle_timeout: float = _setting(60.0, _positive(float), "seconds an idle client connection stays open")
    # Admission (0 = no limit). Off by default; SECURITY-minded deployments set them (see docs/security.md).
    rate_limit: float = _setting(0.0, _non_negative(float), "calls per second one client may make on average")
    rate_burst: int = _setting(
        0, _non_negative(int), "calls one client may make at once above the rate (default: the rate)"
    )
    max_calls_per_client: int = _setting(0, _non_negative(int), "calls of one client in flight at once")
    # Bounds the threads and sockets that callers can make the gateway hold open toward the network.
    max_outbound: int = _setting(256, _non_negative(int), "networking operations in flight across all clients")
    # Operators switch operations off (they vanish from introspection) and tighten limits per operation.
    disable: tuple[str, ...] = _setting((), _operation_name, "operation to switch off", flag="--disable", many=True)
    limits: tuple[str, ...] = _setting(
        (),
        _limit,
        "per-operation limit OP.KEY=VALUE (timeout, max_body_bytes, max_redirects)",
        flag="--limit",
        many=True,
    )
    # Who may call (see SECURITY.md). A token file turns authentication on for every transport.
    token_file: str = _setting("", str, "file of tokens, one per line: NAME:TOKEN or TOKEN (empty: no authentication)")
    open_introspection: bool = _setting(
        False, _boolean, "allow system.listMethods/methodHelp/methodSignature and rpc.discover without a token"
    )
    # TLS on every endpoint; a client CA makes every transport require a client certificate (mutual TLS).
    tls_cert: str = _setting("", str, "server certificate chain (PEM) for every endpoint (empty: no TLS)")
    tls_key: str = _setting("", str, "private key (PEM) of tls_cert")
    tls_client_ca: str = _setting("", str, "CA (PEM) client certificates must chain to (empty: none required)")
    # A TLS handshake must finish within this time; it runs on the event loop, so a client that connects
    # and says nothing holds a descriptor for this long and never blocks other clients.
    handshake_timeout: float = _setting(10.0, _positive(float), "seconds a client has to finish TLS and send its token")
    log_format: str = _setting("text", _choice("text", "json"), "log lines as readable text or one JSON object each")
    access_log: bool = _setting(True, _boolean, "one log line per call (true/false)")
    # Processes serving the same ports (SO_REUSEPORT): throughput grows with cores.
    workers: int = _setting(1, _positive(int), "gateway processes sharing the ports")
    reuse_port: bool = _setting(False, _boolean, "set SO_REUSEPORT on listening sockets (set by --workers)")
    # Register the Pyro5 object in a Pyro5 name server so clients find it as PYRONAME:netops.
    pyro_ns: str = _setting("", _optional_address, "Pyro5 name server HOST:PORT to register with (empty: none)")
    # MCP refuses a request whose Origin is another site (a page using DNS rebinding to reach this gateway
    # through a visitor's browser); this host's own address and localhost are always allowed.
    mcp_origins: tuple[str, ...] = _setting(
        (), _origin, "Origin (scheme://host[:port]) a web page may call MCP from", flag="--mcp-origin", many=True
    )

    def __post_init__(self) -> None:
        for name in ("nameservers", "allow_targets", "transports", "mcp_origins"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ConfigError("settings tls_cert and tls_key go together: set both or neither")
        if self.tls_client_ca and not self.tls_cert:
            raise ConfigError("setting tls_client_ca needs tls_cert and tls_key (mutual TLS is TLS first)")

    def replace(self, **changes: Any) -> Settings:
        """Return a copy with some settings changed (validated)."""
        return build_settings(changes, base=self)

    def nameserver_addresses(self) -> list[tuple[str, int]]:
        """The configured nameservers as (address, port) pairs."""
        return [parse_nameserver(n) for n in self.nameservers]


_FIELDS = {f.name: f for f in dataclasses.fields(Settings)}


def _parse(name: str, value: Any) -> Any:
    meta = _FIELDS[name].metadata
    try:
        if meta["many"]:
            items = value.split(",") if isinstance(value, str) else list(value)
            return tuple(meta["parse"](v.strip() if isinstance(v, str) else v) for v in items if v != "")
        return meta["parse"](value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"setting {name}: bad value {value!r} ({exc})") from None


def build_settings(values: Mapping[str, Any], base: Settings | None = None) -> Settings:
    """Validate a mapping of setting names to values into :class:`Settings`."""
    if isinstance(values.get("limits"), dict):  # TOML: [limits.fetch_url] timeout = 5
        values = {
            **values,
            "limits": [f"{op}.{k}={v}" for op, table in values["limits"].items() for k, v in table.items()],
        }
    unknown = sorted(set(values) - set(_FIELDS))
    if unknown:
        raise ConfigError(f"unknown setting {unknown[0]!r}")
    parsed = {name: _parse(name, value) for name, value in values.items()}
    return dataclasses.replace(base or Settings(), **parsed)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one flag per setting (``--config`` included) to an argument parser."""
    parser.add_argument("--config", metavar="FILE", help="TOML file of settings")
    for name, f in _FIELDS.items():
        flag = f.metadata["flag"] or "--" + name.replace("_", "-")
        if f.metadata["many"]:
            parser.add_argument(
                flag, dest=name, action="append", default=None, help=f.metadata["help"] + " (repeatable)"
            )
        else:
            parser.add_argument(flag, dest=name, default=None, help=f"{f.metadata['help']} (default {f.default})")


def settings_from_args(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> Settings:
    """Combine parsed flags, ``NETOPS_*`` environment and the TOML file, in that precedence."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    config = args.config or environ.get("NETOPS_CONFIG")
    if config:
        try:
            with open(config, "rb") as fh:
                values.update(tomllib.load(fh))
        except OSError as exc:
            raise ConfigError(f"cannot read config file {config}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {config}: {exc}") from None
        build_settings(values)  # reject the file's unknown keys and bad values before env and flags mix in
    for name in _FIELDS:
        env = environ.get("NETOPS_" + name.upper())
        if env is not None:
            values[name] = env
        flag = getattr(args, name, None)
        if flag is not None:
            values[name] = [v for item in flag for v in item.split(",")] if _FIELDS[name].metadata["many"] else flag
    return build_settings(values)


def to_toml(settings: Settings) -> str:
    """The settings as a TOML file that load_settings reads back to the same values."""

    def literal(value: Any) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (int, float)):
            return repr(value)
        if isinstance(value, tuple):
            return "[" + ", ".join(literal(v) for v in value) + "]"
        return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'

    return "".join(f"{name} = {literal(getattr(settings, name))}\n" for name in _FIELDS)


def load_settings(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Parse command-line flags (and environment, and file) into :class:`Settings`."""
    parser = argparse.ArgumentParser(add_help=False)
    add_arguments(parser)
    return settings_from_args(parser.parse_args(argv or []), environ)
