"""Idle and absolute timeouts end an authenticated session, remembered or not (real timeouts)."""

from __future__ import annotations

import asyncio
from typing import Any

from auth_support import Browser

from sanic_cookies import AuthSession


async def test_idle_timeout_ends_the_login(make_app: Any) -> None:
    app, _ = make_app(expiry=2, lifetime=60)
    browser = Browser(app)
    await browser.login("alice")
    assert await browser.whoami() == {"id": "alice", "name": "Alice"}
    await asyncio.sleep(2.3)
    assert await browser.whoami() is None
    assert (await browser.get("/private")).status == 401


async def test_activity_keeps_the_login_alive_until_the_absolute_timeout(make_app: Any) -> None:
    app, _ = make_app(expiry=2, lifetime=4, refresh_interval=0.1)
    browser = Browser(app)
    loop = asyncio.get_running_loop()
    await browser.login("alice")
    logged_in_at = loop.time()
    # Each request refreshes the idle timer: 2.8 s of activity outlives a 2 s idle timeout
    # (the margins leave room for slow requests on a busy machine).
    for _ in range(7):
        await asyncio.sleep(0.4)
        assert await browser.whoami() == {"id": "alice", "name": "Alice"}
    # ...but not the absolute limit, however active.
    for _ in range(30):
        await asyncio.sleep(0.4)
        if await browser.whoami() is None:
            break
    else:
        raise AssertionError("still logged in long after the absolute timeout")
    assert loop.time() - logged_in_at >= 3.9
    assert (await browser.get("/private")).status == 401


async def test_a_remembered_login_has_its_own_lifetime(make_app: Any) -> None:
    app, _ = make_app(expiry=60, lifetime=60)
    browser = Browser(app)
    await browser.login("alice", remember="1", duration="2")
    assert browser.last_set["auth_session"]["max-age"] == "2"
    assert await browser.whoami() == {"id": "alice", "name": "Alice"}
    await asyncio.sleep(2.3)
    assert await browser.whoami() is None  # enforced by the server, not only by the cookie


async def test_remembered_logins_have_an_idle_timeout_when_asked(auth_backend: Any) -> None:
    from auth_support import build_app

    app, _ = build_app(auth_backend, remember_expiry=2, refresh_interval=0.1)
    browser = Browser(app)
    await browser.login("alice", remember="1")
    assert browser.last_set["auth_session"]["max-age"] == "2"
    await asyncio.sleep(0.8)
    assert await browser.whoami() == {"id": "alice", "name": "Alice"}
    await asyncio.sleep(2.3)
    assert await browser.whoami() is None


def test_defaults_are_owasp_minded() -> None:
    auth = AuthSession()
    assert auth.config.cookie_name == "auth_session"
    assert auth.config.expiry == 30 * 60
    assert auth.config.lifetime == 12 * 3600
    assert auth.config.session_cookie is True
    assert auth.config.secure and auth.config.httponly and auth.config.samesite == "Lax"
    assert auth.remember_duration == 30 * 86400
    assert auth.remember_expiry is None
