"""Long strings of an answer kept out of the library's encoder, and put back as parts of its bytes.

thriftpy2, serpent (Pyro5) and brine (RPyC) encode a result into one buffer:
a 10 MiB ``fetch_url`` body is encoded, copied into the buffer, joined, and
copied again with the message header, so one call in flight held three to
four times its body.  Here each string over :data:`LONG` is first replaced by
a short marker (a per-answer secret, so a server cannot forge one), the
library encodes the small rest as usual, and the marker's bytes are then
replaced by the string's own encoding as separate parts of the answer, which
the connection layer writes one after the other.  The answer costs its body
once more, as its encoded bytes, and its bytes on the wire are exactly the
library's (each codec's test compares them).
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from gateway.net.session import Deferred

__all__ = ["CHUNK", "LONG", "MARKER_LENGTH", "LongStrings", "holds_long", "pieces", "prefixed", "utf8", "varint"]

CHUNK = 256 * 1024  # a long string is encoded this much at a time
LONG = 64 * 1024  # shorter strings are left to the library: a part of their own would cost more than it saves


class LongStrings:
    """The long strings taken out of one answer, and the markers standing in for them."""

    def __init__(self) -> None:
        self.strings: list[str] = []
        self._key = ""  # made with the first marker: most answers have no long string

    @property
    def key(self) -> str:
        """This answer's secret, part of each of its markers."""
        if not self._key:
            self._key = secrets.token_hex(8)
        return self._key

    def take(self, value: Any) -> Any:
        """``value`` with each long string replaced by a marker (the dicts, lists and tuples holding one are
        rebuilt); ``value`` itself when it holds none, as nearly every answer."""
        return self._take(value) if holds_long(value) else value

    def _take(self, value: Any) -> Any:
        kind = type(value)
        if kind is str:
            if len(value) < LONG:
                return value
            self.strings.append(value)
            return self.marker(len(self.strings) - 1)
        if kind is dict:
            return {k: self._take(v) for k, v in value.items()}
        if kind is list or kind is tuple:
            return kind(self._take(v) for v in value)
        return value

    def marker(self, index: int) -> str:
        """The text standing in for string ``index``: plain ASCII that no encoder escapes, of fixed length."""
        return f"netops-{self.key}-{index:06d}"

    def splice(
        self, encoded: bytes, before: bytes, after: bytes, form: Callable[[str], Deferred]
    ) -> list[bytes | Deferred]:
        """The bytes of ``encoded``, in parts, with each marker as the codec encodes it (its text between
        ``before`` and ``after``: a length prefix, quotes) replaced by ``form(string)``, made as it is written."""
        found = []
        for index, string in enumerate(self.strings):
            text = before + self.marker(index).encode() + after
            at = encoded.find(text)
            if at < 0:
                continue  # a value the codec does not encode (a key its struct does not declare)
            if encoded.find(text, at + 1) >= 0:
                raise ValueError("an answer's marker is repeated")
            found.append((at, len(text), string))
        parts: list[bytes | Deferred] = []
        done = 0
        for at, size, string in sorted(found, key=lambda item: item[0]):
            if at > done:
                parts.append(encoded[done:at])
            parts.append(form(string))
            done = at + size
        if done < len(encoded):
            parts.append(encoded[done:])
        return parts


def holds_long(value: Any) -> bool:
    """Whether ``value`` holds a string of LONG characters or more (asked of every answer before anything is
    made for its long strings)."""
    kind = type(value)
    if kind is str:
        return len(value) >= LONG
    if kind is dict:
        items: Iterable[Any] = value.values()
    elif kind is list or kind is tuple:
        if value and type(value[0]) is str:  # (not an exception to catch for every boxed RPyC answer)
            try:  # strings only, short together (names, addresses): one join at C speed, not a loop of Python
                if len("".join(value)) < LONG:
                    return False
            except TypeError:  # an item that is not a string: join stops there, before copying anything
                pass
        items = value
    else:
        return False
    for item in items:  # a loop, not any() over a generator: this runs on every answer
        inner = type(item)
        if inner is str:
            if len(item) >= LONG:
                return True
        elif (inner is dict or inner is list or inner is tuple) and holds_long(item):
            return True
    return False


def utf8(text: str) -> Deferred:
    """``text`` in UTF-8, made a chunk at a time (never all of it at once)."""
    size = len(text) if text.isascii() else sum(len(piece.encode()) for piece in pieces(text))
    return Deferred(size, (piece.encode() for piece in pieces(text)))


def varint(size: int) -> bytes:
    """``size`` as an unsigned LEB128 varint (Thrift's compact protocol, protobuf)."""
    out = bytearray()
    while size > 0x7F:
        out.append(size & 0x7F | 0x80)
        size >>= 7
    out.append(size)
    return bytes(out)


def prefixed(prefix: bytes, rest: Deferred) -> Deferred:
    """``rest`` with ``prefix`` (a length, a tag) before it."""
    return Deferred(len(prefix) + rest.size, itertools.chain((prefix,), rest.parts))


def pieces(text: str) -> Iterator[str]:
    """``text`` a chunk of :data:`CHUNK` characters at a time."""
    return (text[at : at + CHUNK] for at in range(0, len(text), CHUNK))


MARKER_LENGTH = len(LongStrings().marker(0))
