"""Typed sessions end to end, on every backend of `AUTH_BACKENDS` (memory, Redis,
PostgreSQL, the encrypted cookie, and the in-tree custom and client-side ones).

An `AuthSession` with a schema, `CSRFProtect` and flash messages in one app: the
library's own keys (the CSRF secret, the flash queue) and the login live beside the
typed fields and keep working, through login rotation and a schema change.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import msgspec
import pytest
from auth_support import Browser, build_app
from sanic import Request, Sanic, json, redirect, text
from sanic.response import HTTPResponse
from serving import serving
from ws_support import HttpBrowser, add_websocket_routes

from sanic_cookies import (
    AuthSession,
    Backend,
    ClientSideBackend,
    CSRFProtect,
    SessionSchema,
    SessionValidationError,
    csrf_token,
    flash,
    get_flashed_messages,
)
from sanic_cookies.clock import ManualClock

SAME = {"sec-fetch-site": "same-origin"}


class Line(msgspec.Struct):
    sku: str
    qty: int = 1


class Cart(msgspec.Struct):
    lines: list[Line] = []
    note: str = ""


class CartV2(msgspec.Struct):
    lines: list[Line] = []
    note: int = 0  # was a str: the stored notes no longer match


def build(backend: Backend | str) -> tuple[Sanic[Any, Any], AuthSession]:
    app: Sanic[Any, Any] = Sanic(f"typed_{uuid.uuid4().hex}")
    auth = AuthSession(app, backend=backend, schema=Cart)
    CSRFProtect(app)

    @app.get("/form")
    async def form(request: Request) -> HTTPResponse:
        return text(await csrf_token(request))

    @app.post("/add")
    async def add(request: Request) -> HTTPResponse:
        sku = request.args.get("sku", "")
        async with auth.of(request) as sess:
            sess.data.lines.append(Line(sku))
            await flash(request, f"Added {sku}")  # joins the block: one write
        return redirect("/cart")

    @app.post("/note")
    async def note(request: Request) -> HTTPResponse:
        try:
            async with auth.of(request) as sess:
                sess["note"] = msgspec.json.decode(request.args.get("value", "null"))
        except SessionValidationError as exc:
            return json({"path": exc.path}, 422)
        return text("ok")

    @app.get("/cart")
    async def cart(request: Request) -> HTTPResponse:
        async with auth.of(request) as sess:
            data = msgspec.to_builtins(sess.data)
        return json({**data, "flashes": await get_flashed_messages(request)})

    @app.post("/login")
    async def login(request: Request) -> HTTPResponse:
        keep = request.args.get("keep") == "1"
        await auth.login_user(request, request.args.get("user", "alice"), keep_data=keep)
        return text("in")

    @app.get("/whoami")
    async def whoami(request: Request) -> HTTPResponse:
        return json({"user": await auth.current_user(request)})

    @app.get("/read")
    async def read(request: Request) -> HTTPResponse:
        async with auth.of(request) as sess:  # reads, changes nothing
            return json(msgspec.to_builtins(sess.data))

    @app.get("/set-note")  # a GET: no CSRF secret, so the record holds the note only
    async def set_note(request: Request) -> HTTPResponse:
        async with auth.of(request) as sess:
            sess["note"] = request.args.get("value", "")
        return text("ok")

    return app, auth


async def post(browser: Browser, path: str, token: str | None = None, **params: str) -> Any:
    if token is None:
        token = (await browser.get("/form")).text
    return await browser.post(path, params=params, headers={**SAME, "X-CSRF-Token": token})


async def test_typed_data_flash_and_csrf_share_the_session(auth_backend: Backend | str) -> None:
    app, _ = build(auth_backend)
    browser = Browser(app)
    assert (await post(browser, "/add", sku="apple")).status == 302
    assert (await post(browser, "/add", sku="pear")).status == 302
    assert (await browser.get("/cart")).json == {
        "lines": [{"sku": "apple", "qty": 1}, {"sku": "pear", "qty": 1}],
        "note": "",
        "flashes": ["Added apple", "Added pear"],
    }
    assert (await browser.get("/cart")).json["flashes"] == []
    assert (await browser.clone().get("/cart")).json["lines"] != []
    assert (await Browser(app).get("/cart")).json == {"lines": [], "note": "", "flashes": []}


async def test_login_keeps_the_typed_data_only_when_asked(auth_backend: Backend | str) -> None:
    app, _ = build(auth_backend)
    keeper, dropper = Browser(app), Browser(app)
    for browser in (keeper, dropper):
        await post(browser, "/add", sku="apple")
        await browser.get("/cart")  # takes the flash
    assert (await post(keeper, "/login", user="alice", keep="1")).status == 200
    assert (await post(dropper, "/login", user="bob")).status == 200
    assert await keeper.whoami() == "alice" and await dropper.whoami() == "bob"
    assert (await keeper.get("/cart")).json["lines"] == [{"sku": "apple", "qty": 1}]
    assert (await dropper.get("/cart")).json["lines"] == []  # back to the defaults
    # The CSRF secret was replaced at login (a fresh one is handed out and works).
    assert (await post(keeper, "/add", sku="pear")).status == 302


async def test_a_write_that_does_not_match_is_an_error_and_stores_nothing(
    auth_backend: Backend | str,
) -> None:
    app, _ = build(auth_backend)
    browser = Browser(app)
    assert (await post(browser, "/note", value='"hello"')).status == 200
    cookie = browser.cookie
    response = await post(browser, "/note", value="42")
    assert (response.status, response.json) == (422, {"path": "$.note"})
    assert browser.cookie == cookie  # no new cookie: nothing was written
    assert (await browser.get("/cart")).json["note"] == "hello"


async def test_after_a_schema_change_old_data_starts_from_the_defaults_and_the_rest_stays(
    auth_backend: Backend | str, caplog: pytest.LogCaptureFixture
) -> None:
    app, auth = build(auth_backend)
    browser = Browser(app)
    token = (await browser.get("/form")).text
    await post(browser, "/login", token, user="alice", keep="1")
    token = (await browser.get("/form")).text  # the login replaced the secret
    await post(browser, "/note", token, value='"private note 7f3a"')
    await post(browser, "/add", token, sku="apple")  # leaves "Added apple" queued
    auth.schema = SessionSchema(CartV2)  # the deploy
    caplog.set_level(logging.WARNING, "sanic_cookies")
    response = await browser.get("/cart")
    assert response.status == 200
    # The fields start over; the login, the flash queue and the CSRF secret do not.
    assert response.json == {"lines": [], "note": 0, "flashes": ["Added apple"]}
    assert await browser.whoami() == "alice"
    assert (await post(browser, "/note", token, value="5")).status == 200  # old token works
    assert (await browser.get("/cart")).json["note"] == 5
    lines = [r.getMessage() for r in caplog.records if r.name == "sanic_cookies"]
    mismatch = [line for line in lines if "does not match the schema CartV2" in line]
    assert len(mismatch) == 1 and "(at $.note)" in mismatch[0]
    assert "private note" not in caplog.text and "apple" not in caplog.text


async def test_a_request_that_only_reads_a_record_that_no_longer_matches_leaves_it(
    auth_backend: Backend | str, manual_clock: ManualClock
) -> None:
    app, auth = build(auth_backend)
    plain, member = Browser(app), Browser(app)
    await plain.get("/set-note", params={"value": "plain note"})  # no login, no _ keys
    await post(member, "/login", user="alice", keep="1")
    await member.get("/set-note", params={"value": "member note"})
    cookies = (plain.cookie, member.cookie)
    auth.schema = SessionSchema(CartV2)  # a deploy: the stored notes no longer match
    manual_clock.advance(600)  # past the refresh interval: a read would slide the expiry
    for browser in (plain, member):
        for _ in range(2):
            response = await browser.get("/read")
            assert response.json == {"lines": [], "note": 0}  # the defaults, read only
            # Never ended (it reads as empty) nor rewritten with the defaults; the server
            # stores may extend the expiry in place, the cookie backend leaves it.
            assert all(c.get("max-age") != "0" for c in browser.last_set.values())
    assert (plain.cookie, member.cookie) == cookies  # the same id, or the same token
    assert await member.whoami() == "alice"
    auth.schema = SessionSchema(Cart)  # a rollback, or an old instance, reads them intact
    assert (await plain.get("/read")).json["note"] == "plain note"
    assert (await member.get("/read")).json["note"] == "member note"
    # A request that changes the session replaces the record with data that matches.
    auth.schema = SessionSchema(CartV2)
    assert (await post(member, "/add", sku="apple")).status == 302
    auth.schema = SessionSchema(Cart)
    assert (await member.get("/read")).json == {"lines": [{"sku": "apple", "qty": 1}], "note": ""}


class WsCart(msgspec.Struct):
    """The keys `auth_support.build_app` and `ws_support` use, as a schema."""

    cart: list[str] = []
    note: str = ""


async def test_a_websocket_reads_and_writes_the_typed_session(auth_backend: Backend | str) -> None:
    app, auth = build_app(auth_backend, schema=WsCart)
    add_websocket_routes(app, auth)
    async with serving(app) as address:
        browser = HttpBrowser(address)
        await browser.login("alice")
        await browser.request("POST", "/cart", item="apple")
        client_side = isinstance(auth.backend, ClientSideBackend)
        async with browser.websocket() as ws:
            assert await ws.result("cart") == ["apple"]
            answer = await ws.ask("add", "pear")
            if client_side:  # the session is the cookie, which a websocket cannot set
                assert answer["error"] == "WebsocketSessionError"
            else:
                assert answer == {"result": ["apple", "pear"]}
            # Outside a block a websocket refuses changes, a typed session's too.
            assert (await ws.ask("set-outside"))["error"] == "WebsocketSessionError"
            # A field set outside a block cannot be refused when it is set: the next
            # block starts from the store all the same (review a1, F1).
            assert await ws.result("note-outside", "outside") is None
            assert await ws.result("note") == ""
        expected = ["apple"] if client_side else ["apple", "pear"]
        assert (await browser.request("GET", "/cart")).json() == expected


class WsCartV2(msgspec.Struct):
    cart: list[int] = []  # was list[str]: the stored carts no longer match
    note: str = ""


async def test_a_websocket_that_only_reads_a_record_that_no_longer_matches_leaves_it(
    auth_backend: Backend | str,
) -> None:
    app, auth = build_app(auth_backend, schema=WsCart)
    add_websocket_routes(app, auth)
    async with serving(app) as address:
        browser = HttpBrowser(address)
        await browser.request("POST", "/cart", item="apple")  # no login, no _ keys
        auth.schema = SessionSchema(WsCartV2)
        async with browser.websocket() as ws:
            # A read-only block: not ended as empty, not a WebsocketSessionError on the
            # cookie backend (nothing to write).
            assert await ws.ask("cart") == {"result": []}
            assert await ws.ask("cart") == {"result": []}
        auth.schema = SessionSchema(WsCart)
        assert (await browser.request("GET", "/cart")).json() == ["apple"]
