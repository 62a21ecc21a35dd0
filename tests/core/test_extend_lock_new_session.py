"""`sess.extend_lock()` inside `async with` works for a new visitor too (review of issue 16, F12).

A visitor without a cookie has a session nobody else can know, so there is no lock to
extend: the call is a no-op, not a 500. A returning visitor's lock is really extended.
"""

from __future__ import annotations

from typing import Any

import pytest
from core_support import CountingBackend, cookie_header, get, new_app
from sanic import Request, json
from sanic.response import HTTPResponse

from sanic_cookies import Session


def extend_app(backend: Any) -> Any:
    app = new_app()
    Session(app, backend=backend, secure=False)

    @app.get("/long")
    async def long(request: Request) -> HTTPResponse:
        async with request.ctx.session as sess:
            await sess.extend_lock(10)
            sess["n"] = n = sess.get("n", 0) + 1
        return json({"n": n})

    @app.get("/outside")
    async def outside(request: Request) -> HTTPResponse:
        with pytest.raises(RuntimeError, match="async with"):
            await request.ctx.session.extend_lock(10)
        return json({})

    return app


@pytest.mark.parametrize("backend", ["memory://", "counting"])
async def test_extend_lock_inside_the_block_of_a_new_session(backend: str) -> None:
    store = CountingBackend() if backend == "counting" else backend
    app = extend_app(store)
    first = await get(app, "/long")  # no cookie yet: nothing locked, nothing to extend
    assert first.status == 200, first.text
    assert first.json == {"n": 1}
    second = await get(app, "/long", cookie_header(first))  # now locked: really extended
    assert second.status == 200, second.text
    assert second.json == {"n": 2}
    if isinstance(store, CountingBackend):
        assert store.calls["lock.extend"] == 1


async def test_extend_lock_outside_the_block_still_refuses() -> None:
    response = await get(extend_app("memory://"), "/outside")
    assert response.status == 200, response.text
