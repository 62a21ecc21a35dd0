"""Round trips per request, counted on the wire (Sync and Query messages sent), on each backend.

Steady state, i.e. once a connection has prepared its statements:

=====================================  ============
request                                round trips
=====================================  ============
session untouched                      0
read-only (``await load()``)           1
new session written                    1
locked read-modify-write               2  (lock+load; save+unlock)
locked, nothing changed                2  (lock+load; unlock)
=====================================  ============

With ``lock_scope="transaction"`` a locked request takes one more: ``BEGIN`` and
the lock, then the load, then save+``COMMIT`` (or ``ROLLBACK``); see
`sanic_cookies.backends.postgres._lock`.
A connection's first use of each prepared statement adds one (Parse).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from pg_support import RoundTrips, cookie_header, served, session_app, sqlalchemy_url
from sqlalchemy import event
from sqlalchemy.ext.asyncio import create_async_engine

from sanic_cookies.backends.postgres import PostgresBackend, PostgresStore, SQLAlchemyBackend

pytestmark = pytest.mark.postgres


LOCKED = {"session": 2, "transaction": 3}


@pytest.fixture(
    params=[
        ("asyncpg", "session"),
        ("sqlalchemy", "session"),
        ("asyncpg", "transaction"),
        ("sqlalchemy", "transaction"),
    ],
    ids=lambda p: "-".join(p),
)
async def counted(
    request: pytest.FixtureRequest, postgres_dsn: str, pg_schema: str
) -> AsyncIterator[tuple[PostgresStore, RoundTrips]]:
    """A backend on a single connection whose round trips are counted."""
    counter = RoundTrips()
    kind, scope = request.param
    options: dict[str, Any] = {
        "schema": pg_schema,
        "table": f"round_trips_{kind}",
        "lock_scope": scope,
        "create_table": True,
        "sweep_interval": None,
    }
    backend: PostgresStore
    if kind == "asyncpg":
        backend = PostgresBackend(
            postgres_dsn, max_size=1, pool_options={"init": counter.init}, **options
        )
    else:
        engine = create_async_engine(sqlalchemy_url(postgres_dsn), pool_size=1, max_overflow=0)
        event.listen(
            engine.sync_engine,
            "connect",
            lambda dbapi_connection, record: counter.attach(dbapi_connection.driver_connection),
        )
        backend = SQLAlchemyBackend(engine, **options)
    try:
        yield backend, counter
    finally:
        if isinstance(backend, SQLAlchemyBackend):
            await backend.engine.dispose()


async def test_round_trips_per_request(counted: tuple[PostgresStore, RoundTrips]) -> None:
    backend, counter = counted
    app, _ = session_app(backend=backend, warn_lock=False)
    async with served(app) as client:

        async def get(path: str, cookie: str | None) -> Any:
            client.cookies.clear()
            response = await client.get(path, headers={"cookie": cookie} if cookie else {})
            assert response.status_code == 200, (path, response.text)
            return response

        # Warm up: the connection prepares each statement once.
        cookie = cookie_header(await get("/set?a=1", None))
        for path in ("/read", "/incr", "/locked-read", "/untouched"):
            await get(path, cookie)
        assert counter.attached == 1, "the round-trip counter is not on the backend's connection"

        measured: dict[str, int] = {}
        for name, path, send_cookie in [
            ("untouched", "/untouched", True),
            ("read-only", "/read", True),
            ("locked read-modify-write", "/incr", True),
            ("locked, unchanged", "/locked-read", True),
            ("new session written", "/set?b=2", False),
            ("no cookie, locked read", "/locked-read", False),
        ]:
            counter.reset()
            await get(path, cookie if send_cookie else None)
            measured[name] = counter.count
        final = (await get("/read", cookie)).json()
    print(f"\n[{type(backend).__name__}] round trips per request: {measured}")
    assert measured == {
        "untouched": 0,
        "read-only": 1,
        "locked read-modify-write": LOCKED[backend.lock_scope],
        "locked, unchanged": LOCKED[backend.lock_scope],
        "new session written": 1,
        "no cookie, locked read": 0,
    }
    assert final == {"a": "1", "n": 2}


async def test_lock_steps_each_take_one_round_trip(
    counted: tuple[PostgresStore, RoundTrips],
) -> None:
    backend, counter = counted
    await backend.open()
    try:
        key = "ab" * 32
        await backend.save(key, b"v", 60)
        for _ in range(2):  # the second pass runs on prepared statements
            counter.reset()
            lock = backend.lock(key, timeout=5, lease=5)
            await lock.acquire()
            acquired = counter.count
            counter.reset()
            assert await lock.save_and_release(b"w", 60, replace_only=True)
            saved = counter.count
            counter.reset()
            lock = backend.lock(key, timeout=5, lease=5)
            await lock.acquire()
            await lock.extend(10)
            counter.reset()
            await lock.release()
            released = counter.count
        assert (acquired, saved, released) == (LOCKED[backend.lock_scope] - 1, 1, 1)
        # The transaction scope's ROLLBACK is one simple query; the session scope's
        # unlock a prepared statement.
        assert counter.kinds.count("query") == (backend.lock_scope == "transaction")
    finally:
        await backend.close()
