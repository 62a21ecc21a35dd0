"""A release in one process wakes the lock's waiter in another at once, without polling.

The waiter is a real Sanic worker whose polls are an hour apart (``SCT_POLL``); the
holder is this test process, on the same Redis. Only the release's pub/sub message
can let the waiter in within the test's bound. Without pub/sub, waiters still get
the lock, by polling.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from redis_procs import AppServer, app_env, session_cookie

from sanic_cookies._ids import store_key
from sanic_cookies.backends.redis import RedisBackend
from sanic_cookies.backends.redis._wakeup import Wakeups

pytestmark = [pytest.mark.redis, pytest.mark.slow]

HOUR = 3600.0


async def test_a_release_in_another_process_wakes_the_waiter(
    redis_url: str, unique_prefix: str, app_server: Callable[..., AppServer]
) -> None:
    env = app_env(redis_url, unique_prefix, SCT_POLL=str(HOUR), SCT_LOCK_TIMEOUT=str(2 * HOUR))
    server = app_server(env, workers=1)
    holder_backend = RedisBackend(redis_url, prefix=unique_prefix)
    direct = aioredis.Redis.from_url(redis_url)
    async with httpx.AsyncClient(base_url=server.base, timeout=2 * HOUR) as client:
        first = await client.get("/incr")
        assert first.json()["n"] == 1
        cookie = {"Cookie": session_cookie(first)}
        key = store_key(cookie["Cookie"].partition("=")[2])
        lock_key = f"{unique_prefix}{{{key}}}:lock"
        try:
            held = holder_backend.lock(key, timeout=5, lease=HOUR)
            stored = await held.acquire()
            assert stored is not None
            waiter = asyncio.ensure_future(client.get("/incr", headers=cookie))
            # Bounded wait for a condition: the worker's waiter has subscribed.
            deadline = time.monotonic() + 60
            while (await direct.pubsub_numsub(lock_key))[0][1] < 1:
                assert time.monotonic() < deadline, server.tail()
                assert not waiter.done(), waiter
                await asyncio.sleep(0.02)
            assert not waiter.done()
            await held.release()
            # An hour between polls: only the release's message can wake it this soon.
            response = await asyncio.wait_for(waiter, 60)
            assert response.status_code == 200, server.tail()
            assert response.json()["n"] == 2
        finally:
            await holder_backend.close()
            await direct.aclose()


async def test_without_pub_sub_a_waiter_falls_back_to_polling(
    redis_url: str, unique_prefix: str
) -> None:
    asked: list[int] = []

    def refused() -> Any:
        asked.append(1)
        raise ConnectionError("pub/sub refused")

    holder_backend = RedisBackend(redis_url, prefix=unique_prefix)
    # Another process: its own turns, and a pub/sub connection that cannot be had.
    waiter_backend = RedisBackend(redis_url, prefix=unique_prefix)
    waiter_backend._wakeups_cache = Wakeups(refused)
    scripts = waiter_backend._scripts
    original = scripts.acquire
    busy = asyncio.Event()

    async def acquire(keys: list[str], args: list[Any]) -> Any:
        reply = await original(keys, args)
        if not isinstance(reply, list):  # the lock's pttl: someone else holds it
            busy.set()
        return reply

    scripts.acquire = acquire  # type: ignore[assignment]
    key = "ab" * 32
    try:
        held = holder_backend.lock(key, timeout=5, lease=60)
        assert await held.acquire() is None
        waiting = asyncio.ensure_future(waiter_backend.lock(key, timeout=60, lease=60).acquire())
        await asyncio.wait_for(busy.wait(), 30)
        await held.save_and_release(b"v", 60)
        stored = await asyncio.wait_for(waiting, 30)
        assert stored is not None and stored.value == b"v"
        assert asked, "the waiter did try pub/sub first"
    finally:
        await holder_backend.close()
        await waiter_backend.close()
