"""The README stays the front door (short, with the two commands CI and users run), and every relative link of the
README and docs/ points at a file that exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_readme_is_short_and_holds_the_two_commands():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 200
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    test_command = ci[ci.index("python3 -m venv"):]
    assert test_command in text  # .ci/run runs exactly the README's test command
    assert ".venv/bin/python -m zoo.fit --config configs/longva.yaml" in text


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_relative_links_resolve(page):
    broken = [target for target in LINK.findall(page.read_text())
              if not target.startswith(("http://", "https://", "#"))
              and not (page.parent / target.split("#")[0]).exists()]
    assert broken == []
