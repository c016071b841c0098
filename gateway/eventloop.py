"""The event loop the gateway runs its I/O on: libuv's where it builds, asyncio's own elsewhere."""

from __future__ import annotations

try:  # libuv's loop: a call's trip through the loop counts ~7K instructions on it, ~27K on asyncio's own
    from uvloop import new_event_loop
except ImportError:  # a platform uvloop does not build on
    from asyncio import new_event_loop  # type: ignore[assignment]

__all__ = ["new_event_loop"]
