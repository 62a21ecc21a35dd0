"""Start-up refuses a sessions table that is missing (without create_table) or not ours.

sanic-cookies 0.4's README told users to create ``sessions (created_at, expires_at, sid,
val)``; 1.0 uses the same default name. On such a table, or a missing one, the server
must not start, with a `ConfigurationError` that names the table, what is wrong and
the fixes. Against the real server, both backends.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import pytest
from pg_support import cookie_header, free_port, served, session_app

from sanic_cookies import ConfigurationError
from sanic_cookies.backends.postgres import PostgresStore

pytestmark = pytest.mark.postgres

KINDS = ["asyncpg", "sqlalchemy"]

# The DDL of sanic-cookies 0.4's README ("Gino-AsyncPG (Postgres 9.5+)", step i).
TABLE_0_4 = """
CREATE TABLE IF NOT EXISTS {table}
(
    created_at timestamp without time zone NOT NULL,
    expires_at timestamp without time zone,
    sid character varying,
    val character varying,
    CONSTRAINT {name}_pkey PRIMARY KEY (sid)
)
"""


@asynccontextmanager
async def _connect(dsn: str) -> AsyncIterator[asyncpg.Connection[Any]]:
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        yield conn
    finally:
        await conn.close()


async def _start_fails(app: Any) -> BaseException:
    """Start `app` as a server; return what its start-up raised (it must raise)."""
    server = await app.create_server(
        host="127.0.0.1", port=free_port(), return_asyncio_server=True, access_log=False
    )
    try:
        await server.startup()
        with pytest.raises(ConfigurationError) as raised:
            await server.before_start()
        return raised.value
    finally:
        closing = server.close()
        if closing is not None:
            await closing
        await server.after_stop()


def _name() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("create_table", [False, True])
async def test_the_0_4_table_fails_start_up_with_the_fixes(
    kind: str,
    create_table: bool,
    make_backend: Callable[..., PostgresStore],
    postgres_dsn: str,
    pg_schema: str,
) -> None:
    name = _name()
    async with _connect(postgres_dsn) as conn:
        await conn.execute(TABLE_0_4.format(table=f'"{pg_schema}".{name}', name=name))
        await conn.execute(
            f'INSERT INTO "{pg_schema}".{name} VALUES (now(), now(), $1, $2)', "old", "{}"
        )
    app, _ = session_app(backend=make_backend(kind, table=name, create_table=create_table))
    error = await _start_fails(app)
    message = str(error)
    assert f"{pg_schema}.{name}" in message  # the table
    assert "no column key, data, created, expires, user_id" in message  # what is wrong
    assert "sanic-cookies 0.4" in message
    assert "python -m sanic_cookies ddl" in message  # the fixes
    assert 'table="web_sessions"' in message
    assert "docs/migrating.md" in message
    async with _connect(postgres_dsn) as conn:  # nothing was touched
        assert await conn.fetchval(f'SELECT val FROM "{pg_schema}".{name}') == "{}"


@pytest.mark.parametrize("kind", KINDS)
async def test_a_missing_table_without_create_table_fails_start_up(
    kind: str, make_backend: Callable[..., PostgresStore], pg_schema: str
) -> None:
    name = _name()
    app, _ = session_app(backend=make_backend(kind, table=name, create_table=False))
    message = str(await _start_fails(app))
    assert f"{pg_schema}.{name} does not exist" in message
    assert "python -m sanic_cookies ddl" in message
    assert "create_table=True" in message


@pytest.mark.parametrize("kind", KINDS)
async def test_a_table_with_a_wrong_column_type_fails_start_up(
    kind: str, make_backend: Callable[..., PostgresStore], postgres_dsn: str, pg_schema: str
) -> None:
    name = _name()
    async with _connect(postgres_dsn) as conn:
        await conn.execute(
            f'CREATE TABLE "{pg_schema}".{name} (key text PRIMARY KEY, data text NOT NULL, '
            "created timestamptz NOT NULL DEFAULT now(), expires timestamp NOT NULL, "
            "user_id text, tenant int NOT NULL)"
        )
    app, _ = session_app(backend=make_backend(kind, table=name, create_table=True))
    message = str(await _start_fails(app))
    assert "column data is text, not bytea" in message
    assert "column expires is timestamp without time zone, not timestamp with time zone" in message
    assert "tenant NOT NULL without a default" in message
    assert "0.4" not in message


@pytest.mark.parametrize("kind", KINDS)
async def test_our_table_and_a_created_one_start(
    kind: str, make_backend: Callable[..., PostgresStore], postgres_dsn: str, pg_schema: str
) -> None:
    name = _name()
    app, _ = session_app(backend=make_backend(kind, table=name, create_table=True), secure=False)
    async with served(app) as client:  # created at start-up
        first = await client.get("/incr")
        assert first.json() == {"n": 1}
    # Made by hand (`python -m sanic_cookies ddl`), with a column of the app's own that has a
    # default, and started without create_table: accepted.
    async with _connect(postgres_dsn) as conn:
        await conn.execute(
            f"ALTER TABLE \"{pg_schema}\".{name} ADD COLUMN note text NOT NULL DEFAULT ''"
        )
    app, _ = session_app(backend=make_backend(kind, table=name, create_table=False), secure=False)
    async with served(app) as client:
        again = await client.get("/incr", headers={"cookie": cookie_header(first)})
        assert again.json() == {"n": 2}
