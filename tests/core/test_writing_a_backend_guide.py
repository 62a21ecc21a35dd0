"""docs/writing-a-backend.md quotes the out-of-tree SQLite backend fixture verbatim, and says
what the rules say (one place for third-party packages, ConfigurationError for bad URLs)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "sanic_cookies_sqlite"


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
        "src/sanic_cookies_sqlite/__init__.py",
        "tests/conftest.py",
        "tests/test_sqlite.py",
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


def test_the_guide_and_the_readme_agree_where_third_party_packages_live() -> None:
    _guide_blocks()  # skips when the docs are not next to the tests
    readme = " ".join((GUIDE.parents[1] / "README.md").read_text().split())
    guide = " ".join(GUIDE.read_text().split())
    assert "a top-level package of its own" in readme
    assert "never under `sanic_cookies.backends`" in readme
    assert "top-level import package of its own" in guide
    assert "Do not put it under `sanic_cookies.backends`" in guide


def test_the_example_refuses_a_bad_url_as_the_rule_says() -> None:
    # The contract: ConfigurationError for a bad URL. The example's code must do it.
    source = (FIXTURE / "src/sanic_cookies_sqlite/__init__.py").read_text()
    assert "ConfigurationError" in source and "TypeError" not in source
