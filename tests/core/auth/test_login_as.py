"""sanic_cookies.testing.login_as: log a test client in without the login form."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from auth_support import Browser, build_app
from sanic import Sanic

from sanic_cookies import ConfigurationError, Session
from sanic_cookies.testing import cookie_header, login_as


async def test_login_as_before_the_app_ever_started(auth_backend: Any) -> None:
    app, _ = build_app(auth_backend)
    cookies = await login_as(app, {"id": "ada", "name": "Ada"})
    assert list(cookies) == ["auth_session"]
    _, response = await app.asgi_client.get("/private", headers=cookie_header(cookies))
    assert response.status == 200
    assert response.json == {"hello": {"id": "ada", "name": "Ada"}}


async def test_login_as_between_requests_through_the_client_jar(auth_backend: Any) -> None:
    app, _ = build_app(auth_backend)
    assert (await Browser(app).get("/private")).status == 401  # the app has served already
    cookies = await login_as(app, 42)
    app.asgi_client.cookies.clear()
    app.asgi_client.cookies.update(cookies)  # set by hand: not Secure, so sent over http
    _, response = await app.asgi_client.get("/whoami")
    assert response.json == {"user": 42}
    _, response = await app.asgi_client.get("/private")
    assert response.status == 200


async def test_login_as_makes_the_same_session_as_login_user(auth_backend: Any) -> None:
    app, auth = build_app(auth_backend)
    forged = Browser(app, await login_as(app, {"id": "ada"}, remember=True))
    real = Browser(app)
    await real.login("ada", remember="1")
    assert (await forged.get("/private")).status == 200
    # Both live in the user index (where there is one) and log out the same way.
    response = await real.get("/devices")
    if auth.backend.supports_user_index:
        assert len(response.json) == 2 and all(d["remember"] for d in response.json)
    await forged.post("/logout")
    assert await forged.whoami() is None
    assert await real.whoami() == {"id": "ada", "name": "Ada"}


async def test_login_as_refuses_an_app_without_that_auth_session() -> None:
    app = Sanic(f"plain_{uuid.uuid4().hex}")
    Session(app)
    with pytest.raises(ConfigurationError, match="no AuthSession named 'auth_session'"):
        await login_as(app, 1)
    with pytest.raises(ValueError):
        await login_as(build_app("memory://")[0], None)
