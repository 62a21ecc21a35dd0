"""Stores for the fault-injection tests: in-memory, and Redis / PostgreSQL when installed.

A store kind whose distribution is not installed at all (the ``core`` nox
session installs the core alone) is skipped. One that is installed but cannot
be imported or built (a backend still being written) is skipped outside CI
and fails under ``CI=true``; so does a server that is down (see tests/conftest.py).
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from sanic_cookies import Backend
from sanic_cookies.backends.memory import MemoryBackend

# core_support.py (apps, cookie helpers) lives one directory up.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fault_stores import backend_module, unavailable

#: ``await make(name)``: a fresh (backend for the app, opened reader on the same data).
StoreFactory = Callable[[str], Awaitable[tuple[Backend, Backend]]]


def _redis_store(request: pytest.FixtureRequest) -> StoreFactory:
    module = backend_module("redis")
    url = request.getfixturevalue("redis_url")
    run_id = request.getfixturevalue("run_id")
    cls = getattr(module, "RedisBackend", None)
    if cls is None:
        unavailable("sanic_cookies.backends.redis has no RedisBackend yet")

    async def make(tag: str) -> tuple[Backend, Backend]:
        prefix = f"sctest:{run_id}:faults:{tag}:"
        return cls(url, prefix=prefix), cls(url, prefix=prefix)

    return make


def _postgres_store(request: pytest.FixtureRequest) -> StoreFactory:
    module = backend_module("postgres")
    dsn = request.getfixturevalue("postgres_dsn")
    schema = request.getfixturevalue("faults_pg_schema")
    cls = getattr(module, "PostgresBackend", None)
    if cls is None:
        unavailable("sanic_cookies.backends.postgres has no PostgresBackend yet")

    async def make(tag: str) -> tuple[Backend, Backend]:
        # A fresh table per store: nothing another test or run wrote can interfere.
        options = {"schema": schema, "table": f"faults_{tag}", "create_table": True}
        return cls(dsn, **options), cls(dsn, **options)

    return make


async def _pg_admin(dsn: str, sql: str) -> None:
    import asyncpg  # only where PostgreSQL is tested: the core-only environment lacks it

    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def faults_pg_schema(postgres_dsn: str, run_id: str) -> Iterator[str]:
    """This run's schema for the fault tests, dropped (CASCADE) after the run."""
    schema = f"sctest_{run_id}_faults"

    def admin(sql: str) -> None:
        # In a thread of its own: this fixture is first asked for inside a running loop.
        with ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, _pg_admin(postgres_dsn, sql)).result()

    admin(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    try:
        yield schema
    finally:
        admin(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest_asyncio.fixture
async def stores(request: pytest.FixtureRequest) -> AsyncIterator[Callable[[str, str], Any]]:
    """``await stores(kind, name)``: a fresh store of "memory", "redis" or "postgres".

    Returns (the backend to give the app, a reader on the same data that this
    fixture opens and closes). The app opens and closes its backend with each
    ASGI request, so checks read through the reader.
    """
    readers: list[Backend] = []

    async def new(kind: str, name: str) -> tuple[Backend, Backend]:
        if kind == "memory":
            memory = MemoryBackend()
            return memory, memory
        make = {"redis": _redis_store, "postgres": _postgres_store}[kind](request)
        backend, reader = await make(name)
        await reader.open()
        readers.append(reader)
        return backend, reader

    yield new
    for reader in readers:
        await reader.close()


@pytest.fixture
def tag() -> str:
    """A short unique name for this test's keys / tables."""
    return uuid.uuid4().hex[:12]
