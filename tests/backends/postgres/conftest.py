"""Fixtures for the PostgreSQL backends: a fresh schema per run on the shared server.

Every test of this directory works inside the schema ``sctest_<RUN_ID>``
(created once, dropped with CASCADE at the end), so runs never see each
other's rows and nothing shared is dropped.
"""

from __future__ import annotations

import asyncio
import fcntl
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


@pytest.fixture
def one_fleet_at_a_time(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Holds a file lock shared by this run's pytest-xdist workers for the test's length.

    Tests that run multi-worker apps (a pool per worker) use it, so that no two of
    them share the PostgreSQL server's 100 connections. The others wait their turn.
    """
    # Under xdist each worker's base temp is <run's base temp>/popen-gwN.
    path = tmp_path_factory.getbasetemp().parent / "postgres-fleet.lock"
    with path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
