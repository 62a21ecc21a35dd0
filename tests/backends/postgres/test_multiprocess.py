"""The lock across processes: a real Sanic server with several workers, on each backend.

* 400 concurrent locked increments of one session end at exactly 400; the
  same increments without the lock lose updates (so the first check can fail).
* A worker killed with SIGKILL while holding the lock: the server notices the
  dropped connection and frees the lock at once (the lease is 60 s, so nothing
  else could have freed it in time); no committed update is lost.
"""

from __future__ import annotations

import asyncio
import os
import signal
import tempfile
import time
from pathlib import Path

import asyncpg
import httpx
import pytest
from pg_support import AppServer, sqlalchemy_url, wait_until
from sqlalchemy import MetaData
from workers import client_on_several_workers

from sanic_cookies._ids import store_key
from sanic_cookies.backends.postgres import sessions_table
from sanic_cookies.backends.postgres._schema import qualified_name
from sanic_cookies.backends.postgres._sql import Queries

# One at a time under pytest-xdist (see one_fleet_at_a_time).
pytestmark = [
    pytest.mark.postgres,
    pytest.mark.slow,
    pytest.mark.usefixtures("one_fleet_at_a_time"),
]

INCREMENTS = 400
CONCURRENCY = 100  # client connections at once: enough to pile up on one lock


# Each backend with the default lock scope, and the transaction scope once: its lock code
# is the same on both backends (they differ only in where connections come from, which
# the session-scope runs cover). See sanic_cookies.backends.postgres._lock.
SETUPS = [
    ("asyncpg", "session"),
    ("sqlalchemy", "session"),
    ("asyncpg", "transaction"),
]


def _env(setup: str, dsn: str, schema: str, table: str, **extra: str) -> dict[str, str]:
    kind, _, scope = setup.partition("-")
    url = dsn if kind == "asyncpg" else sqlalchemy_url(dsn)
    return {
        "PGAPP_KIND": kind,
        "PGAPP_SCOPE": scope,
        "PGAPP_URL": url,
        "PGAPP_SCHEMA": schema,
        "PGAPP_TABLE": table,
        **extra,
    }


async def _hammer(server: AppServer, path: str, cookie: str) -> tuple[list[int], set[str]]:
    """`INCREMENTS` concurrent GETs of `path`: their statuses, and the workers that answered."""
    async with client_on_several_workers(server.url, CONCURRENCY, _worker) as client:
        responses = await asyncio.gather(
            *(client.get(path, headers={"cookie": cookie}) for _ in range(INCREMENTS))
        )
    return [r.status_code for r in responses], {_worker(r) for r in responses}


async def _hammer_on_several_workers(
    server: AppServer, path: str, cookie: str
) -> tuple[list[int], set[str]]:
    """`_hammer` once, again (same session) while only one worker answered: at most 3 times.

    Even over connections that reached several workers, one worker can answer a whole
    round on a busy machine (seen in CI); the test is about several. Every round counts:
    the session ends at INCREMENTS times the rounds.
    """
    statuses, workers = await _hammer(server, path, cookie)
    for _ in range(2):
        if len(workers) > 1:
            break
        more, more_workers = await _hammer(server, path, cookie)
        statuses, workers = statuses + more, workers | more_workers
    return statuses, workers


def _worker(response: httpx.Response) -> str:
    return response.headers.get("x-worker", "")


async def _start_session(client: httpx.AsyncClient) -> str:
    client.cookies.clear()  # a new session each time
    response = await client.get("/start")
    assert response.status_code == 200
    value = response.cookies.get("session")
    assert value
    return f"session={value}"


async def _read(client: httpx.AsyncClient, cookie: str) -> int:
    response = await client.get("/read", headers={"cookie": cookie})
    assert response.status_code == 200, response.text
    n: int = response.json()["n"]
    return n


