"""Lazy and frugal: the exact store calls each kind of request makes, counted."""

from __future__ import annotations

from typing import Any

from core_support import CountingBackend, cookie_header, get, session_app
from sanic import json, text


async def _with_session(app: Any, backend: CountingBackend) -> str:
    cookie = cookie_header(await get(app, "/incr"))
    backend.reset()
    return cookie


async def test_untouched_session_costs_zero_store_calls() -> None:
    backend = CountingBackend()
    app, _ = session_app(backend=backend)
    cookie = await _with_session(app, backend)
    for _ in range(3):
        assert (await get(app, "/untouched", cookie)).status == 200
    assert backend.store_calls() == {}


async def test_read_only_load_costs_exactly_one_load() -> None:
    backend = CountingBackend()
    app, _ = session_app(backend=backend, warn_lock=False)
    cookie = await _with_session(app, backend)
    assert (await get(app, "/read", cookie)).json == {"n": 1}
    assert backend.store_calls() == {"load": 1}


async def test_locked_read_costs_one_acquire_and_one_release() -> None:
    backend = CountingBackend()
    app, _ = session_app(backend=backend)
    cookie = await _with_session(app, backend)
    assert (await get(app, "/locked-read", cookie)).json == {"n": 1}
    assert backend.store_calls() == {"lock.acquire": 1, "lock.release": 1}


async def test_locked_read_modify_write_costs_one_acquire_and_one_save_and_release() -> None:
    backend = CountingBackend()
    app, _ = session_app(backend=backend)
    cookie = await _with_session(app, backend)
    assert (await get(app, "/incr", cookie)).json == {"n": 2}
    assert backend.store_calls() == {"lock.acquire": 1, "lock.save_and_release": 1}


async def test_new_session_costs_one_save_and_no_lock() -> None:
    backend = CountingBackend()
    app, _ = session_app(backend=backend)
    assert (await get(app, "/incr")).json == {"n": 1}
    assert backend.store_calls() == {"save": 1}


async def test_destroy_costs_one_acquire_and_one_delete_and_release() -> None:
    backend = CountingBackend()
    app, _ = session_app(backend=backend)
    cookie = await _with_session(app, backend)
    await get(app, "/destroy", cookie)
    assert backend.store_calls() == {"lock.acquire": 1, "lock.delete_and_release": 1}


async def test_regenerate_costs_acquire_new_save_old_check_and_old_delete() -> None:
    # The old record is rewritten replace_only before it is deleted: that is how a
    # rotation notices a concurrent "log out everywhere" (test_rotation_race.py).
    backend = CountingBackend()
    app, _ = session_app(backend=backend)
    cookie = await _with_session(app, backend)
    await get(app, "/regenerate", cookie)
    assert backend.store_calls() == {
        "lock.acquire": 1,
        "save": 1,
        "lock.save_and_release": 1,
        "delete": 1,
    }


async def test_unlocked_write_costs_one_load_and_one_replace_only_save() -> None:
    backend = CountingBackend()
    app, _ = session_app(backend=backend, warn_lock=False)

    @app.get("/unlocked-incr")
    async def unlocked_incr(request: Any) -> Any:
        sess = await request.ctx.session.load()
        sess["n"] += 1
        return json({"n": sess["n"]})

    cookie = await _with_session(app, backend)
    assert (await get(app, "/unlocked-incr", cookie)).json == {"n": 2}
    assert backend.store_calls() == {"load": 1, "save": 1}
    assert (await get(app, "/read", cookie)).json == {"n": 2}


async def test_two_blocks_in_one_request_lock_twice_and_write_only_what_changed() -> None:
    backend = CountingBackend()
    app, _ = session_app(backend=backend)

    @app.get("/twice")
    async def twice(request: Any) -> Any:
        async with request.ctx.session as sess:
            n = sess["n"]
        async with request.ctx.session as sess:
            sess["n"] = n + 1
        return text("ok")

    cookie = await _with_session(app, backend)
    await get(app, "/twice", cookie)
    assert backend.store_calls() == {
        "lock.acquire": 2,
        "lock.release": 1,
        "lock.save_and_release": 1,
    }
    assert (await get(app, "/locked-read", cookie)).json == {"n": 2}
