"""The app of the CSRF and flash end-to-end tests: an AuthSession, CSRFProtect, forms, notices.

Routes (every unsafe one is CSRF-checked unless said otherwise):

* ``GET /form``: a fresh masked token as text (the session gets one if it has none).
* ``POST /login?user=&keep=``: log in, flash "Logged in as <user>", 302 to ``/``.
* ``POST /logout``: log out, 200. ``GET /whoami``: ``{"user": ...}``.
* ``POST /action``, ``PUT/PATCH/DELETE /action``: 200 "done".
* ``POST /hook``: `csrf_exempt`.
* ``POST /flash?msg=&cat=``: flash, 302 to ``/notices``.
* ``GET /notices[?cat=a,b]``: the flashed (category, message) pairs, as JSON.
* ``GET /notices-twice``: `get_flashed_messages` called twice in one request.
"""

from __future__ import annotations

import uuid
from typing import Any

from sanic import Request, Sanic, json, text
from sanic.response import HTTPResponse, redirect

from sanic_cookies import (
    AuthSession,
    Backend,
    CSRFProtect,
    csrf_exempt,
    csrf_token,
    flash,
    get_flashed_messages,
)

Sanic.test_mode = True


def build_web_app(backend: Backend | str, **csrf: Any) -> tuple[Sanic[Any, Any], AuthSession]:
    """The routes above on `backend`; `csrf` goes to `CSRFProtect`."""
    app: Sanic[Any, Any] = Sanic(f"web_{uuid.uuid4().hex}")
    auth = AuthSession(app, backend=backend)
    CSRFProtect(app, **csrf)

    @app.get("/form")
    async def form(request: Request) -> HTTPResponse:
        return text(await csrf_token(request))

    @app.post("/login")
    async def login(request: Request) -> HTTPResponse:
        user = request.args.get("user") or "alice"
        await auth.login_user(request, user, keep_data=request.args.get("keep") == "1")
        await flash(request, f"Logged in as {user}", "success")
        return redirect("/")

    @app.get("/whoami")
    async def whoami(request: Request) -> HTTPResponse:
        return json({"user": await auth.current_user(request)})

    @app.post("/logout")
    async def logout(request: Request) -> HTTPResponse:
        await auth.logout_user(request)
        return text("bye")

    @app.route("/action", methods=["POST", "PUT", "PATCH", "DELETE"])
    async def action(request: Request) -> HTTPResponse:
        return text("done")

    @app.post("/hook")
    @csrf_exempt
    async def hook(request: Request) -> HTTPResponse:
        return text("hooked")

    @app.post("/flash")
    async def add_flash(request: Request) -> HTTPResponse:
        await flash(request, request.args.get("msg", ""), request.args.get("cat", "info"))
        return redirect("/notices")

    @app.get("/notices")
    async def notices(request: Request) -> HTTPResponse:
        wanted = [c for c in request.args.get("cat", "").split(",") if c]
        return json(await get_flashed_messages(request, True, wanted))

    @app.get("/notices-twice")
    async def notices_twice(request: Request) -> HTTPResponse:
        first = await get_flashed_messages(request)
        second = await get_flashed_messages(request)
        return json([first, second])

    return app, auth
