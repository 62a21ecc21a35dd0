"""Plain access and `async with` in one request, and plain changes of a failed request.

Found by a migrating 0.4 user: converting a handler line by line mixes the two styles,
and 1.0 answered 500 while keeping the unlocked change and dropping the locked one.
Through a real Sanic app on the memory backend (its data is at hand without I/O).
"""

from __future__ import annotations

import warnings
from typing import Any

from core_support import cookie_header, get, new_app
from sanic import Request, json, text
from sanic.response import HTTPResponse

from sanic_cookies import AuthSession, Session, SessionTooLarge


def mixed_app() -> Any:
    app = new_app("mixed")
    Session(app, secure=False, warn_lock=False)

    @app.get("/start")
    async def start(request: Request) -> HTTPResponse:
        async with request.ctx.session as sess:
            sess["n"] = 1
        return text("ok")

    @app.get("/mixed")
    async def mixed(request: Request) -> HTTPResponse:
        request.ctx.session["p"] = 1  # plain, as 0.4 allowed
        async with request.ctx.session as sess:
            sess["q"] = 2
            sess["n"] += 1
        return text("ok")

    @app.get("/plain-then-raise")
    async def plain_then_raise(request: Request) -> HTTPResponse:
        request.ctx.session["n"] = 100
        raise ValueError("the handler failed")

    @app.get("/read")
    async def read(request: Request) -> HTTPResponse:
        async with request.ctx.session as sess:
            return json(dict(sess))

    return app


async def test_plain_changes_carry_into_a_later_async_with_block() -> None:
    app = mixed_app()
    cookie = cookie_header(await get(app, "/start"))
    response = await get(app, "/mixed", cookie)
    assert response.status == 200, response.body
    assert (await get(app, "/read", cookie)).json == {"n": 2, "p": 1, "q": 2}


async def test_plain_changes_of_a_request_that_failed_are_not_saved() -> None:
    app = mixed_app()
    cookie = cookie_header(await get(app, "/start"))
    assert (await get(app, "/plain-then-raise", cookie)).status == 500
    # Like an exception inside `async with`: the failed request's changes are dropped.
    assert (await get(app, "/read", cookie)).json == {"n": 1}


async def test_the_size_limit_counts_the_logged_in_user() -> None:
    app = new_app("biguser")
    auth = AuthSession(app, secure=False)

    @app.get("/login")
    async def login(request: Request) -> HTTPResponse:
        user = {"id": "ada", "blob": "x" * int(request.args["n"][0])}
        try:
            await auth.login_user(request, user)
        except SessionTooLarge as exc:
            return text(str(exc), status=413)
        return text("in")

    @app.get("/me")
    async def me(request: Request) -> HTTPResponse:
        return text(str(await auth.current_user(request) is not None))

    small = await get(app, "/login?n=100")
    assert small.status == 200
    big = await get(app, "/login?n=70000")
    assert big.status == 413
    assert "AUTH_SESSION_MAX_SIZE" in big.text
    assert "set-cookie" not in big.headers
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert (await get(app, "/me", cookie_header(small, "auth_session"))).text == "True"
