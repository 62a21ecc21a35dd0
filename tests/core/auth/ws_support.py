"""Websocket end-to-end tests: a real server in the test's loop, a real websocket client.

`serving.serving(app)` runs the app on a socket of this loop (so the ``manual_clock``
fixture moves the server's clock too); `HttpBrowser` carries its cookies over real HTTP;
`add_websocket_routes` adds the websocket routes the tests drive to `auth_support.build_app`'s app.

The websocket ``/ws`` (and the guarded ``/ws-private``, ``/ws-hidden-guard``, ``/ws-fresh``
(a login of the last minute), ``/ws-redirect`` (to ``/login-page``), ``/ws-bp/feed`` (a
blueprint's ``on_request`` guard)) answer each
text message ``"<command> <argument>"`` with one JSON message: ``{"result": ...}`` or
``{"error": <exception class>, "message": ...}`` for a `SanicCookiesError`. Commands:
``whoami`` (in ``async with``), ``whoami-outside`` (``current_user`` outside a block),
``cart``, ``peek-cart`` (``peek`` outside a block), ``add <item>`` (a write in a block),
``set-outside`` (a write outside a block), ``plain-user`` (``.auth`` outside a block, no
load), ``load-user`` (``.auth`` after ``load()``), ``append-outside <item>`` (an in-place
change to the cart after ``load()``), ``note-outside <text>`` / ``note`` (a typed
session's field set after ``load()`` / read in a block), ``login-caught <user>``
(``login_user`` in a block, its refusal caught), ``clear`` (in a block), ``login <user>``,
``logout``, ``flash <message>``;
``hold <item>`` adds the item in a block and, answering ``{"result": "holding"}``, waits
inside it for a message.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
from auth_support import COOKIE, parse_set_cookie
from sanic import Blueprint, Request, Sanic
from websockets.asyncio.client import ClientConnection, connect

from sanic_cookies import (
    AuthSession,
    SanicCookiesError,
    flash,
    fresh_login_required,
    login_required,
)


class HttpBrowser:
    """A client over real HTTP keeping its own cookie jar (sent as a header, Secure ones too)."""

    def __init__(self, address: str, cookie: str | None = None) -> None:
        self.address = address
        self.cookie = cookie

    def headers(self) -> dict[str, str]:
        return {"cookie": f"{COOKIE}={self.cookie}"} if self.cookie else {}

    async def request(
        self, method: str, path: str, *, headers: dict[str, str] | None = None, **params: str
    ) -> httpx.Response:
        async with httpx.AsyncClient(base_url=f"http://{self.address}", timeout=30) as client:
            response = await client.request(
                method, path, params=params, headers={**self.headers(), **(headers or {})}
            )
        for header in response.headers.get_list("set-cookie"):
            name, value, attrs = parse_set_cookie(header)
            if name == COOKIE:
                self.cookie = None if attrs.get("max-age") == "0" or not value else value
        return response

    async def login(self, user: str = "alice", **params: str) -> None:
        response = await self.request("POST", "/login", user=user, **params)
        assert response.status_code == 302, response.text

    async def whoami(self) -> Any:
        response = await self.request("GET", "/whoami")
        assert response.status_code == 200, response.text
        return response.json()["user"]

    @contextlib.asynccontextmanager
    async def websocket(self, path: str = "/ws") -> AsyncIterator[Socket]:
        """A websocket to `path` sending this browser's cookie (as it is now)."""
        async with connect(f"ws://{self.address}{path}", additional_headers=self.headers()) as ws:
            yield Socket(ws)


