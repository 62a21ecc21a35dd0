"""Start-up check of the sessions table: present, and ours (not 0.4's or another app's).

sanic-cookies 0.4 told users to create a table named ``sessions`` too, with other
columns; 1.0 must refuse to start on it with a message that says what to do,
instead of a raw ``UndefinedColumnError`` or a 503 on every write.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sanic_cookies import ConfigurationError

__all__ = ["EXPECTED_COLUMNS", "missing_table", "no_rights", "table_problem"]

#: Our columns and their types as `format_type` spells them.
EXPECTED_COLUMNS = {
    "key": "text",
    "data": "bytea",
    "created": "timestamp with time zone",
    "expires": "timestamp with time zone",
    "user_id": "text",
}
# The columns of the table sanic-cookies 0.4's README told users to create.
_COLUMNS_0_4 = {"created_at", "expires_at", "sid", "val"}

_FIXES = (
    'Fix: keep that table and give the sessions their own (`table="web_sessions"`, with '
    "create_table=True or the script of `python -m sanic_cookies ddl --table web_sessions`), "
    "or move it aside as docs/migrating.md shows (`ALTER TABLE {table} RENAME TO "
    "{bare}_0_4;`) and create ours with `python -m sanic_cookies ddl`."
)


def table_problem(
    label: str, table: str, columns: Sequence[tuple[Any, ...]]
) -> ConfigurationError | None:
    """The error for an existing table whose `columns` are not ours; None if they are.

    Args:
        label: The backend's label, for the message.
        table: The quoted table name.
        columns: Rows of (name, type, not null, has default), from `Queries.table_columns`.
    """
    found = {str(row[0]): str(row[1]) for row in columns}
    problems = [*_missing(found), *_mistyped(found), *_blocking(columns)]
    if not problems:
        return None
    why = "; ".join(problems)
    if set(found) >= _COLUMNS_0_4:
        why += (
            " (this is the table sanic-cookies 0.4 told you to create: "
            "created_at, expires_at, sid, val)"
        )
    bare = table.rsplit(".", 1)[-1].strip('"')
    return ConfigurationError(
        f"{label}: table {table} is not a sanic-cookies sessions table: {why}. "
        + _FIXES.format(table=table, bare=bare)
    )


def _missing(found: dict[str, str]) -> list[str]:
    """Our columns the table lacks, as one problem (or none)."""
    missing = [name for name in EXPECTED_COLUMNS if name not in found]
    return ["it has no column " + ", ".join(missing)] if missing else []


def _mistyped(found: dict[str, str]) -> list[str]:
    """Our columns the table has with another type, one problem each."""
    return [
        f"column {name} is {found[name]}, not {expected}"
        for name, expected in EXPECTED_COLUMNS.items()
        if name in found and found[name] != expected
    ]


def _blocking(columns: Sequence[tuple[Any, ...]]) -> list[str]:
    """Extra columns our INSERT cannot fill (NOT NULL, no default): every new session
    would fail."""
    blocking = [
        str(r[0]) for r in columns if str(r[0]) not in EXPECTED_COLUMNS and r[2] and not r[3]
    ]
    return [", ".join(blocking) + " NOT NULL without a default"] if blocking else []


def no_rights(label: str, table: str) -> ConfigurationError:
    """The error for a table the backend's role may not read and write."""
    return ConfigurationError(
        f"{label}: the database role may not read and write table {table}: "
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO <the role of the URL>."
    )


def missing_table(label: str, table: str) -> ConfigurationError:
    """The error for a table that does not exist (and `create_table` is off)."""
    return ConfigurationError(
        f"{label}: table {table} does not exist. Create it with the script "
        "`python -m sanic_cookies ddl` prints (add --table/--schema for another name), "
        "or pass create_table=True (`?create_table=true` in the URL) to create it at start-up, "
        "or point table= at an existing sanic-cookies sessions table."
    )
