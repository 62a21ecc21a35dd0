"""Helpers for the AuthSession tests: a cookie-carrying client, test-only backends, the test app.

A `Browser` keeps its own cookies and sends them as a ``Cookie`` header, so
the product's Secure cookies need not be weakened for plain-http test clients.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import uuid
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Self

from core_support import CountingBackend
from sanic import Blueprint, Request, Sanic, json, text
from sanic.response import HTTPResponse, redirect
from sanic.views import HTTPMethodView

from sanic_cookies import (
    AuthSession,
    Backend,
    ClientSideBackend,
    LocalLock,
    SessionLock,
    StoredSession,
    UnsupportedOperation,
    fresh_login_required,
    login_required,
    safe_next,
)
from sanic_cookies.clock import now

Sanic.test_mode = True

COOKIE = "auth_session"


def parse_set_cookie(header: str) -> tuple[str, str, dict[str, str]]:
    """(name, value, attributes with lower-case names; flags map to "")."""
    first, *rest = (part.strip() for part in header.split(";"))
    name, _, value = first.partition("=")
    attrs = {}
    for part in rest:
        key, _, val = part.partition("=")
        attrs[key.strip().lower()] = val.strip()
    return name, value, attrs


class Browser:
    """One client with its own cookie jar, talking to `app` through its ASGI client."""

    def __init__(self, app: Sanic[Any, Any], cookies: Mapping[str, str] | None = None) -> None:
        self.app = app
        self.jar: dict[str, str] = dict(cookies or {})
        self.last_set: dict[str, dict[str, str]] = {}

    @property
    def cookie(self) -> str | None:
        """The auth session cookie this browser holds."""
        return self.jar.get(COOKIE)

    async def request(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = dict(kwargs.pop("headers", {}))
        if self.jar:
            headers["cookie"] = "; ".join(f"{k}={v}" for k, v in self.jar.items())
        client = self.app.asgi_client
        client.cookies.clear()  # only what this browser holds is sent
        _, response = await client.request(method, path, headers=headers, **kwargs)
        self.last_set = {}
        for header in response.headers.get_list("set-cookie"):
            name, value, attrs = parse_set_cookie(header)
            self.last_set[name] = {"value": value, **attrs}
            if attrs.get("max-age") == "0" or not value:
                self.jar.pop(name, None)
            else:
                self.jar[name] = value
        return response

    async def get(self, path: str, **kwargs: Any) -> Any:
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> Any:
        return await self.request("POST", path, **kwargs)

    async def whoami(self) -> Any:
        response = await self.get("/whoami")
        assert response.status == 200, response.text
        return response.json["user"]

    async def login(self, user: str = "alice", **args: Any) -> Any:
        response = await self.post("/login", params={"user": user, **args})
        assert response.status == 302, response.text
        return response

    def clone(self) -> Browser:
        """Another browser holding the same cookies (an attacker replaying them)."""
        return Browser(self.app, self.jar)


class ProxyBackend(CountingBackend):
    """A third-party-style backend the core knows nothing about; counts every store call.

    `CountingBackend`'s forwarding and counting, under its own name, with a plain
    `LocalLock` over this backend (not the memory store's lock): a locked load or
    save therefore goes through, and is counted as, `load` / `save`.
    """

    name: ClassVar[str] = "proxy"

    def __init__(self) -> None:
        super().__init__()
        self._locks: dict[str, Any] = {}

    def lock(self, key: str, *, timeout: float, lease: float) -> SessionLock:
        return LocalLock(self, self._locks, key, timeout=timeout)


class SignedCookieBackend(ClientSideBackend):
    """A minimal client-side backend (HMAC-signed, not encrypted) standing in for the cookie one.

    Revoked tokens (and the ones they replaced) are remembered, so logout and rotation are final.
    """

    name: ClassVar[str] = "signed-cookie"

    def __init__(self) -> None:
        super().__init__()
        self._secret = secrets.token_bytes(32)
        self.revoked: dict[str, float] = {}
        self.replaced: dict[str, str] = {}  # token -> the token it replaced in the same session

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        return cls()

    def _sign(self, body: str) -> str:
        mac = hmac.new(self._secret, body.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()

    async def encode_cookie(
        self,
        value: bytes,
        ttl: float,
        *,
        previous: str | None = None,
        deadline: float | None = None,
    ) -> str:
        payload = base64.urlsafe_b64encode(value).rstrip(b"=").decode()
        body = f"{int((now() + ttl) * 1000)}.{payload}.{secrets.token_hex(4)}"
        token = f"{body}.{self._sign(body)}"
        if previous is not None:
            self.replaced[token] = previous
        return token

    async def decode_cookie(self, token: str) -> StoredSession | None:
        body, _, mac = token.rpartition(".")
        if not body or not hmac.compare_digest(mac, self._sign(body)) or token in self.revoked:
            return None
        try:
            millis, payload, _nonce = body.split(".")
            expires = int(millis) / 1000
            value = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        except ValueError:
            return None
        if expires <= now():
            return None
        return StoredSession(value, expires)

    async def revoke_cookie(self, token: str, expires_at: float) -> None:
        current: str | None = token
        while current is not None and current not in self.revoked:
            self.revoked[current] = expires_at
            current = self.replaced.pop(current, None)


def _arg(request: Request, name: str) -> str | None:
    value = request.args.get(name)
    return value if isinstance(value, str) else None


def build_app(
    backend: Backend | str,
    *,
    user_loader: Callable[[Any], Any] | None = None,
    **settings: Any,
) -> tuple[Sanic[Any, Any], AuthSession]:
    """A real app with one AuthSession and the routes the tests drive.

    * ``POST /login?user=&remember=&keep=&inside=&duration=&next=``: log in, then
      302 to `safe_next`; ``inside=1`` logs in within ``async with``.
    * ``POST /logout[?inside=1]``, ``GET /whoami``, ``GET /cart``, ``POST /cart?item=``.
    * Guarded: ``/private`` (async), ``/private-sync``, ``/cbv``, ``/cbv-decorators``,
      ``/bp/private`` (blueprint middleware), ``/bp-routes/private`` (decorated route),
      ``/private-redirect``, ``/fresh`` (fresh within 2 s), ``/options-ok``.
    * ``POST /logout-everywhere[?keep=1]``, ``GET /devices``, ``POST /devices/end?handle=``.
    """
    app: Sanic[Any, Any] = Sanic(f"auth_{uuid.uuid4().hex}")
    auth = AuthSession(app, backend=backend, user_loader=user_loader, **settings)

    @app.post("/login")
    async def login(request: Request) -> HTTPResponse:
        user = {"id": _arg(request, "user"), "name": (_arg(request, "user") or "").title()}
        options: dict[str, Any] = {
            "remember": _arg(request, "remember") == "1",
            "keep_data": _arg(request, "keep") == "1",
        }
        if _arg(request, "duration"):
            options["duration"] = float(_arg(request, "duration") or 0)
        if _arg(request, "inside") == "1":
            async with request.ctx.auth_session as sess:
                await auth.login_user(request, user, **options)
                sess["note"] = "set after login in the same block"
        else:
            await auth.login_user(request, user, **options)
        return redirect(safe_next(request))

    @app.post("/logout")
    async def logout(request: Request) -> HTTPResponse:
        if _arg(request, "inside") == "1":
            async with request.ctx.auth_session:
                await auth.logout_user(request)
        else:
            await auth.logout_user(request)
        return text("bye")

    @app.get("/whoami")
    async def whoami(request: Request) -> HTTPResponse:
        return json({"user": await auth.current_user(request)})

    @app.get("/data")
    async def data(request: Request) -> HTTPResponse:
        async with request.ctx.auth_session as sess:
            return json(dict(sess))

    @app.post("/cart")
    async def add_to_cart(request: Request) -> HTTPResponse:
        async with request.ctx.auth_session as sess:
            sess["cart"] = [*sess.get("cart", []), _arg(request, "item")]
            return json(sess["cart"])

    @app.get("/cart")
    async def cart(request: Request) -> HTTPResponse:
        async with request.ctx.auth_session as sess:
            return json(sess.get("cart", []))

    @app.get("/private")
    @login_required()
    async def private(request: Request) -> HTTPResponse:
        return json({"hello": await auth.current_user(request)})

    @app.get("/private-sync")
    @auth.login_required()
    def private_sync(request: Request) -> HTTPResponse:
        return text("sync ok")

    class Guarded(HTTPMethodView):
        @login_required()
        async def get(self, request: Request) -> HTTPResponse:
            return text("cbv ok")

    class GuardedByList(HTTPMethodView):
        decorators: ClassVar[list[Any]] = [login_required()]

        def get(self, request: Request) -> HTTPResponse:
            return text("cbv decorators ok")

    app.add_route(Guarded.as_view(), "/cbv")
    app.add_route(GuardedByList.as_view(), "/cbv-decorators")

    bp = Blueprint(f"bp_{uuid.uuid4().hex[:8]}", url_prefix="/bp")
    bp.on_request(login_required().check)

    @bp.route("/options", methods=["GET", "OPTIONS"])
    async def bp_options(request: Request) -> HTTPResponse:
        return text(f"blueprint {request.method} ok")

    @bp.get("/private")
    async def bp_private(request: Request) -> HTTPResponse:
        return text("blueprint ok")

    bp_routes = Blueprint(f"bpr_{uuid.uuid4().hex[:8]}", url_prefix="/bp-routes")

    @bp_routes.get("/private")
    @login_required()
    async def bp_routes_private(request: Request) -> HTTPResponse:
        return text("blueprint route ok")

    @bp_routes.get("/public")
    async def bp_routes_public(request: Request) -> HTTPResponse:
        return text("public")

    app.blueprint(bp)
    app.blueprint(bp_routes)

    @app.get("/private-redirect")
    @login_required(redirect_to="/login-page")
    async def private_redirect(request: Request) -> HTTPResponse:
        return text("redirect ok")

    @app.get("/fresh")
    @fresh_login_required(2.0)
    async def fresh(request: Request) -> HTTPResponse:
        return text("fresh ok")

    @app.route("/fresh-options", methods=["GET", "OPTIONS"])
    @fresh_login_required(2.0)
    async def fresh_options(request: Request) -> HTTPResponse:
        return text(f"fresh {request.method} ok")

    @app.route("/options-ok", methods=["GET", "OPTIONS"])
    @login_required()
    async def options_ok(request: Request) -> HTTPResponse:
        return text(f"{request.method} ok")

    @app.post("/logout-everywhere")
    async def everywhere(request: Request) -> HTTPResponse:
        user = await auth.current_user(request)
        target = user if user is not None else {"id": _arg(request, "user")}
        keep = request if _arg(request, "keep") == "1" else None
        try:
            return json({"ended": await auth.logout_everywhere(target, keep=keep)})
        except UnsupportedOperation as exc:
            return json({"unsupported": str(exc)}, status=501)

    @app.get("/devices")
    @login_required()
    async def devices(request: Request) -> HTTPResponse:
        try:
            infos = await auth.list_sessions(await auth.current_user(request), current=request)
        except UnsupportedOperation as exc:
            return json({"unsupported": str(exc)}, status=501)
        return json(
            [
                {
                    "handle": i.handle,
                    "created": i.created.timestamp(),
                    "last_seen": i.last_seen.timestamp(),
                    "expires": i.expires.timestamp(),
                    "login_at": i.login_at.timestamp(),
                    "current": i.current,
                    "remember": i.remember,
                    "device": i.device,
                    "user_agent": i.user_agent,
                    "ip": i.ip,
                }
                for i in infos
            ]
        )

    @app.post("/devices/end")
    @login_required()
    async def end_device(request: Request) -> HTTPResponse:
        user = await auth.current_user(request)
        try:
            ended = await auth.logout_session(user, _arg(request, "handle") or "")
        except UnsupportedOperation as exc:
            return json({"unsupported": str(exc)}, status=501)
        return json({"ended": ended})

    return app, auth
