"""The sessions table: one SQLAlchemy `Table` definition, and the DDL compiled from it.

Both backends use the same table, so the DDL printed for hand-managed schemas,
the one `create_table=True` runs, and the one Alembic sees through the
application's `MetaData` are the same text by construction.
"""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Index, LargeBinary, MetaData, Table, Text, func
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import CreateIndex, CreateSchema, CreateTable

__all__ = ["DEFAULT_TABLE", "ddl", "ddl_statements", "qualified_name", "sessions_table"]

#: The table name used when none is given.
DEFAULT_TABLE = "sessions"

# PostgreSQL truncates longer identifiers silently; refuse them instead.
_MAX_IDENTIFIER = 63
_DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]


def _check_identifier(kind: str, name: str) -> None:
    if not name:
        raise ValueError(f"the {kind} name must not be empty")
    if "\x00" in name:
        raise ValueError(f"the {kind} name must not contain NUL characters: {name!r}")
    if len(name.encode()) > _MAX_IDENTIFIER:
        raise ValueError(
            f"the {kind} name {name!r} is longer than PostgreSQL's {_MAX_IDENTIFIER} bytes"
        )


def sessions_table(
    metadata: MetaData, name: str = DEFAULT_TABLE, schema: str | None = None
) -> Table:
    """Define the sessions table in `metadata` (so Alembic autogenerate picks it up).

    Columns: ``key`` (text, primary key: the SHA-256 hex of the session id),
    ``data`` (bytea: the encoded record), ``created`` and ``expires``
    (timestamptz; ``expires`` indexed for the sweeper) and ``user_id`` (text,
    nullable, with a partial index over logged-in sessions for "log out
    everywhere").

    Args:
        metadata: The application's `MetaData` (or a fresh one).
        name: The table name.
        schema: The schema, or None for the connection's search path.

    Returns:
        The `Table`; pass it to `SQLAlchemyBackend(engine, table=...)`.

    Raises:
        ValueError: A name is empty or longer than PostgreSQL allows.
    """
    _check_identifier("table", name)
    if schema is not None:
        _check_identifier("schema", schema)
    user_id = Column("user_id", Text, nullable=True)
    expires = Column("expires", DateTime(timezone=True), nullable=False)
    return Table(
        name,
        metadata,
        # Collation "C": keys are hex digests; byte comparison is all the index needs.
        Column("key", Text(collation="C"), primary_key=True),
        Column("data", LargeBinary, nullable=False),
        Column("created", DateTime(timezone=True), nullable=False, server_default=func.now()),
        expires,
        user_id,
        Index(f"{name}_expires_idx", expires),
        # Most sessions are anonymous: index only the logged-in ones.
        Index(f"{name}_user_id_idx", user_id, postgresql_where=user_id.isnot(None)),
        schema=schema,
    )


def qualified_name(table: Table) -> str:
    """The table's schema-qualified, quoted name as SQL text (e.g. ``"app".sessions``)."""
    return _DIALECT.identifier_preparer.format_table(table)


def ddl_statements(table: Table) -> list[str]:
    """The statements that create `table`, its schema and its indexes if missing."""
    elements: list[CreateSchema | CreateTable | CreateIndex] = []
    if table.schema is not None:
        elements.append(CreateSchema(table.schema, if_not_exists=True))
    elements.append(CreateTable(table, if_not_exists=True))
    elements += [
        CreateIndex(index, if_not_exists=True)
        for index in sorted(table.indexes, key=lambda i: str(i.name))
    ]
    return [_tidy(str(element.compile(dialect=_DIALECT))) for element in elements]


def _tidy(sql: str) -> str:
    """SQLAlchemy's DDL text without its tabs and trailing blanks."""
    return "\n".join(line.replace("\t", "    ").rstrip() for line in sql.strip().splitlines())


def ddl(table: str = DEFAULT_TABLE, schema: str | None = None) -> str:
    """The SQL script that creates the sessions table, for schemas managed by hand.

    Every statement is idempotent (``IF NOT EXISTS``), so the script can be
    run again safely. ``python -m sanic_cookies ddl`` prints it.

    Args:
        table: The table name.
        schema: The schema (created too if missing), or None for the search path.

    Returns:
        The statements, each ending in a semicolon, one blank line apart.

    Raises:
        ValueError: A name is empty or longer than PostgreSQL allows.
    """
    statements = ddl_statements(sessions_table(MetaData(), table, schema))
    return "\n\n".join(f"{statement};" for statement in statements) + "\n"
