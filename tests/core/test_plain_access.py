"""Plain access outside ``async with`` (0.4's promise), autoload, is_modified, session_name."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
from core_support import CountingBackend, cookie_header, get, new_app, session_app
from plain_access_support import check_plain_access, plain_access_app
from sanic import Request, json, text
from sanic.response import HTTPResponse

from sanic_cookies import AuthSession, ConfigurationError, Session, SessionConfig
from sanic_cookies.backends.memory import MemoryBackend

# -- on a backend that loads without I/O: no setting needed ----------------------------------


async def test_plain_access_on_memory_reads_writes_and_saves() -> None:
    await check_plain_access(lambda **settings: plain_access_app("memory://", **settings))


async def test_memory_loads_on_first_plain_access_without_an_await() -> None:
    assert MemoryBackend().loads_now
    app, _ = session_app(warn_lock=False)

    @app.get("/plain")
    async def plain(request: Request) -> HTTPResponse:
        before = request.ctx.session._data is None
        value = request.ctx.session.get("n")
        return json({"unloaded_before": before, "n": value})

    cookie = cookie_header(await get(app, "/incr"))
    assert (await get(app, "/plain", cookie)).json == {"unloaded_before": True, "n": 1}


# -- on a backend that needs I/O: autoload -----------------------------------------------------


async def test_autoload_makes_plain_access_work_on_a_network_backend() -> None:
    assert not CountingBackend().loads_now  # the default of Backend
    await check_plain_access(
        lambda **settings: plain_access_app(CountingBackend(), autoload=True, **settings)
    )


async def test_autoload_costs_one_load_per_request_with_a_cookie_and_nothing_without() -> None:
    backend = CountingBackend()
    app, _ = session_app(backend=backend, autoload=True, warn_lock=False)
    cookie = cookie_header(await get(app, "/set?a=1"))

    backend.reset()
    await get(app, "/untouched")
    assert backend.store_calls() == {}  # no cookie: no store call, as without autoload
    await get(app, "/untouched", cookie)
    assert backend.store_calls() == {"load": 1}  # the price: paid used or not
    backend.reset()
    await get(app, "/read", cookie)
    assert backend.store_calls() == {"load": 1}  # load() after autoload: no second read
    backend.reset()
    await get(app, "/untouched", "session=" + "x" * 10)
    assert backend.store_calls() == {}  # a malformed cookie is no session: nothing to load


async def test_autoload_setting_from_app_config_and_per_session() -> None:
    app = new_app()
    app.config.SESSION_AUTOLOAD = True
    session = Session(app)
    auth = AuthSession(app, autoload=True)
    assert session.config.autoload is True
    assert auth.config.autoload is True
    assert SessionConfig().autoload is False
    with pytest.raises(ConfigurationError, match="autoload"):
        SessionConfig.resolve({"autoload": "yes"}, {})


async def test_autoload_store_failure_fails_only_requests_that_use_the_session() -> None:
    backend = CountingBackend()
    app, _ = session_app(backend=backend, autoload=True, warn_lock=False)

    @app.get("/plain")
    async def plain(request: Request) -> HTTPResponse:
        return json(request.ctx.session.get("a"))

    cookie = cookie_header(await get(app, "/set?a=1"))
    backend.fail.add("load")
    assert (await get(app, "/untouched", cookie)).status == 200
    assert (await get(app, "/plain", cookie)).status == 503
    backend.fail.clear()
    assert (await get(app, "/plain", cookie)).json == "1"


async def test_without_autoload_plain_access_on_a_network_backend_is_a_500_naming_both_fixes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    backend = CountingBackend()
    app, _ = session_app(backend=backend)

    @app.get("/plain")
    async def plain(request: Request) -> HTTPResponse:
        request.ctx.session["a"] = 1
        return text("ok")

    response = await get(app, "/plain")
    assert response.status == 500
    logged = caplog.text
    assert "SessionNotLoaded" in logged
    assert "await request.ctx.session.load()" in logged
    assert "SESSION_AUTOLOAD = True" in logged
    assert backend.store_calls() == {}


async def test_autoload_then_async_with_reads_again_under_the_lock() -> None:
    backend = CountingBackend()
    app, _ = session_app(backend=backend, autoload=True, warn_lock=False)
    cookie = cookie_header(await get(app, "/set?a=1"))
    backend.reset()
    assert (await get(app, "/set?b=2", cookie)).json == {"a": "1", "b": "2"}
    # The autoloaded copy is not trusted under the lock: the lock re-reads.
    assert backend.calls["load"] == 1 and backend.calls["lock.acquire"] == 1


async def test_auth_session_autoload_setting_uses_its_own_prefix(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = new_app()
    app.config.AUTH_SESSION_AUTOLOAD = True
    auth = AuthSession(app, backend=CountingBackend(), secure=False)
    assert auth.config.autoload is True
    plain = AuthSession(new_app(), backend=CountingBackend(), secure=False)

    @plain.app.get("/plain")  # type: ignore[union-attr]
    async def use(request: Request) -> HTTPResponse:
        return json(request.ctx.auth_session.get("a"))

    response = await get(plain.app, "/plain")
    assert response.status == 500
    assert "AUTH_SESSION_AUTOLOAD = True" in caplog.text
    assert "AuthSession(..., autoload=True)" in caplog.text


# -- the 0.4 names ----------------------------------------------------------------------------


async def test_is_modified_tracks_differences_from_what_was_loaded() -> None:
    app, _ = session_app(warn_lock=False)
    seen: dict[str, Any] = {}

    @app.get("/modify")
    async def modify(request: Request) -> HTTPResponse:
        sess = request.ctx.session
        seen["unloaded"] = sess.is_modified
        async with sess:
            seen["loaded"] = sess.is_modified
            sess["a"] = sess["a"]  # the same value: no difference
            seen["same"] = sess.is_modified
            sess.setdefault("list", []).append(1)  # a nested change counts
            seen["nested"] = sess.is_modified
        seen["after_write"] = sess.is_modified  # written: matches the store again
        sess["b"] = object()  # not storable: certainly not what was loaded
        seen["unstorable"] = sess.is_modified
        del sess["b"]
        return text("ok")

    cookie = cookie_header(await get(app, "/set?a=1"))
    await get(app, "/modify", cookie)
    assert seen == {
        "unloaded": False,
        "loaded": False,
        "same": False,
        "nested": True,
        "after_write": False,
        "unstorable": True,
    }


async def test_session_name_is_an_alias_of_name() -> None:
    session = Session(new_app(), session_name="my_sess")
    assert session.session_name == session.name == "my_sess"
    assert AuthSession(new_app()).session_name == "auth_session"
    with pytest.raises(AttributeError):
        session.session_name = "other"  # type: ignore[misc]  # read-only


async def test_one_warning_per_line_even_under_the_default_filter_reset() -> None:
    # Several accesses on one line (items() reads every key) give one warning, also when
    # the application shows every warning ("always").
    app, _ = session_app()
    counts: list[int] = []

    @app.get("/many")
    async def many(request: Request) -> HTTPResponse:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            sess = request.ctx.session
            for _ in range(3):
                _ = [sess.get(k) for k in ("a", "b", "c")] + list(sess.items())
            counts.append(len([w for w in caught if issubclass(w.category, RuntimeWarning)]))
        return text("ok")

    cookie = cookie_header(await get(app, "/set?a=1&b=2"))
    await get(app, "/many", cookie)
    await get(app, "/many", cookie)
    assert counts == [1, 1]  # one line, one warning, in each request


async def test_plain_access_with_several_backends_follows_the_primary() -> None:
    # A memory primary loads without I/O; the copy still gets every write.
    copy = CountingBackend()
    app, session = session_app(backend=["memory://", copy], warn_lock=False)

    @app.get("/plain")
    async def plain(request: Request) -> HTTPResponse:
        request.ctx.session["n"] = request.ctx.session.get("n", 0) + 1
        return json(request.ctx.session["n"])

    first = await get(app, "/plain")
    assert first.json == 1
    assert (await get(app, "/plain", cookie_header(first))).json == 2
    assert copy.calls["save"] == 2 and copy.calls["load"] == 0  # written, never read
    assert session.metrics["memory"].operations >= 3  # the primary's sync load is counted

    # A network primary needs autoload, like a single one.
    network, _ = session_app(backend=[CountingBackend(), "memory://"], warn_lock=False)

    @network.get("/plain")
    async def plain_network(request: Request) -> HTTPResponse:
        return json(request.ctx.session.get("n"))

    assert (await get(network, "/plain")).status == 500