class Socket:
    """The client end of ``/ws``: one command, one answer."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    async def ask(self, command: str, argument: str = "") -> dict[str, Any]:
        await self.ws.send(f"{command} {argument}")
        answer: dict[str, Any] = json.loads(await self.ws.recv())
        return answer

    async def result(self, command: str, argument: str = "") -> Any:
        answer = await self.ask(command, argument)
        assert "result" in answer, answer
        return answer["result"]


Command = Callable[[Request, str], Awaitable[Any]]


def _commands(auth: AuthSession) -> dict[str, Command]:
    async def whoami(request: Request, _: str) -> Any:
        async with request.ctx.auth_session:
            return await auth.current_user(request)

    async def whoami_outside(request: Request, _: str) -> Any:
        return await auth.current_user(request)

    async def cart(request: Request, _: str) -> Any:
        async with request.ctx.auth_session as sess:
            return sess.get("cart", [])

    async def peek_cart(request: Request, _: str) -> Any:
        return await request.ctx.auth_session.peek("cart")

    async def add(request: Request, item: str) -> Any:
        async with request.ctx.auth_session as sess:
            sess["cart"] = [*sess.get("cart", []), item]
            return sess["cart"]

    async def set_outside(request: Request, _: str) -> Any:
        request.ctx.auth_session["cart"] = ["outside"]

    async def plain_user(request: Request, _: str) -> Any:
        info = request.ctx.auth_session.auth  # a plain read outside a block
        return None if info is None else info.user

    async def load_user(request: Request, _: str) -> Any:
        info = (await request.ctx.auth_session.load()).auth
        return None if info is None else info.user

    async def append_outside(request: Request, item: str) -> Any:
        sess = await request.ctx.auth_session.load()
        sess["cart"].append(item)  # in place, outside a block: cannot be refused when made
        return sess["cart"]

    async def note_outside(request: Request, note: str) -> Any:
        (await request.ctx.auth_session.load()).data.note = note  # a typed session's field

    async def note(request: Request, _: str) -> Any:
        async with request.ctx.auth_session as sess:
            return sess.data.note

    async def login_caught(request: Request, user: str) -> Any:
        async with request.ctx.auth_session as sess:
            try:
                await auth.login_user(request, {"id": user, "name": user.title()})
            except SanicCookiesError as exc:
                return type(exc).__name__  # caught: the block goes on and ends cleanly
            return sess.get("cart", [])

    async def clear(request: Request, _: str) -> Any:
        async with request.ctx.auth_session as sess:
            sess.clear()

    async def login(request: Request, user: str) -> Any:
        await auth.login_user(request, {"id": user, "name": user.title()})

    async def logout(request: Request, _: str) -> Any:
        await auth.logout_user(request)

    async def add_flash(request: Request, message: str) -> Any:
        await flash(request, message)

    return {
        "whoami": whoami,
        "whoami-outside": whoami_outside,
        "cart": cart,
        "peek-cart": peek_cart,
        "add": add,
        "set-outside": set_outside,
        "plain-user": plain_user,
        "load-user": load_user,
        "append-outside": append_outside,
        "note-outside": note_outside,
        "note": note,
        "login-caught": login_caught,
        "clear": clear,
        "login": login,
        "logout": logout,
        "flash": add_flash,
    }


def add_websocket_routes(app: Sanic[Any, Any], auth: AuthSession) -> None:
    """The websocket routes above, on `app` (built by `auth_support.build_app`)."""
    commands = _commands(auth)

    async def serve(request: Request, ws: Any) -> None:
        while True:
            command, _, argument = (await ws.recv()).partition(" ")
            if command == "hold":
                await hold(request, ws, argument)
                continue
            try:
                answer = {"result": await commands[command](request, argument)}
            except SanicCookiesError as exc:
                answer = {"error": type(exc).__name__, "message": str(exc)}
            await ws.send(json.dumps(answer))

    async def hold(request: Request, ws: Any, item: str) -> None:
        # What a handler must not do: wait for the client inside the block. The client
        # then closes the connection: the block ends with ConnectionClosed.
        async with request.ctx.auth_session as sess:
            sess["cart"] = [*sess.get("cart", []), item]
            await ws.send(json.dumps({"result": "holding"}))
            await ws.recv()

    async def feed(request: Request, ws: Any) -> None:
        await serve(request, ws)

    @login_required()
    async def private_feed(request: Request, ws: Any) -> None:
        await serve(request, ws)

    guarded = login_required()(serve)

    async def hidden_guard(request: Request, ws: Any) -> None:
        # A wrapper that does not copy the guard's attributes (no functools.wraps): the
        # upgrade cannot be checked, so the guard checks the upgraded connection.
        await guarded(request, ws)

    @fresh_login_required(60.0)
    async def fresh_feed(request: Request, ws: Any) -> None:
        await serve(request, ws)

    @auth.login_required(redirect_to="/login-page")
    async def redirecting_feed(request: Request, ws: Any) -> None:
        await serve(request, ws)

    bp = Blueprint(f"ws_{uuid.uuid4().hex[:8]}", url_prefix="/ws-bp")
    bp.on_request(login_required().check)
    bp.add_websocket_route(feed, "/feed")

    app.add_websocket_route(feed, "/ws")
    app.add_websocket_route(private_feed, "/ws-private")
    app.add_websocket_route(hidden_guard, "/ws-hidden-guard")
    app.add_websocket_route(fresh_feed, "/ws-fresh")
    app.add_websocket_route(redirecting_feed, "/ws-redirect")
    app.blueprint(bp)
