"""The SessionDict and Session API as a handler sees it."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
from core_support import (
    CountingBackend,
    add_standard_routes,
    cookie_header,
    get,
    new_app,
    session_app,
    set_cookie_headers,
)
from sanic import Request, json, text
from sanic.response import HTTPResponse

from sanic_cookies import Session, SessionNotLoaded, SessionSerializationError
from sanic_cookies._ids import store_key
from sanic_cookies.backends.memory import MemoryBackend
from sanic_cookies.clock import ManualClock

# -- change detection and serialization ----------------------------------------------------


async def test_nested_mutation_counts_as_a_change() -> None:
    app, _ = session_app()

    @app.get("/add-to-cart")
    async def add_to_cart(request: Request) -> HTTPResponse:
        async with request.ctx.session as sess:
            sess.setdefault("cart", []).append(request.args.get("item"))
            sess.setdefault("meta", {}).setdefault("seen", {})["x"] = len(sess["cart"])
        return text("ok")

    cookie = cookie_header(await get(app, "/add-to-cart?item=apple"))
    await get(app, "/add-to-cart?item=pear", cookie)  # written: the nested list changed
    assert (await get(app, "/locked-read", cookie)).json == {
        "cart": ["apple", "pear"],
        "meta": {"seen": {"x": 2}},
    }


async def test_unserializable_value_names_the_key_and_writes_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    backend = CountingBackend()
    app, _ = session_app(backend=backend)
    seen: list[SessionSerializationError] = []

    @app.get("/bad")
    async def bad(request: Request) -> HTTPResponse:
        try:
            async with request.ctx.session as sess:
                sess["fine"] = "changed"
                sess["when"] = object()
        except SessionSerializationError as exc:
            seen.append(exc)
            raise
        return text("never")

    cookie = cookie_header(await get(app, "/set?fine=original"))
    backend.reset()
    response = await get(app, "/bad", cookie)
    assert response.status == 500
    assert set_cookie_headers(response) == []
    (exc,) = seen
    assert exc.key == "when"
    assert "'when'" in str(exc)
    assert isinstance(exc, TypeError)
    # Nothing was written, not even the good key; the lock was released.
    assert backend.store_calls() == {"lock.acquire": 1, "lock.release": 1}
    assert (await get(app, "/locked-read", cookie)).json == {"fine": "original"}


async def test_unserializable_value_on_a_new_session_writes_nothing() -> None:
    backend = CountingBackend()
    app, _ = session_app(backend=backend)

    @app.get("/bad")
    async def bad(request: Request) -> HTTPResponse:
        async with request.ctx.session as sess:
            sess["n"] = object()
        return text("never")

    response = await get(app, "/bad")
    assert response.status == 500
    assert set_cookie_headers(response) == []
    assert backend.store_calls() == {}


async def test_unserializable_value_set_unlocked_fails_the_response_too() -> None:
    backend = CountingBackend()
    app, _ = session_app(backend=backend, warn_lock=False)

    @app.get("/bad-unlocked")
    async def bad_unlocked(request: Request) -> HTTPResponse:
        sess = await request.ctx.session.load()
        sess["when"] = object()
        return text("handler says ok")

    cookie = cookie_header(await get(app, "/set?a=1"))
    backend.reset()
    response = await get(app, "/bad-unlocked", cookie)
    assert response.status == 500
    assert "handler says ok" not in response.text
    assert backend.store_calls() == {"load": 1}


# -- a block that raises -------------------------------------------------------------------


async def test_block_that_raises_discards_its_changes_and_releases_the_lock() -> None:
    backend = CountingBackend()
    app, _ = session_app(backend=backend, lock_timeout=1)

    @app.get("/boom")
    async def boom(request: Request) -> HTTPResponse:
        async with request.ctx.session as sess:
            sess["a"] = "half-done"
            sess.regenerate()
            raise ValueError("handler bug")
        return text("never")

    cookie = cookie_header(await get(app, "/set?a=1"))
    backend.reset()
    response = await get(app, "/boom", cookie)
    assert response.status == 500
    assert set_cookie_headers(response) == []  # no rotation went out either
    assert backend.store_calls() == {"lock.acquire": 1, "lock.release": 1}
    assert backend.inner._locks == {}
    assert (await get(app, "/incr", cookie)).json == {"n": 1}  # the lock is free
    assert (await get(app, "/locked-read", cookie)).json == {"a": "1", "n": 1}


async def test_block_that_raises_keeps_earlier_blocks_writes() -> None:
    app, _ = session_app()

    @app.get("/partial")
    async def partial(request: Request) -> HTTPResponse:
        async with request.ctx.session as sess:
            sess["first"] = "kept"
        try:
            async with request.ctx.session as sess:
                sess["second"] = "discarded"
                raise KeyError("oops")
        except KeyError:
            pass
        return json(dict(sess._data or {}))

    response = await get(app, "/partial")
    assert response.json == {"first": "kept"}
    assert (await get(app, "/locked-read", cookie_header(response))).json == {"first": "kept"}


# -- warnings and errors for unlocked or unloaded use --------------------------------------


async def test_access_outside_async_with_warns() -> None:
    app, _ = session_app()
    caught: list[list[warnings.WarningMessage]] = []

    @app.get("/unlocked")
    async def unlocked(request: Request) -> HTTPResponse:
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            sess = await request.ctx.session.load()
            _ = sess.get("a")
            sess["b"] = 2
            caught.append(w)
        return text("ok")

    cookie = cookie_header(await get(app, "/set?a=1"))
    await get(app, "/unlocked", cookie)
    runtime = [w for w in caught[0] if issubclass(w.category, RuntimeWarning)]
    assert len(runtime) == 2
    assert "used outside `async with request.ctx.session:`" in str(runtime[0].message)
    assert "warn_lock=False" in str(runtime[0].message)
    assert {w.filename for w in runtime} == {__file__}  # the handler's lines, not ours
    assert (await get(app, "/locked-read", cookie)).json == {"a": "1", "b": 2}


async def test_access_inside_async_with_and_warn_lock_false_do_not_warn() -> None:
    for options in ({}, {"warn_lock": False}):
        app, _ = session_app(**options)
        caught: list[list[warnings.WarningMessage]] = []

        @app.get("/use")
        async def use(request: Request, caught: Any = caught, options: Any = options) -> Any:
            with warnings.catch_warnings(record=True) as w:
                warnings.simplefilter("always")
                async with request.ctx.session as sess:
                    sess["a"] = sess.get("a", 0) + 1
                if options:
                    loaded = await request.ctx.session.load()
                    _ = loaded["a"]
                caught.append(w)
            return text("ok")

        await get(app, "/use")
        assert [w for w in caught[0] if issubclass(w.category, RuntimeWarning)] == []


async def test_sync_access_before_loading_raises_session_not_loaded() -> None:
    # A backend that needs I/O to load (the counting one: no `load_now`), without autoload.
    backend = CountingBackend()
    app, _ = session_app(backend=backend)
    errors: list[SessionNotLoaded] = []

    @app.get("/too-soon")
    async def too_soon(request: Request) -> HTTPResponse:
        for attempt in (
            lambda: request.ctx.session["a"],
            lambda: request.ctx.session.__setitem__("a", 1),
            lambda: len(request.ctx.session),
            lambda: request.ctx.session.regenerate(),
            lambda: request.ctx.session.destroy(),
        ):
            try:
                attempt()
            except SessionNotLoaded as exc:
                errors.append(exc)
        return text("ok")

    cookie = cookie_header(await get(app, "/set?a=1"))
    backend.reset()
    for sent in (None, cookie):  # the same with and without a session cookie
        errors.clear()
        assert (await get(app, "/too-soon", sent)).status == 200
        assert len(errors) == 5
        message = str(errors[0])
        assert "async with request.ctx.session as sess:" in message
        assert "await request.ctx.session.load()" in message
        assert "SESSION_AUTOLOAD = True" in message and "autoload=True" in message
        assert isinstance(errors[0], RuntimeError)
    assert backend.store_calls() == {}


async def test_unsaved_unlocked_changes_are_carried_into_async_with() -> None:
    app, _ = session_app(warn_lock=False)
    seen: list[dict[str, str]] = []

    @app.get("/mixed")
    async def mixed(request: Request) -> HTTPResponse:
        sess = await request.ctx.session.load()
        sess["a"] = "unlocked"
        async with request.ctx.session as locked:
            seen.append(dict(locked))
            locked["b"] = "locked"
        return text("ok")

    response = await get(app, "/mixed")
    assert response.status == 200
    assert seen == [{"a": "unlocked"}]
    assert (await get(app, "/read", cookie_header(response))).json == {
        "a": "unlocked",
        "b": "locked",
    }


async def test_nested_async_with_is_refused() -> None:
    app, _ = session_app(lock_timeout=1)
    seen: list[Exception] = []

    @app.get("/nested")
    async def nested(request: Request) -> HTTPResponse:
        async with request.ctx.session:
            try:
                async with request.ctx.session:
                    pass
            except RuntimeError as exc:
                seen.append(exc)
        return text("ok")

    cookie = cookie_header(await get(app, "/set?a=1"))
    assert (await get(app, "/nested", cookie)).status == 200
    assert "already locked" in str(seen[0])


# -- where the session and the extension live ----------------------------------------------


async def test_two_sessions_with_different_names_side_by_side(manual_clock: ManualClock) -> None:
    app = new_app()
    Session(app, session_name="cart", cookie_name="cart", expiry=100)
    Session(app, session_name="prefs", cookie_name="prefs", expiry=200)

    @app.get("/both")
    async def both(request: Request) -> HTTPResponse:
        async with request.ctx.cart as cart, request.ctx.prefs as prefs:
            cart["items"] = cart.get("items", 0) + 1
            prefs["theme"] = "dark"
        return text("ok")

    @app.get("/cart-only")
    async def cart_only(request: Request) -> HTTPResponse:
        async with request.ctx.cart as cart:
            cart["items"] += 1
        return text("ok")

    add_standard_routes(app, "cart")
    response = await get(app, "/both")
    headers = {h.split("=")[0]: h for h in set_cookie_headers(response)}
    assert set(headers) == {"cart", "prefs"}
    assert "Max-Age=100" in headers["cart"] and "Max-Age=200" in headers["prefs"]
    cart, prefs = cookie_header(response, "cart"), cookie_header(response, "prefs")
    assert cart.partition("=")[2] != prefs.partition("=")[2]
    both_cookies = f"{cart}; {prefs}"
    manual_clock.advance(11)  # cart's sliding refresh is due (a tenth of its expiry)
    only = await get(app, "/cart-only", both_cookies)
    assert [h.split("=")[0] for h in set_cookie_headers(only)] == ["cart"]
    assert (await get(app, "/locked-read", both_cookies)).json == {"items": 2}


async def test_extension_is_reachable_from_handlers_under_app_ctx_exts() -> None:
    app = new_app()
    default = Session(app)
    other = Session(app, session_name="other", cookie_name="other")
    found: dict[str, Any] = {}

    @app.get("/where")
    async def where(request: Request) -> HTTPResponse:
        found["session"] = request.app.ctx.exts.session
        found["other"] = request.app.ctx.exts.other
        found["backend"] = request.app.ctx.exts.session.backend
        return text("ok")

    await get(app, "/where")
    assert found["session"] is default and found["other"] is other
    assert isinstance(found["backend"], MemoryBackend)
    assert default.backend is not other.backend  # each session its own memory store


async def test_init_app_attaches_later() -> None:
    session = Session(cookie_name="late")
    app = new_app()
    session.init_app(app)
    add_standard_routes(app)
    response = await get(app, "/set?a=1")
    assert (await get(app, "/locked-read", cookie_header(response, "late"))).json == {"a": "1"}
    assert app.ctx.exts.session is session


async def test_master_interface_is_an_alias_of_backend() -> None:
    backend = CountingBackend()
    app = new_app()
    session = Session(app, master_interface=backend)
    add_standard_routes(app)
    await get(app, "/set?a=1")
    assert session.backend is backend
    assert backend.calls["save"] == 1


async def test_backend_instance_is_kept_across_restarts_and_opened_each_time() -> None:
    backend = CountingBackend()
    app, session = session_app(backend=backend)
    cookie = cookie_header(await get(app, "/set?a=1"))
    await get(app, "/untouched")
    assert session.backend is backend
    assert (await get(app, "/locked-read", cookie)).json == {"a": "1"}


def test_backend_is_unavailable_before_the_server_starts() -> None:
    session = Session(new_app())
    with pytest.raises(RuntimeError, match="set up when the server starts"):
        _ = session.backend


async def test_session_properties() -> None:
    app, _ = session_app()
    seen: dict[str, Any] = {}

    @app.get("/props")
    async def props(request: Request) -> HTTPResponse:
        sess = request.ctx.session
        seen["repr_before"] = repr(sess)
        seen["sid_before"] = sess.sid
        async with sess:
            seen["is_new"] = sess.is_new
            seen["created"] = sess.created
            sess["x"] = 1
        seen["sid_after"] = sess.sid
        seen["repr"] = repr(sess)
        return text("ok")

    response = await get(app, "/props")
    assert seen["sid_before"] is None and seen["is_new"] is True
    assert f"session={seen['sid_after']}" == cookie_header(response)
    assert "1 keys" in seen["repr"] and seen["sid_after"] not in seen["repr"]
    first_sid = seen["sid_after"]
    await get(app, "/props", cookie_header(response))
    assert seen["is_new"] is False
    # Before any load, the cookie is read on demand: the id, and the log label of its key.
    assert seen["sid_before"] == first_sid
    assert seen["repr_before"] == f"<SessionDict 'session' {store_key(first_sid)[:8]} unloaded>"
