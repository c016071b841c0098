"""Outbound connections for operations: check the target, then connect to exactly that address.

The address handed to ``connect`` is the one the policy approved, so a name
that resolves differently a second time (DNS rebinding) cannot redirect it.
"""

from __future__ import annotations

import errno
import socket
import time
from dataclasses import dataclass

from gateway.context import Context
from gateway.errors import CONNECTION_FAILED, NOT_FOUND, GatewayError
from gateway.policy import ip_literal

__all__ = ["Connection", "allowed_addresses", "connect_any", "open_tcp", "os_reason"]

_REASONS = {
    errno.ECONNREFUSED: "connection refused",
    errno.ECONNRESET: "connection reset",
    errno.EHOSTUNREACH: "host unreachable",
    errno.ENETUNREACH: "network unreachable",
    errno.ETIMEDOUT: "timeout",
}


def os_reason(exc: OSError) -> str:
    """A short lower-case reason for a socket error, with no paths or class names."""
    if isinstance(exc, TimeoutError):
        return "timeout"
    if exc.errno in _REASONS:
        return _REASONS[exc.errno]
    return (exc.strerror or "connection error").lower()


@dataclass
class Connection:
    """An open TCP connection and what it took to get it."""

    sock: socket.socket
    address: str
    dns_ms: float
    connect_ms: float


def allowed_addresses(ctx: Context, host: str) -> list[str]:
    """Resolve ``host`` and keep the addresses the target policy allows; refuse when none is."""
    ip = ip_literal(host)
    if ip is not None:
        candidates = [ip]
    else:
        _, found = ctx.names.wait_addresses(host, ctx.deadline)
        if not found:
            raise GatewayError(NOT_FOUND, f"{host} has no addresses")
        candidates = [ip_literal(address) for _, address in found]  # type: ignore[misc]
    allowed = [str(ip) for ip in candidates if ctx.policy.allows(ip)]
    if not allowed:
        ctx.policy.check(candidates[0], host)
    return allowed


def connect_any(ctx: Context, addresses: list[str], port: int) -> tuple[socket.socket | None, str, str]:
    """Try each address in turn until one accepts: (socket or None, address, failure reason)."""
    reason, address = "", addresses[0]
    for address in addresses:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.settimeout(ctx.deadline.remaining())
            sock.connect((address, port))
        except GatewayError:
            sock.close()
            reason = "timeout"
            break
        except OSError as exc:
            sock.close()
            reason = os_reason(exc)
            continue
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock, address, ""
    return None, address, reason


def open_tcp(ctx: Context, host: str, port: int) -> Connection:
    """Connect to an allowed address of ``host``; failures raise ``connection_failed`` or ``timeout``."""
    start = time.perf_counter()
    addresses = allowed_addresses(ctx, host)
    resolved = time.perf_counter()
    sock, address, reason = connect_any(ctx, addresses, port)
    if sock is None:
        if reason == "timeout":
            raise ctx.deadline.expired()
        raise GatewayError(CONNECTION_FAILED, f"cannot connect to {host} port {port}: {reason}")
    return Connection(sock, address, _ms(resolved - start), _ms(time.perf_counter() - resolved))


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)
