"""A session's life through a real Sanic 25 app: round trips, and Set-Cookie only when needed."""

from __future__ import annotations

from core_support import CountingBackend, cookie_header, get, session_app, set_cookie_headers
from sanic import Request, text
from sanic.response import HTTPResponse

from sanic_cookies._ids import store_key


async def test_value_round_trips_between_requests() -> None:
    app, _ = session_app()
    first = await get(app, "/set?colour=blue")
    assert first.status == 200
    cookie = cookie_header(first)

    again = await get(app, "/locked-read", cookie)
    assert again.json == {"colour": "blue"}
    assert await get(app, "/incr", cookie) is not None
    assert (await get(app, "/locked-read", cookie)).json == {"colour": "blue", "n": 1}


async def test_data_is_stored_under_the_hash_of_the_id_never_the_id() -> None:
    backend = CountingBackend()
    app, _ = session_app(backend=backend)
    cookie = cookie_header(await get(app, "/set?a=1"))
    sid = cookie.partition("=")[2]
    assert await backend.inner.load(store_key(sid)) is not None
    assert all(sid.encode() not in k and sid not in k.hex() for k in backend.inner._data)


async def test_untouched_session_sends_no_cookie() -> None:
    app, _ = session_app()
    cookie = cookie_header(await get(app, "/set?a=1"))
    assert set_cookie_headers(await get(app, "/untouched", cookie)) == []
    assert set_cookie_headers(await get(app, "/untouched")) == []


async def test_read_only_session_sends_no_cookie() -> None:
    app, _ = session_app(warn_lock=False)
    cookie = cookie_header(await get(app, "/set?a=1"))
    unlocked = await get(app, "/read", cookie)
    assert unlocked.json == {"a": "1"}
    assert set_cookie_headers(unlocked) == []
    locked = await get(app, "/locked-read", cookie)
    assert locked.json == {"a": "1"}
    assert set_cookie_headers(locked) == []


async def test_new_visitor_who_writes_nothing_gets_no_cookie_and_stores_nothing() -> None:
    backend = CountingBackend()
    app, _ = session_app(backend=backend, warn_lock=False)
    for path in ("/untouched", "/read", "/locked-read", "/set", "/clear", "/destroy"):
        response = await get(app, path)
        assert response.status == 200, path
        assert set_cookie_headers(response) == [], path
    assert len(backend.inner) == 0
    assert backend.store_calls() == {}  # no cookie: nothing to load, lock or write


async def test_rewriting_the_same_value_sends_no_cookie() -> None:
    app, _ = session_app()
    cookie = cookie_header(await get(app, "/set?a=1"))
    assert set_cookie_headers(await get(app, "/set?a=1", cookie)) == []
    changed = await get(app, "/set?a=2", cookie)
    # Rewritten under the same id, with the expiry the cookie already has: no cookie either
    # (test_expiry.py: it is sent again once the sliding refresh is due).
    assert set_cookie_headers(changed) == []
    assert (await get(app, "/locked-read", cookie)).json == {"a": "2"}


async def test_regenerate_rotates_the_id_keeps_the_data_and_kills_the_old_id() -> None:
    backend = CountingBackend()
    app, _ = session_app(backend=backend)
    old = cookie_header(await get(app, "/set?a=1"))
    response = await get(app, "/regenerate", old)
    new = cookie_header(response)
    assert new != old
    assert (await get(app, "/locked-read", new)).json == {"a": "1"}
    assert (await get(app, "/locked-read", old)).json == {}
    assert await backend.inner.load(store_key(old.partition("=")[2])) is None
    assert len(backend.inner) == 1


async def test_regenerate_of_an_unchanged_session_still_persists_it() -> None:
    # 0.4's D5: refresh_sid on an unmodified session lost the data.
    app, _ = session_app()
    old = cookie_header(await get(app, "/set?keep=me"))
    new = cookie_header(await get(app, "/regenerate", old))
    new2 = cookie_header(await get(app, "/regenerate", new))
    assert len({old, new, new2}) == 3
    assert (await get(app, "/locked-read", new2)).json == {"keep": "me"}


async def test_destroy_sends_a_deletion_cookie_and_kills_the_id() -> None:
    backend = CountingBackend()
    app, _ = session_app(backend=backend)
    cookie = cookie_header(await get(app, "/set?a=1"))
    response = await get(app, "/destroy", cookie)
    (header,) = set_cookie_headers(response)
    assert header.startswith('session="";') or header.startswith("session=;")
    assert "Max-Age=0" in header
    assert "expires=Thu, 01-Jan-1970 00:00:00 GMT" in header
    assert len(backend.inner) == 0
    assert (await get(app, "/locked-read", cookie)).json == {}


async def test_clear_to_empty_deletes_the_session() -> None:
    backend = CountingBackend()
    app, _ = session_app(backend=backend)
    cookie = cookie_header(await get(app, "/set?a=1&b=2"))
    response = await get(app, "/clear", cookie)
    (header,) = set_cookie_headers(response)
    assert "Max-Age=0" in header
    assert len(backend.inner) == 0
    assert (await get(app, "/locked-read", cookie)).json == {}


async def test_data_written_after_destroy_starts_a_new_session() -> None:
    app, _ = session_app()

    @app.get("/restart")
    async def restart(request: Request) -> HTTPResponse:
        async with request.ctx.session as sess:
            sess.destroy()
            sess["fresh"] = True
        return text("ok")

    old = cookie_header(await get(app, "/set?a=1"))
    new = cookie_header(await get(app, "/restart", old))
    assert new != old
    assert (await get(app, "/locked-read", new)).json == {"fresh": True}
    assert (await get(app, "/locked-read", old)).json == {}