@pytest.mark.parametrize("kind", ["-".join(setup) for setup in SETUPS])
async def test_locked_increments_across_four_workers_lose_nothing(
    kind: str, postgres_dsn: str, pg_schema: str
) -> None:
    env = _env(kind, postgres_dsn, pg_schema, f"multi_{kind.replace('-', '_')}")
    async with AppServer(env, workers=4) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            locked_cookie = await _start_session(client)
            control_cookie = await _start_session(client)

        started = time.monotonic()
        locked, pids = await _hammer_on_several_workers(server, "/incr", locked_cookie)
        locked_seconds = time.monotonic() - started
        control, _ = await _hammer(server, "/incr-unlocked", control_cookie)

        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            locked_final = await _read(client, locked_cookie)
            control_final = await _read(client, control_cookie)

    print(
        f"\n[{kind}] {INCREMENTS} locked increments in {locked_seconds:.2f}s -> {locked_final}; "
        f"unlocked control -> {control_final}; workers answering: {len(pids)}"
    )
    assert locked == [200] * len(locked), server.output()[-3000:]
    assert locked_final == len(locked)  # INCREMENTS per round
    assert control == [200] * INCREMENTS
    assert control_final < INCREMENTS, "the unlocked control lost nothing: the test proves nothing"
    assert len(pids) > 1, "only one worker answered"


async def _lock_holders(dsn: str, lock_id: int) -> int:
    """How many sessions hold advisory lock `lock_id` (a signed 64-bit id) right now."""
    unsigned = lock_id & 0xFFFFFFFFFFFFFFFF
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        held: int = await conn.fetchval(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND classid = $1::bigint::oid AND objid = $2::bigint::oid AND objsubid = 1",
            unsigned >> 32,
            unsigned & 0xFFFFFFFF,
        )
    finally:
        await conn.close()
    return held


@pytest.mark.parametrize("kind", ["-".join(setup) for setup in SETUPS])
async def test_sigkilled_lock_holder_frees_the_lock_and_loses_no_commit(
    kind: str, postgres_dsn: str, pg_schema: str
) -> None:
    freed_after, final = await kill_the_lock_holder(
        kind, postgres_dsn, postgres_dsn, pg_schema, f"kill_{kind.replace('-', '_')}"
    )
    print(f"\n[{kind}] lock freed {freed_after:.3f}s after SIGKILL (lease: 60s); n = {final}")
    assert freed_after < 10, "the lock was not freed by the dropped connection"
    # The 5 committed increments and the one after the kill; the holder's +1000 never committed.
    assert final == 6


async def kill_the_lock_holder(
    kind: str, url: str, postgres_dsn: str, pg_schema: str, table: str
) -> tuple[float, int]:
    """SIGKILL a worker inside ``async with`` (the app on `url`), after 5 increments.

    Returns:
        Seconds until the server (`postgres_dsn`) freed the lock, and the final count.
    """
    pidfile = Path(tempfile.mkdtemp(prefix="sc-pgkill-")) / "holder.pid"
    env = _env(kind, url, pg_schema, table, PGAPP_PIDFILE=str(pidfile))
    queries = Queries(qualified_name(sessions_table(MetaData(), table, pg_schema)))
    async with AppServer(env, workers=2) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            cookie = await _start_session(client)
            for _ in range(5):
                assert (await client.get("/incr", headers={"cookie": cookie})).status_code == 200
            assert await _read(client, cookie) == 5
        lock_id = queries.lock_id(store_key(cookie.partition("=")[2]))
        assert await _lock_holders(postgres_dsn, lock_id) == 0

        holder_client = httpx.AsyncClient(base_url=server.url, timeout=120)
        hold = asyncio.ensure_future(holder_client.get("/hold", headers={"cookie": cookie}))
        try:

            async def holding() -> bool:
                return pidfile.exists() and bool(pidfile.read_text())

            assert await wait_until(holding, 30), "the /hold handler never took the lock"
            assert await _lock_holders(postgres_dsn, lock_id) == 1

            os.kill(int(pidfile.read_text()), signal.SIGKILL)
            killed_at = time.monotonic()

            async def freed() -> bool:
                return await _lock_holders(postgres_dsn, lock_id) == 0

            assert await wait_until(freed, 30), "the lock was never freed"
            freed_after = time.monotonic() - killed_at
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
                response = await client.get("/incr", headers={"cookie": cookie})
                assert response.status_code == 200, server.output()[-3000:]
                final = await _read(client, cookie)
        finally:
            hold.cancel()
            await asyncio.gather(hold, return_exceptions=True)
            await holder_client.aclose()
    return freed_after, final
