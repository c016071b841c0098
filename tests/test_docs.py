"""The written docs: generated pages are current, links lead somewhere, the README stays a short read."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gateway.reference import DOCS, PAGES

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"\]\(([^)\s]+)\)")


@pytest.mark.parametrize("name", sorted(PAGES))
def test_generated_pages_are_current(name):
    assert (DOCS / name).read_text() == PAGES[name](), f"docs/{name} is stale: run python -m gateway.reference"


@pytest.mark.parametrize("page", [ROOT / "README.md", *sorted(DOCS.glob("*.md"))], ids=lambda p: p.name)
def test_every_relative_link_leads_to_a_file(page):
    for target in LINK.findall(page.read_text()):
        path = target.split("#", 1)[0]
        if path and not re.match(r"[a-z]+:", path):
            assert (page.parent / path).exists(), f"{page.name} links to {target}, which does not exist"


def test_the_readme_is_a_five_minute_read():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 250
