"""Peer apps: another session library measured in the same run (sanic-session 0.8.0).

sanic-session is not a dependency of any sanic-cookies distribution: the nox ``bench``
session installs it, and the benchmark skips these apps when ``sanic_session`` does
not import. The apps answer the same paths as those in `bench.apps`, with the same
cookie name, lifetime and cookie attributes (HttpOnly, Secure, SameSite=Lax).

As published, sanic-session 0.8.0 does not work on Sanic 25, so two of its methods are
patched here, in these subclasses only (the library itself is left as installed):

1. ``_set_cookie_props`` writes ``response.cookies[name] = sid``; Sanic 25's
   ``CookieJar`` has no item assignment, so the response middleware raises
   ``TypeError`` and no Set-Cookie is ever sent (a new session every request). The
   patch sends the same cookie with ``response.add_cookie(...)``.
2. ``RedisSessionInterface.__init__`` refuses to run unless ``asyncio_redis`` (its
   unmaintained client) imports, though it only calls ``get`` and ``setex`` on what
   ``redis_getter`` returns, which redis-py's asyncio client takes in the same form.
   The patch skips that check and hands it a redis-py client.

Not patched, and never reached by these scenarios (every session they save holds
data): ``_delete_cookie`` (the same item assignment) and the Redis ``_delete_key``
(``delete([key])``, a list that redis-py refuses).

sanic-session takes no lock and writes the session and its cookie on every request,
read-only and untouched ones included: that is how it works, and what is measured.
"""

from __future__ import annotations

from typing import Any

from sanic import Request, Sanic
from sanic.response import HTTPResponse, text

from bench.apps import COOKIE, TTL, AppFactory, StoreOptions, _app, _ok, _routes, redis_client

#: The module that must import for the peer apps to run.
PEER_MODULE = "sanic_session"


def _settings(prefix: str) -> dict[str, Any]:
    return {
        "expiry": TTL,
        "prefix": prefix,
        "cookie_name": COOKIE,
        "domain": None,
        "httponly": True,
        "sessioncookie": False,
        "samesite": "Lax",
        "session_name": "session",
        "secure": True,
    }


class _AddCookie:
    """PATCH 1 (see the module docstring): Sanic 25's CookieJar has no item assignment."""

    cookie_name: str
    session_name: str
    expiry: int
    sessioncookie: bool
    httponly: bool
    domain: str | None
    samesite: Any
    secure: bool

    def _set_cookie_props(self, request: Request, response: HTTPResponse) -> None:
        # The same attributes sanic-session 0.8.0 sets, through the Sanic 25 API.
        lasting = not self.sessioncookie
        response.add_cookie(
            self.cookie_name,
            getattr(request.ctx, self.session_name).sid,
            httponly=self.httponly,
            max_age=self.expiry if lasting else None,
            expires=self._calculate_expires(self.expiry) if lasting else None,  # type: ignore[attr-defined]
            domain=self.domain,
            samesite=self.samesite,
            secure=self.secure,
        )


def _peer_app(name: str, interface: Any) -> Sanic[Any, Any]:
    # Untyped, and not installed outside the bench session: either code may apply.
    from sanic_session import Session  # type: ignore[import-untyped,import-not-found,unused-ignore]

    app = _app(name)
    Session(app, interface=interface)

    async def rmw(request: Request) -> HTTPResponse:
        sess = request.ctx.session
        n = sess.get("n", 0) + 1
        sess["n"] = n
        return text(str(n))

    async def read(request: Request) -> HTTPResponse:
        return text(str(request.ctx.session.get("n", 0)))

    _routes(app, rmw, _ok, read)
    return app


def sanic_session_memory_app(options: StoreOptions) -> Sanic[Any, Any]:
    """sanic-session 0.8.0 with ``InMemorySessionInterface`` (patch 1)."""
    from sanic_session import InMemorySessionInterface

    class Memory(_AddCookie, InMemorySessionInterface):  # type: ignore[misc]
        pass

    return _peer_app("sanic-session-memory", Memory(**_settings("session:")))


def sanic_session_redis_app(options: StoreOptions) -> Sanic[Any, Any]:
    """sanic-session 0.8.0 with ``RedisSessionInterface`` on redis-py (patches 1 and 2)."""
    import redis.asyncio as aioredis
    from sanic_session import RedisSessionInterface
    from sanic_session.base import (  # type: ignore[import-untyped,import-not-found,unused-ignore]
        BaseSessionInterface,
    )

    class Redis(_AddCookie, RedisSessionInterface):  # type: ignore[misc]
        def __init__(self, redis_getter: Any, **settings: Any) -> None:
            # PATCH 2 (see the module docstring): no asyncio_redis check.
            self.redis_getter = redis_getter
            BaseSessionInterface.__init__(self, **settings)

    async def redis_getter() -> aioredis.Redis:
        return client[0]  # `client` is bound below, once the app exists

    app = _peer_app(
        "sanic-session-redis", Redis(redis_getter, **_settings(options.prefix + "peer:"))
    )
    # Default client options, as for the redis-py floor and the backend.
    client = redis_client(app, options.redis_url)
    return app


#: Peer apps by name (`bench.server` serves these next to `bench.apps.APPS`).
PEER_APPS: dict[str, AppFactory] = {
    "sanic-session-memory": sanic_session_memory_app,
    "sanic-session-redis": sanic_session_redis_app,
}
