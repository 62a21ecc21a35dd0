"""Idle and absolute timeouts end an authenticated session, remembered or not.

Time passes on the library's clock (`manual_clock`), never in a sleep. The absolute
lifetime is the library's to enforce, so moving the clock decides it on every backend.
The idle timeout of Redis and PostgreSQL is a TTL their server keeps in real time: there
the tests wait, boundedly, for the server to drop the session (`wait_until`); the other
backends expire on the library's clock and have dropped it the moment the clock moves.
"""

from __future__ import annotations

from typing import Any

from auth_support import Browser

from sanic_cookies import AuthSession
from sanic_cookies.clock import ManualClock
from sanic_cookies.testing import wait_until

#: A bound for the server-kept TTLs of these tests (2 s) to run out, on a busy machine.
SERVER_TTL_WAIT = 30.0


async def logged_out(browser: Browser) -> bool:
    return await browser.whoami() is None


async def test_idle_timeout_ends_the_login(make_app: Any, manual_clock: ManualClock) -> None:
    # refresh_interval > expiry: reads never slide the expiry, so polling cannot keep it alive.
    app, _ = make_app(expiry=2, lifetime=60, refresh_interval=60)
    browser = Browser(app)
    await browser.login("alice")
    assert await browser.whoami() == {"id": "alice", "name": "Alice"}
    manual_clock.advance(2.3)
    assert await wait_until(lambda: logged_out(browser), SERVER_TTL_WAIT)
    assert (await browser.get("/private")).status == 401


async def test_activity_keeps_the_login_alive_until_the_absolute_timeout(
    make_app: Any, manual_clock: ManualClock
) -> None:
    app, _ = make_app(expiry=60, lifetime=120, refresh_interval=1)
    browser = Browser(app)
    await browser.login("alice")
    # A request every 15 s refreshes the idle timer: 105 s of activity outlive a 60 s idle
    # timeout (on the stores that expire on the library's clock; a server's TTL sees the
    # real milliseconds this takes).
    for _ in range(7):
        manual_clock.advance(15)
        assert await browser.whoami() == {"id": "alice", "name": "Alice"}
    manual_clock.advance(14)  # 119 s after login, active a moment ago
    assert await browser.whoami() == {"id": "alice", "name": "Alice"}
    # ...but not the absolute limit, however active: over at 120 s on the dot.
    manual_clock.advance(1)
    assert await browser.whoami() is None
    assert (await browser.get("/private")).status == 401


async def test_a_remembered_login_has_its_own_lifetime(
    make_app: Any, manual_clock: ManualClock
) -> None:
    app, _ = make_app(expiry=60, lifetime=60)
    browser = Browser(app)
    await browser.login("alice", remember="1", duration="2")
    assert browser.last_set["auth_session"]["max-age"] == "2"
    manual_clock.advance(1.9)
    assert await browser.whoami() == {"id": "alice", "name": "Alice"}
    manual_clock.advance(0.1)
    assert await browser.whoami() is None  # enforced by the server, not only by the cookie


async def test_remembered_logins_have_an_idle_timeout_when_asked(
    auth_backend: Any, manual_clock: ManualClock
) -> None:
    from auth_support import build_app

    # refresh_interval > remember_expiry: polling below cannot slide the expiry.
    app, _ = build_app(auth_backend, remember_expiry=2, refresh_interval=60)
    browser = Browser(app)
    await browser.login("alice", remember="1")
    assert browser.last_set["auth_session"]["max-age"] == "2"
    manual_clock.advance(0.8)
    assert await browser.whoami() == {"id": "alice", "name": "Alice"}
    manual_clock.advance(2.3)
    assert await wait_until(lambda: logged_out(browser), SERVER_TTL_WAIT)


def test_defaults_are_owasp_minded() -> None:
    auth = AuthSession()
    assert auth.config.cookie_name == "auth_session"
    assert auth.config.expiry == 30 * 60
    assert auth.config.lifetime == 12 * 3600
    assert auth.config.session_cookie is True
    assert auth.config.secure and auth.config.httponly and auth.config.samesite == "Lax"
    assert auth.remember_duration == 30 * 86400
    assert auth.remember_expiry is None
