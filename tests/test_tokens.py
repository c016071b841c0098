"""The token file: its format, its mistakes, and a lookup that never keeps or shows a token."""

from __future__ import annotations

import pytest

from gateway.auth import Tokens

GOOD = "0123456789abcdef-good-token"


def test_named_and_unnamed_tokens():
    tokens = Tokens.parse(f"# comment\n\nops:{GOOD}\n  second-token-without-a-name  \n")
    assert tokens.required
    assert tokens.name_of(GOOD) == "ops"
    assert tokens.name_of("second-token-without-a-name") == "token-4"  # named after its line
    assert tokens.name_of("ops:" + GOOD) is None
    assert tokens.name_of("") is None and tokens.name_of(None) is None
    assert tokens.name_of("x" * 10_000) is None


def test_no_file_means_no_authentication():
    assert not Tokens.load("").required


def test_only_digests_are_kept():
    tokens = Tokens.parse(f"ops:{GOOD}\n")
    assert GOOD not in repr(tokens) and GOOD.encode() not in b"".join(tokens.names)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ops:short\n", "line 1: a token is 16"),
        (f"ops:{GOOD}\nops:{GOOD}x\n", "line 2: the name 'ops' appears twice"),
        (f"a:{GOOD}\nb:{GOOD}\n", "line 2: the same token appears twice"),
        (f"bad name:{GOOD}\n", "line 1: a name is"),
        ("# nothing but comments\n", "holds no token"),
        ("ops:has a space in the token\n", "line 1: a token is"),
    ],
)
def test_mistakes_name_the_line_and_never_the_token(text, message):
    with pytest.raises(ValueError, match=message) as caught:
        Tokens.parse(text)
    assert GOOD not in str(caught.value) and "short" not in str(caught.value).split(":", 1)[0]


def test_unreadable_file(tmp_path):
    with pytest.raises(ValueError, match="cannot read token file"):
        Tokens.load(str(tmp_path / "missing"))
