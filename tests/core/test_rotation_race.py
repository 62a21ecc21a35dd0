"""A rotation racing "log out everywhere" must not bring the session back under a new id."""

from __future__ import annotations

import uuid
from typing import Any

from sanic import Request, Sanic, json

from sanic_cookies import AuthInfo, Session
from sanic_cookies._ids import store_key
from sanic_cookies.backends.memory import MemoryBackend


def _app() -> tuple[Sanic[Any, Any], MemoryBackend]:
    backend = MemoryBackend()
    app: Sanic[Any, Any] = Sanic(f"rot{uuid.uuid4().hex[:8]}")
    Session(app, backend=backend, secure=False)

    @app.get("/login")
    async def login(request: Request) -> Any:
        async with request.ctx.session as sess:
            sess.set_auth(AuthInfo(user="alice", user_id="alice", login_at=0.0))
            sess["n"] = 1
        return json({"ok": True})

    @app.get("/rotate-while-logged-out-elsewhere")
    async def rotate(request: Request) -> Any:
        async with request.ctx.session as sess:
            sess.regenerate()
            sess["n"] = 2
            # "Log out everywhere" runs in another request while this one holds the lock.
            assert await backend.delete_user_sessions("alice") == 1
        return json({"sid": sess.sid})

    @app.get("/rotate")
    async def plain_rotate(request: Request) -> Any:
        async with request.ctx.session as sess:
            sess.regenerate()
        return json({"sid": sess.sid})

    return app, backend


async def test_rotation_after_a_concurrent_logout_everywhere_stays_logged_out() -> None:
    app, backend = _app()
    _, resp = await app.asgi_client.get("/login")
    cookie = resp.cookies["session"]
    _, resp = await app.asgi_client.get(
        "/rotate-while-logged-out-elsewhere", headers={"Cookie": f"session={cookie}"}
    )
    assert resp.status == 200
    assert resp.json == {"sid": None}
    # The client is told to drop its cookie, and no record of alice survives anywhere.
    assert 'session=""' in resp.headers["set-cookie"] or "session=;" in resp.headers["set-cookie"]
    assert "Max-Age=0" in resp.headers["set-cookie"]
    assert len(backend) == 0
    assert await backend.list_user_sessions("alice") == {}


async def test_plain_rotation_moves_the_record_to_the_new_id() -> None:
    app, backend = _app()
    _, resp = await app.asgi_client.get("/login")
    old = resp.cookies["session"]
    _, resp = await app.asgi_client.get("/rotate", headers={"Cookie": f"session={old}"})
    new = resp.json["sid"]
    assert new and new != old
    assert await backend.load(store_key(old)) is None
    assert await backend.load(store_key(new)) is not None
    assert set(await backend.list_user_sessions("alice")) == {store_key(new)}
