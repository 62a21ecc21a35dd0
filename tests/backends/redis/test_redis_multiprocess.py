"""The distributed lock across real processes: a 4-worker Sanic server on the Redis backend."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis
from redis_procs import AppServer, app_env, session_cookie
from workers import client_on_several_workers

from sanic_cookies._ids import store_key

pytestmark = [pytest.mark.redis, pytest.mark.slow]

TOTAL = 400
CONCURRENCY = 50


async def hammer(base: str, total: int = TOTAL) -> tuple[int, Counter[int], set[int]]:
    """`total` increments of one session, `CONCURRENCY` at a time.

    Returns:
        (the counter read back at the end, response statuses, worker pids that answered)
    """
    async with client_on_several_workers(
        base, CONCURRENCY, lambda reply: reply.json()["pid"], path="/read", request_timeout=120
    ) as client:
        first = await client.get("/incr")
        assert first.status_code == 200 and first.json()["n"] == 1
        cookie = {"Cookie": session_cookie(first)}
        statuses: Counter[int] = Counter({200: 1})
        pids = {first.json()["pid"]}
        gate = asyncio.Semaphore(CONCURRENCY)

        async def one() -> None:
            async with gate:
                response = await client.get("/incr", headers=cookie)
            statuses[response.status_code] += 1
            if response.status_code == 200:
                pids.add(response.json()["pid"])

        await asyncio.gather(*(one() for _ in range(total - 1)))
        final = await client.get("/read", headers=cookie)
        assert final.status_code == 200
        return final.json()["n"], statuses, pids


async def test_locked_increments_across_4_workers_lose_nothing(
    redis_url: str, unique_prefix: str, app_server: Callable[..., AppServer]
) -> None:
    server = app_server(app_env(redis_url, unique_prefix, SCT_LOCK="1"), workers=4)
    # One session, served by several processes: it lives in Redis, not in a worker. On a
    # busy machine one worker can answer a whole round: then a new session, at most 3 times.
    for _ in range(3):
        final, statuses, pids = await hammer(server.base)
        print(f"locked: {TOTAL} increments -> {final}; statuses {dict(statuses)}; {len(pids)}")
        assert statuses == {200: TOTAL}, server.tail()
        assert final == TOTAL
        if len(pids) >= 2:
            break
    assert len(pids) >= 2


async def test_without_the_lock_the_same_load_loses_updates(
    redis_url: str, unique_prefix: str, app_server: Callable[..., AppServer]
) -> None:
    """The control group: same app, same load, lock disabled. Proves the test above can fail."""
    server = app_server(app_env(redis_url, unique_prefix, SCT_LOCK="0"), workers=4)
    final, statuses, _ = await hammer(server.base)
    print(f"no lock: {TOTAL} increments -> {final}; statuses {dict(statuses)}")
    assert statuses == {200: TOTAL}, server.tail()
    assert final < TOTAL


async def test_a_holder_killed_with_sigkill_frees_the_session_after_the_lease(
    redis_url: str, unique_prefix: str, app_server: Callable[..., AppServer], tmp_path: Path
) -> None:
    lease = 2.0
    signal_file = tmp_path / "holding"
    server = app_server(
        app_env(
            redis_url,
            unique_prefix,
            SCT_LEASE=str(lease),
            SCT_LOCK_TIMEOUT="20",
            SCT_SIGNAL=str(signal_file),
        ),
        workers=4,
    )
    async with httpx.AsyncClient(base_url=server.base, timeout=60) as client:
        first = await client.get("/incr")
        cookie = {"Cookie": session_cookie(first)}
        for expected in range(2, 6):  # five committed updates
            assert (await client.get("/incr", headers=cookie)).json()["n"] == expected

        holder = asyncio.ensure_future(client.get("/hold", headers=cookie))
        deadline = time.monotonic() + 30
        while not signal_file.exists() or not signal_file.read_text():
            assert time.monotonic() < deadline, server.tail()
            assert not holder.done(), holder
            await asyncio.sleep(0.02)
        pid = int(signal_file.read_text())

        # The worker holds the lock in Redis (a lease, no release) when it dies.
        sid = cookie["Cookie"].partition("=")[2]
        lock_key = f"{unique_prefix}{{{store_key(sid)}}}:lock"
        direct = aioredis.Redis.from_url(redis_url)
        try:
            assert await direct.pttl(lock_key) > 0
            os.kill(pid, signal.SIGKILL)
            killed_at = time.monotonic()
            with pytest.raises(httpx.HTTPError):
                await holder  # its connection dies with it

            # Another worker takes the session as soon as the lease ends.
            after = await client.get("/incr", headers=cookie)
            waited = time.monotonic() - killed_at
            assert after.status_code == 200, server.tail()
            assert after.json()["pid"] != pid
            # Nothing committed before the kill is lost; the dead holder's change never landed.
            assert after.json()["n"] == 6
            assert (await client.get("/read", headers=cookie)).json()["n"] == 6
            assert await direct.exists(lock_key) == 0
        finally:
            await direct.aclose()
    print(f"SIGKILL: next request served {waited:.2f}s after the kill (lease {lease}s)")
    # It did wait for the lease, not for the 20 s lock timeout.
    assert waited < 20
