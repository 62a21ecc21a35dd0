"""Redis commands per request, counted with MONITOR on a private redis-server.

Every backend operation is one EVALSHA, and a request awaits each reply before
it sends its next command (auto-pipelining only shares writes between
concurrent requests), so a request's top-level commands are its round trips.
Commands run inside scripts show up in MONITOR as ``lua`` and are not round
trips; they are excluded. ``INFO commandstats``
(EVALSHA calls) cross-checks the count.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from redis_procs import AppServer, RedisServer, app_env, session_cookie

pytestmark = [pytest.mark.redis, pytest.mark.slow]


class CommandCounter:
    """Top-level commands the server received during an action, by MONITOR."""

    def __init__(self, port: int) -> None:
        self.port = port

    async def evalsha_calls(self) -> int:
        async with aioredis.Redis(port=self.port) as probe:
            stats = await probe.info("commandstats")
        return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))

    async def during(self, action: Callable[[], Awaitable[Any]]) -> list[str]:
        marker = uuid.uuid4().hex
        seen: list[dict[str, Any]] = []
        ended = asyncio.Event()
        async with (
            aioredis.Redis(port=self.port) as probe,
            aioredis.Redis(port=self.port) as watcher,
            watcher.monitor() as monitor,
        ):

            async def collect() -> None:
                async for info in monitor.listen():
                    seen.append(dict(info))
                    if info["command"] == f"ECHO end-{marker}":
                        ended.set()
                        return

            collector = asyncio.ensure_future(collect())
            await probe.echo(f"start-{marker}")
            await action()
            await probe.echo(f"end-{marker}")
            await asyncio.wait_for(ended.wait(), 10)
            await collector
        start = next(i for i, c in enumerate(seen) if c["command"] == f"ECHO start-{marker}")
        return [c["command"] for c in seen[start + 1 : -1] if c["client_type"] != "lua"]


async def test_commands_per_request(
    own_redis: Callable[..., RedisServer],
    app_server: Callable[..., AppServer],
    unique_prefix: str,
) -> None:
    redis_server = own_redis("--save", "", "--appendonly", "no")
    server = app_server(app_env(redis_server.url, unique_prefix), workers=2)
    counter = CommandCounter(redis_server.port)
    results: dict[str, list[str]] = {}
    async with httpx.AsyncClient(base_url=server.base, timeout=30) as client:
        created = await client.get("/incr")
        client.cookies.clear()
        cookie = {"Cookie": session_cookie(created)}
        for _ in range(4):  # each worker connected and loaded the scripts at start-up
            assert (await client.get("/incr", headers=cookie)).status_code == 200
            assert (await client.get("/read", headers=cookie)).status_code == 200

        async def get(path: str, headers: dict[str, str] | None = None) -> httpx.Response:
            client.cookies.clear()  # only the Cookie header given here is sent
            response = await client.get(path, headers=headers)
            assert response.status_code == 200
            return response

        async def measure(
            name: str, path: str, headers: dict[str, str] | None = None
        ) -> httpx.Response:
            responses: list[httpx.Response] = []

            async def request() -> None:
                responses.append(await get(path, headers))

            before = await counter.evalsha_calls()
            commands = await counter.during(request)
            after = await counter.evalsha_calls()
            # The cross-check: every command counted was an EVALSHA (one script, one trip).
            assert after - before == len(commands), (name, commands)
            results[name] = commands
            return responses[0]

        await measure("untouched", "/plain", cookie)
        await measure("read-only", "/read", cookie)
        await measure("locked read-modify-write", "/incr", cookie)
        await measure("new session (no cookie)", "/incr")

        login = await get("/login?user=alice", cookie)
        user_cookie = {"Cookie": session_cookie(login)}
        await get("/incr", user_cookie)
        await measure("locked read-modify-write, logged in", "/incr", user_cookie)
        await measure("read-only, logged in", "/read", user_cookie)
        other = {"Cookie": session_cookie(await get("/incr"))}
        bob = await measure("login", "/login?user=bob", other)
        bob_cookie = {"Cookie": session_cookie(bob)}
        await measure("login as another user", "/login?user=carol", bob_cookie)

    for name, commands in results.items():
        print(f"{name}: {len(commands)} round trips")
    assert len(results["untouched"]) == 0
    assert len(results["read-only"]) == 1
    assert len(results["locked read-modify-write"]) == 2
    assert len(results["new session (no cookie)"]) == 1
    assert len(results["locked read-modify-write, logged in"]) == 2
    assert len(results["read-only, logged in"]) == 1
    # login: acquire, index entry, save under the new id, fenced replace-only rewrite of
    # the old id (it must still exist: a concurrent "log out everywhere" would have
    # deleted it), then the delete of the old id.
    assert len(results["login"]) == 5
    # ... and when the old session had another user: removing it from that user's index.
    assert len(results["login as another user"]) == 6
    assert all(c.startswith("EVALSHA") for cs in results.values() for c in cs)
