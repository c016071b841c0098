"""Wire ids, pinned once published: Thrift field ids and protobuf field numbers, from ``wire_ids.json``.

A client generated from last year's IDL decodes a field by its number, not
its name, so a number must never move: not when an operation, a parameter or
a result field is added in the middle of a list, not when one is removed
(its number stays taken).  The lock file records every number ever given,
per scope: ``struct:<Name>`` (a result struct's fields), ``args:<operation>``
(an operation's parameters) and ``call`` (one per operation, in the
multicall unions).  Names it does not know yet get the next free numbers;
``python -m gateway.idl`` writes them into the lock beside the IDLs, and a
test fails if the committed lock lacks one or if any published number changed.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping
from pathlib import Path

__all__ = ["LOCK", "RESERVED", "numbers", "pending", "write"]

LOCK = Path(__file__).with_name("wire_ids.json")
# Never handed out: the multicall outcome's error field (Thrift and protobuf), and protobuf's own range.
RESERVED = frozenset({99, *range(19000, 20000)})


@functools.cache
def _lock() -> dict[str, dict[str, int]]:
    try:
        data: dict[str, dict[str, int]] = json.loads(LOCK.read_text())
    except FileNotFoundError:
        return {}
    return data


def numbers(scope: str, names: Iterable[str]) -> dict[str, int]:
    """The number of each of ``names`` in ``scope``: its pinned one, or (new) the next after every one used."""
    pinned = _lock().get(scope, {})
    taken = set(pinned.values())
    out = {}
    for name in names:
        if name in pinned:
            out[name] = pinned[name]
            continue
        number = max(taken, default=0) + 1
        while number in RESERVED:
            number += 1
        out[name] = number
        taken.add(number)
    return out


def retired(scope: str, names: Iterable[str]) -> list[int]:
    """Numbers the lock gave in ``scope`` to names that are gone: never to be used again."""
    current = set(names)
    return sorted(n for name, n in _lock().get(scope, {}).items() if name not in current)


def pending(scopes: Mapping[str, Iterable[str]]) -> dict[str, dict[str, int]]:
    """The numbers ``scopes`` need that the lock does not hold yet (empty when it is complete)."""
    missing: dict[str, dict[str, int]] = {}
    for scope, names in scopes.items():
        names = list(names)
        given = numbers(scope, names)
        new = {n: given[n] for n in names if n not in _lock().get(scope, {})}
        if new:
            missing[scope] = new
    return missing


def write(scopes: Mapping[str, Iterable[str]]) -> None:
    """Add the numbers of new names to the lock file; no existing entry is changed or dropped."""
    lock = {scope: dict(entries) for scope, entries in _lock().items()}
    for scope, new in pending(scopes).items():
        lock.setdefault(scope, {}).update(new)
    LOCK.write_text(json.dumps(lock, indent=1, sort_keys=True) + "\n")
    _lock.cache_clear()
