"""Waiting for a session's lock across processes, on a real server and a real Sanic worker.

This test process holds the lock of a session (lease: an hour); six requests for that
session then wait in one worker of the app. They queue inside the worker, so only one of
them holds a pool connection (the pool has four): a read of the session still finds a
connection while they wait. When this process releases, the server's lock queue wakes
the worker's waiter at once, and the six go through in turn.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import asyncpg
import httpx
import pytest
from pg_support import AppServer, wait_until
from sqlalchemy import MetaData
from test_multiprocess import _env, _start_session

from sanic_cookies._ids import store_key
from sanic_cookies.backends.postgres import sessions_table
from sanic_cookies.backends.postgres._schema import qualified_name
from sanic_cookies.backends.postgres._sql import Queries

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

HOUR = 3600.0
WAITERS = 6


async def _waiting_for(dsn: str, lock_id: int) -> int:
    """How many sessions wait (not granted) for advisory lock `lock_id` right now."""
    unsigned = lock_id & 0xFFFFFFFFFFFFFFFF
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        count: int = await conn.fetchval(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
            "AND classid = $1::bigint::oid AND objid = $2::bigint::oid AND objsubid = 1",
            unsigned >> 32,
            unsigned & 0xFFFFFFFF,
        )
    finally:
        await conn.close()
    return count


async def test_a_release_in_another_process_wakes_the_queued_waiters(
    postgres_dsn: str, pg_schema: str, make_backend: Callable[..., Any]
) -> None:
    table = "lock_wakeup"
    env = _env("asyncpg-session", postgres_dsn, pg_schema, table)
    queries = Queries(qualified_name(sessions_table(MetaData(), table, pg_schema)))
    holder_backend = make_backend("asyncpg", table=table)
    async with (
        AppServer(env, workers=1) as server,
        httpx.AsyncClient(base_url=server.url, timeout=2 * HOUR) as client,
    ):
        cookie = await _start_session(client)
        key = store_key(cookie.partition("=")[2])
        await holder_backend.open()
        try:
            held = holder_backend.lock(key, timeout=5, lease=HOUR)
            assert await held.acquire() is not None
            waiters = [
                asyncio.ensure_future(client.get("/incr", headers={"cookie": cookie}))
                for _ in range(WAITERS)
            ]

            async def queued() -> bool:
                return await _waiting_for(postgres_dsn, queries.lock_id(key)) >= 1

            assert await wait_until(queued, 60), server.output()[-3000:]
            # Five waiters queue inside the worker without a connection: a read of
            # the session gets one of the pool's four at once.
            read = await asyncio.wait_for(client.get("/read", headers={"cookie": cookie}), 60)
            assert read.status_code == 200 and read.json()["n"] == 0
            assert not any(w.done() for w in waiters)
            assert await _waiting_for(postgres_dsn, queries.lock_id(key)) == 1
            await held.release()
            responses = await asyncio.wait_for(asyncio.gather(*waiters), 60)
        finally:
            await holder_backend.close()
        assert sorted(int(r.text) for r in responses) == list(range(1, WAITERS + 1))
