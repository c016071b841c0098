"""tcp_connect: is anything listening at host:port?"""

from __future__ import annotations

from typing import Annotated, TypedDict

from gateway.context import Context
from gateway.errors import CONNECTION_FAILED, FORBIDDEN_TARGET, INVALID_ARGUMENT, NOT_FOUND, TIMEOUT
from gateway.ops._net import allowed_addresses, connect_any
from gateway.registry import Range, operation

__all__ = ["tcp_connect"]


class ConnectResult(TypedDict):
    """Whether a TCP connection could be opened."""

    host: str
    port: int
    address: Annotated[str, "the address tried last (the one that answered, if any)"]
    connected: bool
    error: Annotated[str, "empty, or why not: connection refused, timeout, …"]
    elapsed_ms: float


@operation(
    errors=(INVALID_ARGUMENT, NOT_FOUND, FORBIDDEN_TARGET, TIMEOUT, CONNECTION_FAILED),
    example={"host": "example.com", "port": 443},
)
def tcp_connect(
    ctx: Context,
    host: Annotated[str, "host name or IP address"],
    port: Annotated[int, "TCP port", Range(1, 65535)],
) -> ConnectResult:
    """Open a TCP connection and close it again: refused and timed-out connections are results, not errors."""
    addresses = allowed_addresses(ctx, host)
    sock, address, error = connect_any(ctx, addresses, port)
    if sock is not None:
        sock.close()
    return {"host": host, "port": port, "address": address, "connected": sock is not None, "error": error}  # type: ignore[typeddict-item]
