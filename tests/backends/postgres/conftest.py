"""Fixtures for the PostgreSQL backends: a fresh schema per run on the shared server.

Every test of this directory works inside the schema ``sctest_<RUN_ID>``
(created once, dropped with CASCADE at the end), so runs never see each
other's rows and nothing shared is dropped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import asyncpg
import pytest
from pg_support import sqlalchemy_url

from sanic_cookies.backends.postgres import PostgresBackend, PostgresStore, SQLAlchemyBackend

pytestmark = pytest.mark.postgres

BACKEND_KINDS = ("asyncpg", "sqlalchemy")


async def _admin(dsn: str, sql: str) -> None:
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def pg_schema(postgres_dsn: str, postgres_schema: str) -> Iterator[str]:
    """This run's schema, created for the session and dropped (CASCADE) after it."""
    asyncio.run(_admin(postgres_dsn, f'CREATE SCHEMA IF NOT EXISTS "{postgres_schema}"'))
    try:
        yield postgres_schema
    finally:
        asyncio.run(_admin(postgres_dsn, f'DROP SCHEMA IF EXISTS "{postgres_schema}" CASCADE'))


@pytest.fixture
def make_backend(postgres_dsn: str, pg_schema: str) -> Callable[..., PostgresStore]:
    """``make_backend(kind, table=..., **options)``: an unopened backend in this run's schema."""

    def make(kind: str, table: str = "sessions", **options: Any) -> PostgresStore:
        options = {"schema": pg_schema, "create_table": True, **options}
        if kind == "asyncpg":
            return PostgresBackend.from_url(postgres_dsn, table=table, **options)
        if kind == "sqlalchemy":
            return SQLAlchemyBackend.from_url(sqlalchemy_url(postgres_dsn), table=table, **options)
        raise ValueError(kind)

    return make
