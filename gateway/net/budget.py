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

__all__ = ["MAX_ITEMS", "literal_items", "within_budget"]

MAX_ITEMS = 10_000  # values in one request: a full multicall (max_batch elements of a few values) fits

_STRINGS = re.compile(rb"""'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*\"""", re.DOTALL)
_SMALL = 4096  # a literal this short cannot hold enough values to matter: not counted


def literal_items(text: bytes) -> int:
    """An upper bound of the values (and containers) in a Python or JSON literal."""
    bare = _STRINGS.sub(b"''", text)
    return 1 + sum(bare.count(c) for c in (b",", b":", b"[", b"{", b"("))


def within_budget(text: bytes, limit: int = MAX_ITEMS) -> bool:
    """True when ``text`` holds at most ``limit`` values (short texts always do)."""
    return len(text) <= _SMALL or literal_items(text) <= limit
