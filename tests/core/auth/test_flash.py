"""Flash messages end to end, through real apps on every backend of `AUTH_BACKENDS`.

The messages live in the app's AuthSession here (its only session), so they ride
along with login, rotation and, on the cookie backends, the encrypted cookie.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from auth_support import Browser
from sanic import Request, Sanic, json, text
from sanic.response import HTTPResponse
from web_support import build_web_app

from sanic_cookies import (
    MAX_FLASH_BYTES,
    AuthSession,
    Backend,
    Session,
    flash,
    get_flashed_messages,
)

SAME = {"sec-fetch-site": "same-origin"}


async def post(browser: Browser, path: str, **params: str) -> Any:
    token = (await browser.get("/form")).text
    return await browser.post(path, params=params, headers={**SAME, "X-CSRF-Token": token})


async def test_a_message_survives_one_redirect_and_is_shown_once(
    auth_backend: Backend | str,
) -> None:
    app, _ = build_web_app(auth_backend)
    browser = Browser(app)
    response = await post(browser, "/flash", msg="Saved.", cat="success")
    assert (response.status, response.headers["location"]) == (302, "/notices")
    assert (await browser.get("/notices")).json == [["success", "Saved."]]
    assert (await browser.get("/notices")).json == []
    assert (await browser.clone().get("/notices")).json == []


async def test_the_login_notice_outlives_the_login_rotation(auth_backend: Backend | str) -> None:
    app, _ = build_web_app(auth_backend)
    browser = Browser(app)
    old_cookie = browser.cookie
    response = await post(browser, "/login", user="alice")
    assert response.status == 302
    assert browser.cookie != old_cookie
    assert (await browser.get("/notices")).json == [["success", "Logged in as alice"]]
    assert (await browser.get("/notices")).json == []


async def test_categories_filter_and_order(auth_backend: Backend | str) -> None:
    app, _ = build_web_app(auth_backend)
    browser = Browser(app)
    for msg, cat in [("one", "info"), ("two", "error"), ("three", "info"), ("four", "warning")]:
        await post(browser, "/flash", msg=msg, cat=cat)
    assert (await browser.get("/notices?cat=error,warning")).json == [
        ["error", "two"],
        ["warning", "four"],
    ]
    # The others stayed queued for a later page.
    assert (await browser.get("/notices")).json == [["info", "one"], ["info", "three"]]
    assert (await browser.get("/notices")).json == []


async def test_every_call_in_one_request_sees_the_messages(auth_backend: Backend | str) -> None:
    app, _ = build_web_app(auth_backend)
    browser = Browser(app)
    await post(browser, "/flash", msg="hello")
    assert (await browser.get("/notices-twice")).json == [["hello"], ["hello"]]
    assert (await browser.get("/notices-twice")).json == [[], []]


async def test_the_queue_is_capped_so_it_always_fits_a_cookie(auth_backend: Backend | str) -> None:
    app, _ = build_web_app(auth_backend)
    browser = Browser(app)
    await post(browser, "/login", user="alice")  # a login record in the session as well
    messages = [f"{i:02d} " + "é" * 150 for i in range(20)]  # ~ 300 bytes each
    for message in messages:
        response = await post(browser, "/flash", msg=message, cat="info")
        assert response.status == 302, response.text
    shown = [m for _, m in (await browser.get("/notices")).json]
    assert 0 < len(shown) < len(messages)
    assert shown == messages[-len(shown) :]  # the newest, in order
    assert len(repr(shown).encode()) <= 2 * MAX_FLASH_BYTES
    assert (await browser.get("/whoami")).json == {"user": "alice"}


# Only the in-process stores: the ASGI test client runs the app's start-up and shutdown
# around every request, so concurrent ones would close the Redis client and PostgreSQL
# pool under requests in flight (503s a real server never gives: the backends' own tests
# cover their locks across processes). A client-side session is the browser's cookie,
# where concurrent responses race by nature (test_client_side_sessions_lose_races_... pins that).
@pytest.mark.parametrize("auth_backend", ["memory", "custom"], indirect=True)
async def test_concurrent_flashes_are_all_kept(auth_backend: Backend | str) -> None:
    app, _ = build_web_app(auth_backend)
    browser = Browser(app)
    await post(browser, "/flash", msg="first")  # the session exists: the flashes share it
    token = (await browser.get("/form")).text
    await asyncio.gather(
        *(
            browser.clone().post(
                "/flash", params={"msg": f"m{i}"}, headers={**SAME, "X-CSRF-Token": token}
            )
            for i in range(12)
        )
    )
    shown = [m for _, m in (await browser.get("/notices")).json]
    assert sorted(shown) == sorted(["first", *(f"m{i}" for i in range(12))])


@pytest.mark.parametrize("auth_backend", ["client-side", "cookie"], indirect=True)
async def test_client_side_sessions_lose_races_and_replay_old_cookies(
    auth_backend: Backend | str,
) -> None:
    # What docs/flash.md and docs/backend-cookie.md say of a session kept in the cookie
    # (review 17, F1): two requests that start from the same cookie each answer with
    # their own new cookie, and the browser keeps one, so the other's message is lost;
    # and a cookie kept from before the messages were shown shows them again.
    app, _ = build_web_app(auth_backend)
    browser = Browser(app)
    await post(browser, "/flash", msg="first")
    before = browser.clone()  # the same cookie, taken before the next two requests
    racer = browser.clone()
    await post(browser, "/flash", msg="a")
    await post(racer, "/flash", msg="b")  # started from the same cookie as "a"
    assert [m for _, m in (await racer.get("/notices")).json] == ["first", "b"]  # "a" lost
    assert [m for _, m in (await browser.get("/notices")).json] == ["first", "a"]
    assert (await browser.get("/notices")).json == []
    # The older cookie still holds "first": shown a second time.
    assert [m for _, m in (await before.get("/notices")).json] == ["first"]


async def test_bad_messages_are_refused_before_touching_the_session() -> None:
    app: Sanic[Any, Any] = Sanic(f"flash_{uuid.uuid4().hex}")
    Session(app)

    @app.get("/bad")
    async def bad(request: Request) -> HTTPResponse:
        errors = []
        for message, category in [(b"x", "info"), ("x", None), ("x" * (MAX_FLASH_BYTES + 1), "i")]:
            try:
                await flash(request, message, category)  # type: ignore[arg-type]
            except (TypeError, ValueError) as exc:
                errors.append(type(exc).__name__)
        try:
            await get_flashed_messages(request, category_filter="info")
        except TypeError:
            errors.append("filter")
        return json(errors)

    _, response = await app.asgi_client.get("/bad")
    assert response.json == ["TypeError", "TypeError", "ValueError", "filter"]
    assert "set-cookie" not in response.headers


async def test_reading_with_nothing_queued_writes_nothing() -> None:
    app: Sanic[Any, Any] = Sanic(f"flash_{uuid.uuid4().hex}")
    Session(app, secure=False)

    @app.get("/seed")
    async def seed(request: Request) -> HTTPResponse:
        async with request.ctx.session as sess:
            sess["n"] = 1
        return text("ok")

    @app.get("/read")
    async def read(request: Request) -> HTTPResponse:
        return json(await get_flashed_messages(request))

    _, response = await app.asgi_client.get("/read")
    assert response.json == [] and "set-cookie" not in response.headers  # no cookie: no session
    _, response = await app.asgi_client.get("/seed")
    cookie = response.headers["set-cookie"].split(";")[0]
    _, response = await app.asgi_client.get("/read", headers={"cookie": cookie})
    assert response.json == [] and "set-cookie" not in response.headers


async def test_flash_picks_the_plain_session_and_names_a_missing_one() -> None:
    app: Sanic[Any, Any] = Sanic(f"flash_{uuid.uuid4().hex}")
    Session(app, secure=False)
    AuthSession(app, secure=False)

    @app.get("/set")
    async def set_(request: Request) -> HTTPResponse:
        await flash(request, "into session")
        return text("ok")

    @app.get("/wrong")
    async def wrong(request: Request) -> HTTPResponse:
        await flash(request, "x", session_name="nope")
        return text("unreachable")

    _, response = await app.asgi_client.get("/set")
    assert [h.split("=")[0] for h in response.headers.get_list("set-cookie")] == ["session"]
    _, response = await app.asgi_client.get("/wrong")
    assert response.status == 500
