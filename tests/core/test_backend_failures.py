"""A store that fails: 503 with one log line, lock released, data and cookie untouched."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from core_support import (
    CountingBackend,
    cookie_header,
    get,
    session_app,
    set_cookie_headers,
)
from sanic import Request, json, text
from sanic.response import HTTPResponse

from sanic_cookies import BackendUnavailable
from sanic_cookies._ids import store_key
from sanic_cookies.backends.memory import _HEAD


def error_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """Every log record of level WARNING or above, from any logger (Sanic's included)."""
    return [r for r in caplog.records if r.levelno >= logging.WARNING]


def assert_one_log_line(caplog: pytest.LogCaptureFixture, operation: str) -> None:
    records = error_records(caplog)
    assert len(records) == 1, [(r.name, r.getMessage()) for r in records]
    (record,) = records
    assert record.name == "sanic_cookies"
    assert record.levelno == logging.ERROR
    message = record.getMessage()
    assert f"{operation} on backend counting failed" in message
    assert "StoreDown" in message
    assert record.exc_info is None  # one line, no traceback


async def _session(backend: CountingBackend, **options: Any) -> tuple[Any, str]:
    app, _ = session_app(backend=backend, lock_timeout=1, **options)
    cookie = cookie_header(await get(app, "/set?a=1"))
    backend.reset()
    return app, cookie


def _stored_value(backend: CountingBackend, cookie: str) -> bytes:
    key = bytes.fromhex(store_key(cookie.partition("=")[2]))
    return backend.inner._data[key][_HEAD:]


async def test_failed_save_inside_async_with_gives_503_and_releases_the_lock(
    caplog: pytest.LogCaptureFixture,
) -> None:
    backend = CountingBackend()
    app, cookie = await _session(backend)
    before = _stored_value(backend, cookie)
    backend.fail = {"lock.save_and_release"}
    caplog.clear()
    response = await get(app, "/set?a=2", cookie)
    assert response.status == 503
    assert set_cookie_headers(response) == []  # the client keeps its cookie
    assert_one_log_line(caplog, "save")
    assert _stored_value(backend, cookie) == before
    # 0.4's D2: the lock leaked and every later request on the session hung. Here the
    # next request gets the lock at once (lock_timeout=1 would turn a leak into a 503).
    backend.fail = set()
    assert backend.inner._locks == {}
    response = await get(app, "/set?a=3", cookie)
    assert response.status == 200
    assert (await get(app, "/locked-read", cookie)).json == {"a": "3"}


async def test_failed_lock_acquire_gives_503(caplog: pytest.LogCaptureFixture) -> None:
    backend = CountingBackend()
    app, cookie = await _session(backend)
    backend.fail = {"lock.acquire"}
    caplog.clear()
    response = await get(app, "/set?a=2", cookie)
    assert response.status == 503
    assert set_cookie_headers(response) == []
    assert_one_log_line(caplog, "lock")
    backend.fail = set()
    assert (await get(app, "/locked-read", cookie)).json == {"a": "1"}


async def test_failed_load_gives_503_and_leaves_data_and_cookie_alone(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # 0.4's D6: a read error deleted the session everywhere.
    backend = CountingBackend()
    app, cookie = await _session(backend, warn_lock=False)
    before = _stored_value(backend, cookie)
    backend.fail = {"load"}
    caplog.clear()
    response = await get(app, "/read", cookie)
    assert response.status == 503
    assert set_cookie_headers(response) == []
    assert_one_log_line(caplog, "load")
    assert backend.store_calls() == {"load": 1}  # nothing deleted, nothing written
    assert _stored_value(backend, cookie) == before
    backend.fail = set()
    assert (await get(app, "/read", cookie)).json == {"a": "1"}


async def test_failed_final_write_in_the_response_middleware_gives_503_not_200(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # An unlocked change is written after the handler returned, by the response
    # middleware; Sanic would log a failure there and still send the handler's 200.
    backend = CountingBackend()
    app, cookie = await _session(backend, warn_lock=False)

    @app.get("/unlocked-set")
    async def unlocked_set(request: Request) -> HTTPResponse:
        sess = await request.ctx.session.load()
        sess["a"] = "changed"
        return text("handler says ok")

    backend.fail = {"save"}
    caplog.clear()
    response = await get(app, "/unlocked-set", cookie)
    assert response.status == 503
    assert "handler says ok" not in response.text
    assert set_cookie_headers(response) == []
    assert_one_log_line(caplog, "save")
    backend.fail = set()
    assert (await get(app, "/read", cookie)).json == {"a": "1"}


async def test_failed_first_save_of_a_new_session_gives_503_without_cookie(
    caplog: pytest.LogCaptureFixture,
) -> None:
    backend = CountingBackend()
    app, _ = session_app(backend=backend)
    backend.fail = {"save"}
    response = await get(app, "/set?a=1")
    assert response.status == 503
    assert set_cookie_headers(response) == []
    assert_one_log_line(caplog, "save")
    assert len(backend.inner) == 0


async def test_handler_that_catches_the_store_error_decides_the_response() -> None:
    backend = CountingBackend()
    app, cookie = await _session(backend)

    @app.get("/degrade")
    async def degrade(request: Request) -> HTTPResponse:
        try:
            async with request.ctx.session as sess:
                sess["a"] = "2"
        except BackendUnavailable:
            return json({"degraded": True})
        return json({"degraded": False})

    backend.fail = {"lock.save_and_release"}
    response = await get(app, "/degrade", cookie)
    assert response.status == 200
    assert response.json == {"degraded": True}
    assert set_cookie_headers(response) == []
    # Nothing was retried behind the handler's back: one save attempt, then a release.
    assert backend.store_calls() == {
        "lock.acquire": 1,
        "lock.save_and_release": 1,
        "lock.release": 1,
    }


async def test_failed_refresh_touch_keeps_the_read_answer(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The sliding-expiry touch of a read-only request is housekeeping: the data was read,
    # and the session stays valid until its current expiry.
    backend = CountingBackend()
    app, cookie = await _session(backend, warn_lock=False, refresh_interval=0)
    backend.fail = {"touch"}
    caplog.clear()
    response = await get(app, "/read", cookie)
    assert response.status == 200
    assert response.json == {"a": "1"}
    assert set_cookie_headers(response) == []
    assert backend.store_calls() == {"load": 1, "touch": 1}
    records = error_records(caplog)
    assert len(records) == 1 and "touch on backend counting failed" in records[0].getMessage()


async def test_custom_error_handler_renders_the_503() -> None:
    backend = CountingBackend()
    app, cookie = await _session(backend, warn_lock=False)

    @app.exception(BackendUnavailable)
    async def store_down(request: Request, exc: Exception) -> HTTPResponse:
        return json({"error": "try again shortly"}, status=503)

    @app.get("/unlocked-set")
    async def unlocked_set(request: Request) -> HTTPResponse:
        sess = await request.ctx.session.load()
        sess["a"] = "changed"
        return text("ok")

    backend.fail = {"save", "lock.save_and_release"}
    for path in ("/unlocked-set", "/set?a=2"):
        response = await get(app, path, cookie)
        assert response.status == 503, path
        assert response.json == {"error": "try again shortly"}, path


def test_failed_final_write_gives_503_on_the_real_http_server_too() -> None:
    # Sanic's HTTP/1.1 server (not ASGI) replaces the response the same way.
    backend = CountingBackend()
    app, _ = session_app(backend=backend, warn_lock=False)

    @app.get("/unlocked-set")
    async def unlocked_set(request: Request) -> HTTPResponse:
        sess = await request.ctx.session.load()
        sess["a"] = "changed"
        return text("handler says ok")

    _, response = app.test_client.get("/set?a=1")
    cookie = response.headers["set-cookie"].split(";")[0]
    backend.fail = {"save"}
    _, response = app.test_client.get("/unlocked-set", headers={"cookie": cookie})
    assert response.status == 503
    assert "handler says ok" not in response.text
    assert "set-cookie" not in response.headers
