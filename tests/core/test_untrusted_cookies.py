"""Cookies the server did not issue: never adopted, never a 500."""

from __future__ import annotations

import secrets

import pytest
from core_support import CountingBackend, cookie_header, get, session_app, set_cookie_headers

from sanic_cookies._ids import new_session_id, store_key


async def test_forged_well_formed_id_is_replaced_never_adopted() -> None:
    # sanic-session 0.8 stored the session under the attacker's chosen id (fixation).
    backend = CountingBackend()
    app, _ = session_app(backend=backend)
    forged = new_session_id()  # the right shape, never issued
    response = await get(app, "/set?a=1", f"session={forged}")
    assert response.status == 200
    issued = cookie_header(response).partition("=")[2]
    assert issued != forged
    assert await backend.inner.load(store_key(forged)) is None
    assert await backend.inner.load(store_key(issued)) is not None
    assert len(backend.inner) == 1
    # The forged id still leads nowhere.
    assert (await get(app, "/locked-read", f"session={forged}")).json == {}


async def test_forged_id_that_writes_nothing_creates_nothing() -> None:
    backend = CountingBackend()
    app, _ = session_app(backend=backend, warn_lock=False)
    forged = f"session={new_session_id()}"
    for path in ("/read", "/locked-read", "/clear"):
        response = await get(app, path, forged)
        assert response.status == 200, path
        assert set_cookie_headers(response) == [], path
    # An explicit destroy() expires whatever cookie the client holds.
    (deleted,) = set_cookie_headers(await get(app, "/destroy", forged))
    assert "Max-Age=0" in deleted
    assert len(backend.inner) == 0


async def test_store_key_of_someone_elses_session_is_not_their_id() -> None:
    # A leaked store dump holds keys, not ids: presenting a key as a cookie finds nothing.
    backend = CountingBackend()
    app, _ = session_app(backend=backend)
    await get(app, "/set?secret=mine")
    (key,) = (k.hex() for k in backend.inner._data)
    response = await get(app, "/locked-read", f"session={key}")
    assert response.status == 200 and response.json == {}


GARBAGE = [
    "",
    "x",
    "a" * 42,
    "a" * 44,
    "a" * 10_000,
    "%00%ff%zz",
    "../../etc/passwd",
    '"quoted"',
    "\\u2603",
    "Zm9vYmFy" * 6,
    "=" * 43,
    "a" * 42 + "=",
    "a" * 42 + "!",
    "a b c",
    "null",
    "{}",
]


@pytest.mark.parametrize("value", GARBAGE, ids=range(len(GARBAGE)))
async def test_garbage_cookie_gives_a_fresh_anonymous_session(value: str) -> None:
    backend = CountingBackend()
    app, _ = session_app(backend=backend, warn_lock=False)
    for path in ("/read", "/locked-read"):
        response = await get(app, path, f"session={value}")
        assert response.status == 200, (path, response.text)
        assert response.json == {}
    response = await get(app, "/set?a=1", f"session={value}")
    assert response.status == 200
    # A cookie that cannot be an id costs no store call but the new session's save.
    assert backend.store_calls() == {"save": 1}
    issued = cookie_header(response).partition("=")[2]
    assert issued != value
    assert (await get(app, "/locked-read", f"session={issued}")).json == {"a": "1"}


ODD_HEADERS: list[str | bytes] = [
    "session",
    "session=",
    "session=;session=",
    "=session",
    ";;;",
    "session=a; session=b; session=c",
    "other=1; session",
    "session=\x7f\x01",
    ("session=" + "é" * 50).encode(),  # raw UTF-8 bytes in the header
    b"session=\xff\xfe\x80",  # not UTF-8 at all
    "session=" + secrets.token_urlsafe(3000),
]


@pytest.mark.parametrize("header", ODD_HEADERS, ids=range(len(ODD_HEADERS)))
async def test_odd_cookie_headers_never_give_a_500(header: str | bytes) -> None:
    app, _ = session_app(warn_lock=False)
    for path in ("/untouched", "/read", "/locked-read", "/set?a=1", "/destroy"):
        response = await get(app, path, header)
        assert response.status == 200, (path, response.text)


async def test_garbage_stored_record_gives_a_fresh_session() -> None:
    backend = CountingBackend()
    app, _ = session_app(backend=backend, warn_lock=False)
    sid = new_session_id()
    for value in (b"not json", b"[]", b'{"a":1}', b"\xff\xfe", b'[{"x":1},0,0,0]'):
        await backend.inner.save(store_key(sid), value, 60)
        assert (await get(app, "/read", f"session={sid}")).json == {}
        response = await get(app, "/set?a=1", f"session={sid}")
        assert response.status == 200
        assert cookie_header(response) != f"session={sid}"  # not adopted either


async def test_several_cookies_with_the_session_name_do_not_break_the_request() -> None:
    app, _ = session_app()
    good = cookie_header(await get(app, "/set?a=1"))
    response = await get(app, "/locked-read", f"{good}; session={new_session_id()}")
    assert response.status == 200
    assert response.json == {"a": "1"}  # the first one, as the browser orders them
