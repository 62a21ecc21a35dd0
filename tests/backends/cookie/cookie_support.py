"""Helpers for the cookie backend's tests: keys, a test app, a fast client that carries cookies.

Imported by the test modules of tests/backends/cookie (pytest puts this directory on
``sys.path``).
"""

from __future__ import annotations

import base64
import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
from sanic import Request, Sanic, json
from sanic.response import HTTPResponse
from sanic_testing.testing import SanicASGITestClient

from sanic_cookies import Backend, Session

Sanic.test_mode = True

COOKIE = "session"


def new_key() -> str:
    """A fresh key, as ``python -m sanic_cookies keygen`` prints it."""
    return base64.urlsafe_b64encode(os.urandom(32)).decode("ascii")


#: A key, and a token that sanic-cookies-cookie 1.0.0 (Fernet) wrote under it: session data
#: ``{"m": "from-1.0", "user": "ada"}``, valid until 2100, made by 1.0.0's own
#: ``CookieBackend.encode_cookie``.
V1_KEY = "FVpRhXtQwKbS9rc1cJ7oM2Yd8nE4uLzA0gTqHiWjXk4="
V1_TOKEN = (
    "gAAAAABrEzQrsq25iPJobJWJU2Zq8lI3yVGQ7aJEqN5H4AHkTUAmEsXDWrQpwTQ6WjPzKsHK08x1k-3siHfOlLPEj1"
    "-6vr0F4nSF1DglXa5GVU7orqqP1RLj_hC8btOmeLN35FRdvWdR5lA_-7xi0_KpjEuwKvcNUCSGYYzQkBwP7kP238O5"
    "ScH50bNNNLEiRufcxPDmErtx7ybWbwtEy-_JD_Vj3tosYA"
)


def derive(key: str) -> tuple[bytes, bytes]:
    """The AES-256-GCM key and the 4-byte key id of `key`, as docs/backend-cookie.md says."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    okm = HKDF(
        algorithm=hashes.SHA256(),
        length=36,
        salt=None,
        info=b"sanic-cookies token v2: AES-256-GCM key and key id",
    ).derive(base64.urlsafe_b64decode(key))
    return okm[:32], okm[32:]


def decrypt_v2(token: str, key: str) -> bytes:
    """The plaintext of a version-2 token, decrypted by the documented format alone."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    assert raw[0] == 0x02, "not a version-2 token"
    return AESGCM(derive(key)[0]).decrypt(raw[13:25], raw[25:], raw[:13])


def build_app(backend: Backend | str | None, **settings: Any) -> Sanic[Any, Any]:
    """A real app with one `Session` on `backend` (None: app.config) and these routes (JSON):

    * ``GET /mark?m=``: stores the marker ``m`` inside ``async with``.
    * ``GET /whoami``: ``async with``, returns ``{"m", "user", "new"}`` (changes nothing).
    * ``GET /peek``: the same through ``await load()`` (no lock).
    * ``POST /login?user=``: id rotation + ``user`` inside ``async with``.
    * ``POST /logout``: ``destroy()`` inside ``async with``.
    * ``POST /blob?n=``: stores ``n`` incompressible characters under ``blob``.
    * ``POST /blob-unlocked?n=``: the same without ``async with`` (written by the response).
    """
    app: Sanic[Any, Any] = Sanic(f"ck_{uuid.uuid4().hex}")
    settings.setdefault("warn_lock", False)
    Session(app, backend=backend, **settings)

    def describe(sess: Any) -> HTTPResponse:
        return json({"m": sess.get("m"), "user": sess.get("user"), "new": sess.is_new})

    @app.get("/mark")
    async def mark(request: Request) -> HTTPResponse:
        async with request.ctx.session as sess:
            sess["m"] = request.args.get("m")
        return describe(sess)

    @app.get("/whoami")
    async def whoami(request: Request) -> HTTPResponse:
        async with request.ctx.session as sess:
            return describe(sess)

    @app.get("/peek")
    async def peek(request: Request) -> HTTPResponse:
        return describe(await request.ctx.session.load())

    @app.post("/login")
    async def login(request: Request) -> HTTPResponse:
        async with request.ctx.session as sess:
            sess.regenerate()
            sess["user"] = request.args.get("user")
        return describe(sess)

    @app.post("/logout")
    async def logout(request: Request) -> HTTPResponse:
        async with request.ctx.session as sess:
            sess.destroy()
        return json({})

    @app.post("/blob")
    async def blob(request: Request) -> HTTPResponse:
        async with request.ctx.session as sess:
            sess["blob"] = _incompressible(int(request.args.get("n", "0")))
        return json({"n": len(sess["blob"])})

    @app.post("/blob-unlocked")
    async def blob_unlocked(request: Request) -> HTTPResponse:
        sess = await request.ctx.session.load()
        sess["blob"] = _incompressible(int(request.args.get("n", "0")))
        return json({"n": len(sess["blob"])})

    return app


