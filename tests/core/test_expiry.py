"""Idle timeout, absolute lifetime and sliding refresh, enforced on the server."""

from __future__ import annotations

import pytest
from core_support import (
    CountingBackend,
    cookie_header,
    get,
    session_app,
    session_cookie,
    set_cookie_headers,
)

from sanic_cookies import StoredSession
from sanic_cookies._ids import store_key
from sanic_cookies.backends.memory import _HEAD, _expiry, _pack
from sanic_cookies.clock import ManualClock, now


class NeverExpiringStore(CountingBackend):
    """A store that keeps and returns entries past their TTL: expiry is up to the core.

    (Lazy stores, and clocks that disagree, make this real.)
    """

    async def load(self, key: str) -> StoredSession | None:
        self._count("load")
        entry = self.inner._data.get(bytes.fromhex(key))
        return None if entry is None else StoredSession(entry[_HEAD:], _expiry(entry))

    async def save(
        self,
        key: str,
        value: bytes,
        ttl: float,
        *,
        user_id: str | None = None,
        replace_only: bool = False,
    ) -> bool:
        self._count("save")
        k = bytes.fromhex(key)
        if replace_only and k not in self.inner._data:
            return False
        self.inner._data[k] = _pack(now() + ttl) + value
        return True


async def test_idle_session_expires(manual_clock: ManualClock) -> None:
    app, _ = session_app(expiry=1, warn_lock=False)
    cookie = cookie_header(await get(app, "/set?a=1"))
    assert (await get(app, "/read", cookie)).json == {"a": "1"}
    manual_clock.advance(1)  # idle for the whole 1 s timeout
    assert (await get(app, "/read", cookie)).json == {}
    assert (await get(app, "/locked-read", cookie)).json == {}


async def test_idle_expiry_is_enforced_even_if_the_store_keeps_the_entry(
    manual_clock: ManualClock,
) -> None:
    backend = NeverExpiringStore()
    app, _ = session_app(backend=backend, expiry=1, warn_lock=False)
    cookie = cookie_header(await get(app, "/set?a=1"))
    manual_clock.advance(1.3)
    assert len(backend.inner) == 1  # still there...
    assert (await get(app, "/read", cookie)).json == {}  # ...but dead
    # Writing to it starts a new session rather than reviving the old id.
    response = await get(app, "/set?b=2", cookie)
    assert cookie_header(response) != cookie
    assert (await get(app, "/read", cookie_header(response))).json == {"b": "2"}


async def test_absolute_lifetime_ends_even_an_active_session(manual_clock: ManualClock) -> None:
    backend = NeverExpiringStore()
    app, _ = session_app(
        backend=backend, expiry=60, lifetime=1.5, refresh_interval=0, warn_lock=False
    )
    first = await get(app, "/incr")
    cookie = cookie_header(first)
    _, attrs = session_cookie(first)
    assert int(attrs["max-age"]) <= 2  # the cookie does not outlive the lifetime
    for expected in (2, 3):
        manual_clock.advance(0.4)
        assert (await get(app, "/incr", cookie)).json == {"n": expected}
    manual_clock.advance(0.6)  # 1.4 s after creation, active a moment ago
    assert (await get(app, "/incr", cookie)).json == {"n": 4}
    manual_clock.advance(0.1)  # 1.5 s: the lifetime is over, however active
    assert (await get(app, "/read", cookie)).json == {}


async def test_read_only_session_slides_with_touches_throttled_by_refresh_interval(
    manual_clock: ManualClock,
) -> None:
    backend = CountingBackend()
    app, _ = session_app(backend=backend, expiry=2, refresh_interval=0.5, warn_lock=False)
    cookie = cookie_header(await get(app, "/set?a=1"))

    backend.reset()
    for _ in range(3):  # within the refresh interval: a plain load, no cookie
        response = await get(app, "/read", cookie)
        assert set_cookie_headers(response) == []
    assert backend.store_calls() == {"load": 3}

    for _ in range(3):  # 0.7 s, 1.4 s, 2.1 s: each pushes the expiry out once
        manual_clock.advance(0.7)
        backend.reset()
        response = await get(app, "/read", cookie)
        assert response.json == {"a": "1"}
        assert backend.store_calls() == {"load": 1, "touch": 1}  # touched, not rewritten
        value, attrs = session_cookie(response)
        assert f"session={value}" == cookie and attrs["max-age"] == "2"
        backend.reset()
        again = await get(app, "/read", cookie)  # just refreshed: no second touch
        assert set_cookie_headers(again) == []
        assert backend.store_calls() == {"load": 1}
    # 2.1 s after the last write, longer than the 2 s idle timeout: alive thanks to touches.
    assert (await get(app, "/read", cookie)).json == {"a": "1"}


