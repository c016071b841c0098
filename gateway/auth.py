"""Who may call: the tokens of ``--token-file`` and the rule every transport applies through the core.

The file holds one token per line, ``NAME:TOKEN`` or just ``TOKEN`` (named
``token-LINE``); blank lines and ``#`` comments are skipped.  Only SHA-256
digests are kept in memory, and a presented token is looked up by its digest,
so the comparison takes the same time whatever the token and the tokens
themselves never reach a log, a metric or an error.  A caller is then known
by the token's name, never by the token.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["MIN_TOKEN_LENGTH", "Tokens"]

MIN_TOKEN_LENGTH = 16  # shorter tokens can be guessed by anyone allowed enough calls (secrets.token_urlsafe() gives 43)
MAX_TOKEN_LENGTH = 256  # a token line longer than this is refused before it is hashed


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


@dataclass(frozen=True)
class Tokens:
    """The accepted tokens, by digest; an empty set means authentication is off."""

    names: Mapping[bytes, str] = field(default_factory=dict)

    @property
    def required(self) -> bool:
        """True when callers must present a token."""
        return bool(self.names)

    def name_of(self, token: str | None) -> str | None:
        """The name of ``token`` if it is accepted, else None."""
        if not token or len(token) > MAX_TOKEN_LENGTH:
            return None
        return self.names.get(_digest(token))

    @classmethod
    def parse(cls, text: str, source: str = "token file") -> Tokens:
        """Read tokens from the text of a token file; ValueError names the bad line (never the token)."""
        names: dict[bytes, str] = {}
        for number, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            name, sep, token = line.rpartition(":")
            name = name.strip() if sep else f"token-{number}"
            token = token.strip()
            if not name or not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
                raise ValueError(f"{source} line {number}: a name is letters, digits, '-', '_' or '.'")
            if not MIN_TOKEN_LENGTH <= len(token) <= MAX_TOKEN_LENGTH or not token.isprintable() or " " in token:
                raise ValueError(
                    f"{source} line {number}: a token is {MIN_TOKEN_LENGTH} to {MAX_TOKEN_LENGTH} printable "
                    "characters without spaces (python -c 'import secrets; print(secrets.token_urlsafe())')"
                )
            if _digest(token) in names:
                raise ValueError(f"{source} line {number}: the same token appears twice")
            if name in names.values():
                raise ValueError(f"{source} line {number}: the name {name!r} appears twice")
            names[_digest(token)] = name
        if not names:
            raise ValueError(f"{source} holds no token: authentication would refuse everyone")
        return cls(names)

    @classmethod
    def load(cls, path: str) -> Tokens:
        """Read the token file at ``path``; an empty path means authentication is off."""
        if not path:
            return cls()
        try:
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"cannot read token file {path}: {getattr(exc, 'strerror', None) or exc}") from None
        return cls.parse(text, f"token file {path}")