def _incompressible(n: int) -> str:
    return base64.b64encode(os.urandom(n)).decode("ascii")[:n]


class Reply:
    """What a request got back: status, JSON body (None if not JSON), Set-Cookie headers."""

    def __init__(self, response: httpx.Response) -> None:
        self.status = response.status_code
        self.set_cookies = response.headers.get_list("set-cookie")
        try:
            self.json: Any = response.json()
        except ValueError:
            self.json = None
        self.text = response.text

    def cookie(self, name: str = COOKIE) -> str | None:
        """The value set for cookie `name` ("" for a deletion), or None if not set."""
        for header in self.set_cookies:
            first = header.split(";", 1)[0]
            key, _, value = first.partition("=")
            if key.strip() == name:
                return value.strip('"')  # Sanic writes a deletion cookie as name=""
        return None

    def set_cookie_header(self, name: str = COOKIE) -> str:
        """The whole Set-Cookie header value for cookie `name`."""
        for header in self.set_cookies:
            if header.split("=", 1)[0].strip() == name:
                return header
        raise AssertionError(f"no Set-Cookie for {name!r} in {self.set_cookies!r}")


class Client:
    """Talks to a started app over ASGI; the caller chooses the Cookie header of each request.

    Unlike ``app.asgi_client`` (which starts and stops the app around every
    request, ~30 ms), the app starts once, so thousands of requests are cheap.
    """

    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http

    async def request(
        self, method: str, path: str, cookie: str | bytes | None = None, **kwargs: Any
    ) -> Reply:
        """Send one request; `cookie` is the session cookie's value (sent as is)."""
        headers: dict[str, str | bytes] = {}
        if cookie is not None:
            prefix = f"{COOKIE}=".encode()
            headers["cookie"] = prefix + (cookie.encode() if isinstance(cookie, str) else cookie)
        response = await self._http.request(method, path, headers=headers, **kwargs)
        return Reply(response)

    async def raw(self, method: str, path: str, headers: dict[str, Any]) -> Reply:
        """Send one request with exactly `headers`."""
        return Reply(await self._http.request(method, path, headers=headers))


@contextlib.asynccontextmanager
async def serve(app: Sanic[Any, Any]) -> AsyncIterator[Client]:
    """Start `app` once (listeners included) and yield a `Client`; stop it afterwards."""
    transport = SanicASGITestClient(app)._transport  # patches the app for ASGI, like asgi_client
    app.router.reset()
    app.signal_router.reset()
    await app._startup()
    await app._server_event("init", "before")
    await app._server_event("init", "after")
    try:
        async with httpx.AsyncClient(
            transport=transport, base_url="http://127.0.0.1:42101"
        ) as http:
            yield Client(http)
    finally:
        await app._server_event("shutdown", "before")
        await app._server_event("shutdown", "after")