async def test_locked_read_only_session_is_rewritten_at_most_once_per_refresh_interval(
    manual_clock: ManualClock,
) -> None:
    backend = CountingBackend()
    app, _ = session_app(backend=backend, expiry=2, refresh_interval=0.5)
    cookie = cookie_header(await get(app, "/set?a=1"))
    backend.reset()
    await get(app, "/locked-read", cookie)
    assert backend.store_calls() == {"lock.acquire": 1, "lock.release": 1}
    manual_clock.advance(0.4)  # within the refresh interval: not rewritten
    backend.reset()
    assert set_cookie_headers(await get(app, "/locked-read", cookie)) == []
    assert backend.store_calls() == {"lock.acquire": 1, "lock.release": 1}
    manual_clock.advance(0.3)
    backend.reset()
    response = await get(app, "/locked-read", cookie)
    assert backend.store_calls() == {"lock.acquire": 1, "lock.save_and_release": 1}
    assert session_cookie(response)[1]["max-age"] == "2"
    backend.reset()
    assert set_cookie_headers(await get(app, "/locked-read", cookie)) == []
    assert backend.store_calls() == {"lock.acquire": 1, "lock.release": 1}


async def test_no_refresh_once_the_lifetime_caps_the_expiry(manual_clock: ManualClock) -> None:
    backend = CountingBackend()
    # lifetime < expiry: the first write already reaches the absolute end.
    app, _ = session_app(
        backend=backend, expiry=60, lifetime=30, refresh_interval=0, warn_lock=False
    )
    cookie = cookie_header(await get(app, "/set?a=1"))
    backend.reset()
    manual_clock.advance(0.2)
    for _ in range(3):
        assert set_cookie_headers(await get(app, "/read", cookie)) == []
    assert backend.store_calls() == {"load": 3}


async def test_default_refresh_interval_is_a_tenth_of_expiry_at_most_five_minutes() -> None:
    _, short = session_app(expiry=100)
    _, long = session_app()
    assert short.config.refresh_after == 10
    assert long.config.refresh_after == 300


async def test_changed_session_keeps_its_expiry_until_the_refresh_is_due(
    manual_clock: ManualClock,
) -> None:
    # A write under the same id does not re-send the cookie on every request: the store
    # keeps the expiry the cookie has, and both slide together once a refresh is due.
    backend = CountingBackend()
    app, _ = session_app(backend=backend, expiry=2, refresh_interval=0.5)
    cookie = cookie_header(await get(app, "/incr"))
    key = store_key(cookie.partition("=")[2])
    stored = await backend.inner.load(key)
    assert stored is not None
    expires = stored.expires_at

    manual_clock.advance(0.4)  # a refresh would gain 0.4 s < 0.5 s
    backend.reset()
    response = await get(app, "/incr", cookie)
    assert response.json == {"n": 2}
    assert backend.store_calls() == {"lock.acquire": 1, "lock.save_and_release": 1}
    assert set_cookie_headers(response) == []
    stored = await backend.inner.load(key)
    assert stored is not None and stored.expires_at == pytest.approx(expires)

    manual_clock.advance(0.3)  # 0.7 s: due
    response = await get(app, "/incr", cookie)
    value, attrs = session_cookie(response)
    assert f"session={value}" == cookie and attrs["max-age"] == "2"
    stored = await backend.inner.load(key)
    assert stored is not None and stored.expires_at == pytest.approx(now() + 2)

    # Changed every 0.4 s for 4 s, twice the idle timeout: alive, every change kept.
    for n in range(4, 14):
        manual_clock.advance(0.4)
        response = await get(app, "/incr", cookie)
        assert response.json == {"n": n}
        for header in set_cookie_headers(response):
            assert header.startswith(cookie + ";") and "Max-Age=2" in header

    # The store and the cookie agree: idle for the whole timeout after the last refresh,
    # the session is over (within refresh_interval of its last change).
    manual_clock.advance(2)
    assert (await get(app, "/locked-read", cookie)).json == {}


async def test_changed_session_still_ends_at_its_lifetime(manual_clock: ManualClock) -> None:
    # With the default refresh interval (6 s of a 60 s expiry), writes keep the expiry the
    # lifetime set: the session ends at 1.5 s, however often it changes.
    app, _ = session_app(expiry=60, lifetime=1.5)
    cookie = cookie_header(await get(app, "/incr"))
    for n in (2, 3, 4):
        manual_clock.advance(0.4)
        response = await get(app, "/incr", cookie)
        assert response.json == {"n": n}
        assert set_cookie_headers(response) == []
    manual_clock.advance(0.3)  # 1.5 s after creation
    assert (await get(app, "/locked-read", cookie)).json == {}
