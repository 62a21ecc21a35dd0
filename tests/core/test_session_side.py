"""Server-side or client-side storage is chosen once, when the session opens (`SessionSide`).

The request path (`SessionDict` and its parts) never asks which kind of backend it
has: the side, picked by `Session` when its backend opens, holds every difference.
"""

from __future__ import annotations

import ast
import base64
from pathlib import Path
from typing import Any

import msgspec
import pytest
from core_support import cookie_header, get, session_app
from sanic import Request, json, text
from sanic.response import HTTPResponse

from sanic_cookies import ClientSideBackend, SessionLock, StoredSession, _session_state
from sanic_cookies._client_side import ClientSide
from sanic_cookies._ids import store_key
from sanic_cookies._server_side import ServerSide
from sanic_cookies.clock import now

CORE = Path(__file__).parents[2] / "packages" / "core" / "src" / "sanic_cookies"
REQUEST_PATH = [
    "_session_dict.py",
    "_session_load.py",
    "_session_side.py",
    "_session_state.py",
    "_session_write.py",
    "_write_plan.py",
]


async def test_a_server_side_backend_gets_the_server_side_once() -> None:
    app, session = session_app(warn_lock=False)
    sides = []

    @app.get("/side")
    async def side(request: Request) -> HTTPResponse:
        sides.extend([session.side, session.side])
        return text("ok")

    cookie = cookie_header(await get(app, "/incr"))
    await get(app, "/side", cookie)
    assert isinstance(sides[0], ServerSide)
    assert sides[0] is sides[1]  # made when the session opened, not per use
    assert sides[0].backend is session.backend and sides[0].config is session.config


class PlainCookieBackend(ClientSideBackend):
    """The record itself in the cookie, base64 (a test stand-in: not signed, not encrypted)."""

    async def decode_cookie(self, token: str) -> StoredSession | None:
        try:
            expires_at, value = msgspec.json.decode(base64.urlsafe_b64decode(token))
        except (ValueError, msgspec.DecodeError):
            return None
        return StoredSession(value.encode(), expires_at) if expires_at > now() else None

    async def encode_cookie(
        self,
        value: bytes,
        ttl: float,
        *,
        previous: str | None = None,
        deadline: float | None = None,
    ) -> str:
        return base64.urlsafe_b64encode(msgspec.json.encode([now() + ttl, value.decode()])).decode()

    @classmethod
    def from_url(cls, url: str, **options: Any) -> PlainCookieBackend:
        return cls()


async def test_a_client_side_backend_gets_the_client_side() -> None:
    app, session = session_app(backend=PlainCookieBackend(), warn_lock=False)
    seen = []

    @app.get("/side")
    async def side(request: Request) -> HTTPResponse:
        seen.append(session.side)
        return text("ok")

    cookie = cookie_header(await get(app, "/incr"))
    assert (await get(app, "/incr", cookie)).json == {"n": 2}
    await get(app, "/side", cookie)
    assert isinstance(seen[0], ClientSide)


async def test_a_token_written_by_a_request_is_hashed_only_if_used_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A client-side write leaves the new token's store key to be worked out when needed
    # (a hash of the whole token): a returning visitor's read-modify-write hashes only
    # the cookie it brought, which it locks. A second `async with` in the same request
    # locks the new token under the key any request carrying it would use.
    app, session = session_app(backend=PlainCookieBackend(), warn_lock=False)
    hashed: list[str] = []
    monkeypatch.setattr(
        _session_state, "store_key", lambda sid: hashed.append(sid) or store_key(sid)
    )
    locked: list[str] = []

    @app.get("/twice")
    async def twice(request: Request) -> HTTPResponse:
        lock = session.backend.lock

        def recording(key: str, **options: float) -> SessionLock:
            locked.append(key)
            return lock(key, **options)

        monkeypatch.setattr(session.backend, "lock", recording)
        sess = request.ctx.session
        async with sess:
            sess["n"] = sess.get("n", 0) + 1
        written = sess.sid
        async with sess:
            sess["n"] += 1
        return json({"written": written, "label": sess.log_label, "sent": sess.sid})

    cookie = cookie_header(await get(app, "/incr"))
    brought = cookie.partition("=")[2].strip('"')  # (quoted: base64 padding)
    hashed.clear()
    assert (await get(app, "/incr", cookie)).json == {"n": 2}
    assert hashed == [brought]  # not the token the request wrote

    hashed.clear()
    response = await get(app, "/twice", cookie)
    reply = response.json
    assert locked == [store_key(brought), store_key(reply["written"])]
    assert hashed == [brought, reply["written"], reply["sent"]]  # the last for log_label
    assert reply["label"] == store_key(reply["sent"])[:8]
    assert (await get(app, "/locked-read", cookie_header(response))).json == {"n": 3}


def test_no_module_of_the_request_path_asks_whether_a_backend_is_client_side() -> None:
    # Only `Session` tells the two apart (once, when the session opens).
    asked = []
    for name in REQUEST_PATH:
        tree = ast.parse((CORE / name).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and node.id == "ClientSideBackend":
                asked.append(f"{name}:{node.lineno}")
            if isinstance(node, ast.Attribute) and node.attr in ("_client", "client"):
                asked.append(f"{name}:{node.lineno}")
    assert asked == []
