"""docs/configuration.md documents every setting the code reads."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import config_reference
import pytest

import sanic_cookies
from sanic_cookies import SessionConfig

PAGE = config_reference.PAGE


def test_generated_table_matches_the_code() -> None:
    page = PAGE.read_text(encoding="utf-8")
    assert config_reference.render(page) == page, (
        "docs/configuration.md is out of date: run python tests/docs/config_reference.py --write"
    )


def test_every_config_field_has_a_row() -> None:
    page = PAGE.read_text(encoding="utf-8")
    for field in dataclasses.fields(SessionConfig):
        assert f"| `SESSION_{field.name.upper()}` | `{field.name}` |" in page, field.name


def test_every_field_has_a_comment() -> None:
    comments = config_reference.field_comments()
    missing = [f.name for f in dataclasses.fields(SessionConfig) if f.name not in comments]
    assert not missing, f"SessionConfig fields without a #: comment: {missing}"


def test_a_new_field_would_be_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The check above is not vacuous: a table without a field's row fails it."""
    page = PAGE.read_text(encoding="utf-8")
    without = "\n".join(line for line in page.splitlines() if "`SESSION_LOCK_LEASE`" not in line)
    assert config_reference.render(without) != without


def _source_files() -> list[Path]:
    """Every module of the installed sanic_cookies namespace (core and backends)."""
    files: list[Path] = []
    for base in sanic_cookies.__path__:
        files += sorted(Path(base).rglob("*.py"))
    return files


def test_every_setting_named_in_the_code_is_documented() -> None:
    """Any ``SESSION_*`` / ``AUTH_SESSION_*`` key the code mentions appears on the page."""
    key = re.compile(r"\b(?:AUTH_)?SESSION_[A-Z][A-Z_]*[A-Z]\b")
    named: dict[str, str] = {}
    for path in _source_files():
        for match in key.findall(path.read_text(encoding="utf-8")):
            named.setdefault(match, path.name)
    assert "SESSION_BACKEND" in named and "SESSION_EXPIRY" in named  # the scan found the code
    page = PAGE.read_text(encoding="utf-8")
    missing = {k: where for k, where in named.items() if f"`{k}`" not in page}
    assert not missing, f"settings named in the code but not in docs/configuration.md: {missing}"
