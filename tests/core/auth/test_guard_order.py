"""A login guard written above the route decorator refuses start-up (it would guard nothing).

``@login_required()`` above ``@app.get(...)`` wraps the handler the app already routes to:
Sanic would call the unguarded handler. The app must not start (review a1, F4); the
check is the one `csrf_protect` uses (`_route_checks`), over app, blueprint and
websocket routes.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sanic import Blueprint, Request, Sanic, text
from sanic.response import HTTPResponse
from serving import serving
from views_modules import views_module
from ws_support import HttpBrowser

from sanic_cookies import AuthSession, ConfigurationError, fresh_login_required, login_required
from sanic_cookies.clock import ManualClock

GUARDS: dict[str, Callable[[], Any]] = {
    "login_required": login_required,
    "fresh_login_required": fresh_login_required,
}
ABOVE = r"login_required\(session_name='auth_session'\) is above the route decorator of "
BELOW = r"put the guard below the route decorator"


def new_app() -> tuple[Sanic[Any, Any], AuthSession]:
    app: Sanic[Any, Any] = Sanic(f"order_{uuid.uuid4().hex}")
    auth = AuthSession(app, secure=False)

    @app.post("/login")
    async def login(request: Request) -> HTTPResponse:
        await auth.login_user(request, "ada")
        return text("in")

    return app, auth


async def refused_start(app: Sanic[Any, Any], match: str) -> None:
    # The ASGI client starts the app (before_server_start) around its request.
    with pytest.raises(ConfigurationError, match=match) as refused:
        await app.asgi_client.get("/")
    assert BELOW in str(refused.value)


@pytest.mark.parametrize("guard", list(GUARDS))
async def test_a_guard_above_an_http_route_refuses_start_up(guard: str) -> None:
    app, _ = new_app()

    @GUARDS[guard]()
    @app.get("/account")
    async def account(request: Request) -> HTTPResponse:
        return text("secret")

    await refused_start(app, ABOVE + r".*account \(route '.*\.account', /account\)")


async def test_auth_login_required_above_a_websocket_route_refuses_start_up() -> None:
    app, auth = new_app()

    @auth.login_required()
    @app.websocket("/feed")
    async def feed(request: Request, ws: Any) -> None:
        await ws.send("secret")

    await refused_start(app, ABOVE + r".*feed \(route '.*\.feed', /feed\)")


async def test_a_guard_above_a_blueprint_route_refuses_start_up() -> None:
    app, _ = new_app()
    bp = Blueprint(f"bp_{uuid.uuid4().hex}", url_prefix="/bp")

    @login_required()
    @bp.websocket("/feed")
    async def feed(request: Request, ws: Any) -> None:
        await ws.send("secret")

    app.blueprint(bp)
    await refused_start(app, ABOVE + r".*feed \(route .*, /bp/feed\)")


async def test_a_guard_above_another_guard_and_the_route_refuses_start_up() -> None:
    # The route decorator sits between two guards: the outer one wraps nothing routed.
    app, _ = new_app()

    @login_required()
    @app.get("/account")
    @fresh_login_required()
    async def account(request: Request) -> HTTPResponse:
        return text("secret")

    await refused_start(app, r"@login_required\(session_name='auth_session'\) is above")


VIEWS_MODULE = """
from sanic import Blueprint

from sanic_cookies import login_required

bp = Blueprint("{name}")


@login_required()
@bp.websocket("/feed")
async def feed(request, ws):
    await ws.send("secret")
"""


async def test_a_module_blueprint_guarded_above_refuses_start_up_of_an_app_made_later(
    tmp_path: Path,
) -> None:
    views = views_module(tmp_path, VIEWS_MODULE)
    app, _ = new_app()  # after the module, as in an app factory
    app.blueprint(views.bp)
    await refused_start(app, ABOVE + r".*feed \(route .*, /feed\)")


async def test_guards_below_the_route_decorator_start_and_guard(manual_clock: ManualClock) -> None:
    app, auth = new_app()
    bp = Blueprint(f"bp_{uuid.uuid4().hex}", url_prefix="/bp")

    @app.get("/account")
    @login_required()
    @fresh_login_required()
    async def account(request: Request) -> HTTPResponse:
        return text("secret")

    @bp.websocket("/feed")
    @auth.login_required()
    async def feed(request: Request, ws: Any) -> None:
        await ws.send("secret")

    app.blueprint(bp)
    async with serving(app) as address:
        browser = HttpBrowser(address)
        assert (await browser.request("GET", "/account")).status_code == 401
        response = await browser.request("POST", "/login")
        browser.cookie = response.cookies["auth_session"]
        assert (await browser.request("GET", "/account")).text == "secret"
        async with browser.websocket("/bp/feed") as socket:
            assert await socket.ws.recv() == "secret"
