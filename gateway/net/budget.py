"""Work budgets for decoders that build objects from text: count first, decode only what fits.

A size cap alone does not bound a decoder's work: a megabyte of ``[0,0,0,…]``
handed to ``ast.literal_eval`` (what serpent and our RPyC argument copy use)
builds half a million AST nodes, ~460 MiB.  :func:`literal_items` counts an
upper bound of the values a Python literal holds in C-speed passes (strings
removed, then separators and brackets counted), so a text over budget is
refused before anything is built.
"""

from __future__ import annotations

import re

__all__ = [
    "MAX_DEPTH", "MAX_ITEMS", "PARSE_ITEMS", "json_within_budget", "literal_items", "nested_within", "within_budget"
]  # fmt: skip

MAX_ITEMS = 10_000  # values in one request: a full multicall (max_batch elements of a few values) fits
# What a JSON body may claim before it is parsed at all: json's C parser is fast, so the exact budget is
# checked on what it built (and a refusal can name the request's id), but a megabyte of [{},{},…] would
# first build 20 MiB of objects; counted first, such a body is refused unparsed.
PARSE_ITEMS = 8 * MAX_ITEMS
MAX_DEPTH = 32  # lists and dicts nested in one request; a multicall element's arguments sit at depth 4

_STRINGS = re.compile(rb"""'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*\"""", re.DOTALL)
_SMALL = 4096  # a literal this short cannot hold enough values to matter: not counted


def literal_items(text: bytes) -> int:
    """An upper bound of the values (and containers) in a Python or JSON literal."""
    bare = _STRINGS.sub(b"''", text)
    return 1 + sum(bare.count(c) for c in (b",", b":", b"[", b"{", b"("))


def nested_within(value: object, depth: int = MAX_DEPTH, items: int = MAX_ITEMS) -> bool:
    """True when decoded lists and dicts hold at most ``items`` values, ``depth`` deep (walked without
    recursion; it stops at the first value over either bound)."""
    stack = [(value, 0)]
    while stack:
        item, level = stack.pop()
        items -= 1
        if items < 0:
            return False
        if isinstance(item, (list, dict)):
            if level >= depth:
                return False
            children = item.values() if isinstance(item, dict) else item
            if len(children) > items:
                return False
            stack.extend((child, level + 1) for child in children)
    return True


def json_within_budget(text: bytes, limit: int = PARSE_ITEMS) -> bool:
    """True when a JSON text claims at most ``limit`` values by its separators (``,`` and ``:`` outside
    strings). Brackets are not counted: nesting alone builds nothing big, and json stops a deep one itself
    (a parse error, as JSON-RPC expects)."""
    if len(text) <= _SMALL:
        return True
    bare = _STRINGS.sub(b"''", text)
    return bare.count(b",") + bare.count(b":") < limit


def within_budget(text: bytes, limit: int = MAX_ITEMS) -> bool:
    """True when ``text`` holds at most ``limit`` values (short texts always do)."""
    return len(text) <= _SMALL or literal_items(text) <= limit
