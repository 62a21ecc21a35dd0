"""Generate the settings table of docs/configuration.md from `SessionConfig`.

Each row comes from a dataclass field: its ``SESSION_<FIELD>`` key, its default
and its ``#:`` comment in ``_config.py``. Rewrite the page after changing a
field::

    python tests/docs/config_reference.py --write

``tests/docs/test_docs_config.py`` fails while the page and the code disagree.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import sys
from pathlib import Path
from typing import Any

from sanic_cookies import SessionConfig
from sanic_cookies._auth import AUTH_DEFAULTS

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "configuration.md"
START = "<!-- generated: SessionConfig (python tests/docs/config_reference.py --write) -->"
END = "<!-- end generated -->"

_FIELD = re.compile(r"^\s{4}(\w+)\s*:")
_KEY_NOTE = re.compile(r"\s*\(``SESSION_\w+``\)")


def field_comments(cls: type[Any] = SessionConfig) -> dict[str, str]:
    """The ``#:`` comment above each field of `cls`, joined into one line."""
    comments: dict[str, str] = {}
    pending: list[str] = []
    for line in inspect.getsource(cls).splitlines():
        stripped = line.strip()
        if stripped.startswith("#:"):
            pending.append(stripped[2:].strip())
            continue
        match = _FIELD.match(line)
        if match and pending:
            comments[match[1]] = " ".join(pending)
        if stripped and not stripped.startswith("#"):
            pending = []
    return comments


def _default(field: dataclasses.Field[Any]) -> str:
    return _value(field.default)


def _value(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
        if value and value % 86400 == 0:
            return f"`{value}` ({value // 86400} days)"
        if value and value % 3600 == 0:
            return f"`{value}` ({value // 3600} hours)"
        if value and value % 60 == 0 and value >= 600:
            return f"`{value}` ({value // 60} minutes)"
    return f"`{value!r}`"


def _meaning(text: str) -> str:
    text = _KEY_NOTE.sub("", text)
    # Markdown table cells: reST-style ``x`` -> `x`, no raw pipes.
    return text.replace("``", "`").replace("|", "\\|")


def _auth_default(field: dataclasses.Field[Any]) -> str:
    if field.name == "cookie_name":
        return "the session name (`'auth_session'`)"
    if field.name in AUTH_DEFAULTS:
        return _value(AUTH_DEFAULTS[field.name])
    return "same"


def table() -> str:
    """The Markdown table: one row per `SessionConfig` field."""
    comments = field_comments()
    rows = [
        "| `Session` setting | Argument | Default | `AuthSession` default | Meaning |",
        "|---|---|---|---|---|",
    ]
    for field in dataclasses.fields(SessionConfig):
        meaning = comments.get(field.name)
        if meaning is None:
            raise ValueError(f"SessionConfig.{field.name} has no #: comment to document it")
        rows.append(
            f"| `SESSION_{field.name.upper()}` | `{field.name}` | {_default(field)} "
            f"| {_auth_default(field)} | {_meaning(meaning)} |"
        )
    return "\n".join(rows)


def render(page: str) -> str:
    """`page` with the generated section replaced by the current table."""
    if START not in page or END not in page:
        raise ValueError(f"{PAGE.name} lacks the generated-section markers")
    head, rest = page.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n\n{table()}\n\n{END}{tail}"


if __name__ == "__main__":
    current = PAGE.read_text(encoding="utf-8")
    updated = render(current)
    if "--write" in sys.argv[1:]:
        PAGE.write_text(updated, encoding="utf-8")
        print(f"wrote {PAGE.relative_to(ROOT)}")
    else:
        print(table())
