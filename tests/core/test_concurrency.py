"""`async with` never loses an update: concurrent requests on one session serialise."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from core_support import CountingBackend, cookie_header, get, session_app
from sanic import Request, json
from sanic.response import HTTPResponse

from sanic_cookies import LockTimeout
from sanic_cookies._backend import HELD_ALONE
from sanic_cookies.backends.memory import MemoryBackend


async def test_200_concurrent_locked_increments_end_at_exactly_200() -> None:
    backend = CountingBackend()
    # The ASGI test client starts the whole app for every request: 200 start-ups share
    # the loop with the lock's queue, so the last waiter waits far longer than in real
    # life. The property under test is "no lost update", not the default 5 s timeout.
    app, _ = session_app(backend=backend, lock_timeout=120)

    @app.get("/slow-incr")
    async def slow_incr(request: Request) -> HTTPResponse:
        async with request.ctx.session as sess:
            n = sess.get("n", 0)
            await asyncio.sleep(0)  # let every other request run into the lock
            sess["n"] = n + 1
        return json({"n": n + 1})

    cookie = cookie_header(await get(app, "/set?start=1"))
    client = app.asgi_client
    client.cookies.clear()

    async def one() -> Any:
        _, response = await client.get("/slow-incr", headers={"cookie": cookie})
        return response

    responses = await asyncio.gather(*(one() for _ in range(200)))
    assert [r.status for r in responses] == [200] * 200
    # Each request saw a different value: they ran one after the other.
    assert sorted(r.json["n"] for r in responses) == list(range(1, 201))
    assert (await get(app, "/locked-read", cookie)).json == {"start": "1", "n": 200}
    assert backend.calls["lock.save_and_release"] == 200
    assert backend.inner._locks == {}  # every per-key lock was forgotten afterwards


async def test_concurrent_requests_on_different_sessions_do_not_wait_for_each_other() -> None:
    app, _ = session_app()
    entered = asyncio.Event()
    release = asyncio.Event()

    @app.get("/hold")
    async def hold(request: Request) -> HTTPResponse:
        async with request.ctx.session as sess:
            entered.set()
            await release.wait()
            sess["held"] = True
        return json({})

    first = cookie_header(await get(app, "/set?who=first"))
    second = cookie_header(await get(app, "/set?who=second"))
    client = app.asgi_client
    client.cookies.clear()
    holder = asyncio.ensure_future(client.get("/hold", headers={"cookie": first}))
    await asyncio.wait_for(entered.wait(), 10)
    # While the first session's lock is held, the second session is served.
    _, response = await asyncio.wait_for(
        client.get("/incr", headers={"cookie": second}), timeout=10
    )
    assert response.json == {"n": 1}
    release.set()
    await holder


async def test_streaming_response_from_inside_async_with_keeps_the_lock() -> None:
    # The response middleware runs at request.respond(), while the block still runs:
    # releasing the lock there let 20 concurrent increments end at 1.
    app, _ = session_app(lock_timeout=60)

    @app.get("/stream-incr")
    async def stream_incr(request: Request) -> None:
        async with request.ctx.session as sess:
            response = await request.respond(content_type="text/plain")
            n = sess.get("n", 0)
            await asyncio.sleep(0.01)
            sess["n"] = n + 1
            await response.send(str(n + 1))
        await response.eof()

    cookie = cookie_header(await get(app, "/set?a=1"))
    client = app.asgi_client
    client.cookies.clear()

    async def one() -> Any:
        _, response = await client.get("/stream-incr", headers={"cookie": cookie})
        return response

    responses = await asyncio.gather(*(one() for _ in range(20)))
    assert sorted(int(r.text) for r in responses) == list(range(1, 21))
    assert (await get(app, "/locked-read", cookie)).json == {"a": "1", "n": 20}


async def test_the_key_registry_through_every_turn_of_an_in_process_lock() -> None:
    # A key held alone is a marker in the registry (no lock object); the first waiter makes
    # the entry that counts holder and waiters; a waiter that gives up, the holder's
    # release and the last release each leave the registry as it should be: empty at the end.
    backend = MemoryBackend()
    registry = backend._locks
    key = "ab" * 32  # a store key (hex)
    holder = backend.lock(key, timeout=5, lease=10)
    await holder.acquire()
    assert registry == {key: HELD_ALONE}
    await holder.release()
    assert registry == {}

    await holder.acquire()
    impatient = backend.lock(key, timeout=0, lease=10)
    with pytest.raises(LockTimeout):
        await impatient.acquire()
    assert registry[key] is not HELD_ALONE and registry[key].users == 1  # the holder alone
    waiter = backend.lock(key, timeout=5, lease=10)
    waiting = asyncio.create_task(waiter.acquire())
    await asyncio.sleep(0)  # (a turn of the loop: the waiter queues, no time passes)
    assert registry[key].users == 2
    assert not waiting.done()
    await holder.save_and_release(b"x", 60)
    await waiting
    assert registry[key].users == 1  # the waiter holds it now
    await waiter.release()
    await waiter.release()  # idempotent
    assert registry == {}
