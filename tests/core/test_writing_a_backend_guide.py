"""docs/writing-a-backend.md quotes the out-of-tree backend fixture verbatim."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "sanic_cookies_dictstore"


GUIDE = FIXTURE.parents[2] / "docs" / "writing-a-backend.md"
_FENCE = re.compile(r"^( *)```(\w*)\n(.*?)^\1```$", re.M | re.S)


def _guide_blocks() -> list[tuple[str, str]]:
    if not GUIDE.is_file():  # tests/ copied alone (the wheels session): nothing to compare
        pytest.skip(f"{GUIDE} is not next to these tests")
    blocks = []
    for match in _FENCE.finditer(GUIDE.read_text()):
        indent, lang, body = match.groups()
        lines = [line.removeprefix(indent) for line in body.splitlines()]
        blocks.append((lang, "\n".join(lines).strip()))
    return blocks


@pytest.mark.parametrize(
    "path",
    [
        "src/sanic_cookies_dictstore/__init__.py",
        "tests/conftest.py",
        "tests/test_dictstore.py",
    ],
)
def test_the_guide_quotes_the_fixture_verbatim(path: str) -> None:
    source = (FIXTURE / path).read_text().strip()
    assert ("python", source) in _guide_blocks(), f"docs/writing-a-backend.md misquotes {path}"


def test_the_guides_pyproject_lines_are_the_fixtures() -> None:
    (toml,) = (body for lang, body in _guide_blocks() if lang == "toml")
    pyproject = (FIXTURE / "pyproject.toml").read_text().splitlines()
    for line in toml.splitlines():
        assert line in pyproject, f"not in the fixture's pyproject.toml: {line!r}"
