"""Text a server sent, made safe to show: its control characters written as escapes.

A header value, a reason phrase or a certificate's name may hold them (h11 lets any byte but NUL and
whitespace through a header; a UTF8String may hold anything). XML 1.0 cannot carry them, so an XML-RPC
answer holding one is unreadable, and a terminal that prints a result would act on an ESC. Escaped at
the source, the text is the same on every transport.
"""

from __future__ import annotations

import re
from collections.abc import Callable

__all__ = ["dn_escape", "percent_escape", "shown"]

_CONTROLS = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f]")  # C0 but the tab, DEL, C1


def _hex_escape(char: str) -> str:
    return f"\\x{ord(char):02x}"


def dn_escape(char: str) -> str:
    """RFC 4514's escape: a backslash and two hex digits for each byte of the character's UTF-8."""
    return "".join(f"\\{byte:02X}" for byte in char.encode())


def percent_escape(char: str) -> str:
    """A URL's escape: each byte of the character's UTF-8, as the rest of a URL is quoted when it is fetched."""
    return "".join(f"%{byte:02X}" for byte in char.encode())


def shown(text: str, escape: Callable[[str], str] = _hex_escape) -> str:
    """``text`` with each control character but the tab written as ``escape`` makes it (``\\x1b`` by default)."""
    return _CONTROLS.sub(lambda found: escape(found[0]), text) if _CONTROLS.search(text) else text
