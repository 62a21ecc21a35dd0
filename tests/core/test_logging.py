"""The ``sanic_cookies`` logger never shows a session id, a cookie value or a full store key.

A whole login/logout flow runs through a real app (plain Session + AuthSession on the
memory backend, plus a store failure) with the logger at DEBUG; then every issued id,
its store key and every Set-Cookie value is searched for in the captured log output.
"""

from __future__ import annotations

import logging
import uuid
from http.cookies import SimpleCookie
from typing import Any

import pytest
from sanic import Sanic, json, text

from sanic_cookies import AuthSession, Session, login_required
from sanic_cookies._ids import store_key
from sanic_cookies.backends.memory import MemoryBackend
from sanic_cookies.testing import FaultyBackend


class Client:
    """Carries cookies like a browser on localhost (Secure ones too) and records them."""

    def __init__(self, app: Sanic[Any, Any], seen: set[str]) -> None:
        self.app = app
        self.cookies: dict[str, str] = {}
        self.seen = seen

    async def request(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = {"cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        client = self.app.asgi_client
        client.cookies.clear()
        _, response = await client.request(method, path, headers=headers, **kwargs)
        for header in response.headers.get_list("set-cookie"):
            jar: SimpleCookie = SimpleCookie()
            jar.load(header)
            for name, morsel in jar.items():
                if morsel.value:
                    self.cookies[name] = morsel.value
                    self.seen.add(morsel.value)
                else:
                    self.cookies.pop(name, None)
        return response


def make_app(faulty: FaultyBackend) -> Sanic[Any, Any]:
    Sanic.test_mode = True
    app: Sanic[Any, Any] = Sanic(f"log{uuid.uuid4().hex[:8]}")
    Session(app, backend=faulty)
    auth = AuthSession(app)

    @app.get("/count")
    async def count(request: Any) -> Any:
        async with request.ctx.session as sess:
            sess["n"] = sess.get("n", 0) + 1
            return text(str(sess["n"]))

    @app.post("/login")
    async def login(request: Any) -> Any:
        await auth.login_user(request, {"id": 7, "name": "ada"}, remember=True)
        return text("in")

    @app.get("/devices")
    @login_required()
    async def devices(request: Any) -> Any:
        user = await auth.current_user(request)
        return json([s.handle for s in await auth.list_sessions(user, current=request)])

    @app.post("/logout-others")
    @login_required()
    async def logout_others(request: Any) -> Any:
        user = await auth.current_user(request)
        return text(str(await auth.logout_everywhere(user, keep=request)))

    @app.post("/logout")
    async def logout(request: Any) -> Any:
        await auth.logout_user(request)
        return text("out")

    return app


async def test_no_session_id_in_logs(caplog: pytest.LogCaptureFixture) -> None:
    faulty = FaultyBackend(MemoryBackend())
    app = make_app(faulty)
    seen: set[str] = set()
    laptop, phone = Client(app, seen), Client(app, seen)
    caplog.set_level(logging.DEBUG, logger="sanic_cookies")

    assert (await laptop.request("get", "/count")).text == "1"
    assert (await laptop.request("get", "/count")).text == "2"
    assert (await laptop.request("post", "/login")).status == 200
    assert (await phone.request("post", "/login")).status == 200
    assert (await laptop.request("get", "/devices")).status == 200
    assert (await laptop.request("post", "/logout-others")).text == "1"
    assert (await phone.request("get", "/devices")).status == 401
    # A forged and a garbage cookie: ignored, never logged.
    forged = Client(app, seen)
    forged.cookies = {"session": "A" * 43, "auth_session": "not-a-session-id"}
    seen.update(forged.cookies.values())
    assert (await forged.request("get", "/count")).text == "1"
    # A store failure: one error line naming the backend, not the session.
    with faulty.fail("acquire"):
        assert (await laptop.request("get", "/count")).status == 503
    old_login = laptop.cookies["auth_session"]
    assert (await laptop.request("post", "/logout")).text == "out"
    # Replay the logged-out cookie.
    laptop.cookies["auth_session"] = old_login
    assert (await laptop.request("get", "/devices")).status == 401

    messages = [record.getMessage() for record in caplog.records]
    output = "\n".join(messages) + "\n" + caplog.text
    # The flow did log: logins, the logout, the store failure.
    assert any("login" in m for m in messages), messages
    assert any("logout" in m for m in messages), messages
    assert any(r.levelno == logging.ERROR for r in caplog.records), messages
    assert len(seen) >= 5, seen
    for value in seen:
        assert value not in output, f"a cookie value / session id appears in the log: {value!r}"
        assert store_key(value) not in output, "a full store key appears in the log"
