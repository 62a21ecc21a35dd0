"""A small Sanic app on the Redis backend, run by the tests as a multi-worker server.

Settings come from the environment:

* ``SCT_REDIS_URL``, ``SCT_PREFIX``: the store and the key prefix;
* ``SCT_LOCK``: ``1`` the real backend, ``0`` the same backend with its lock
  replaced by a no-op (the control group that must lose updates);
* ``SCT_LEASE``, ``SCT_LOCK_TIMEOUT``: ``SESSION_LOCK_LEASE`` / ``SESSION_LOCK_TIMEOUT``;
* ``SCT_WORK``: seconds a handler spends inside ``async with`` (as real work would);
* ``SCT_SIGNAL``: a file ``/hold`` writes its worker's pid to once it holds the lock;
* ``SCT_POLL``: seconds between a waiting lock's polls of Redis (its fallback when
  no release wakes it), instead of the backend's short backoff;
* ``SCT_PORT``, ``SCT_WORKERS``: where and how many workers to run.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

from sanic import HTTPResponse, Request, Sanic, json

from sanic_cookies import AuthInfo, Session, SessionLock, StoredSession
from sanic_cookies.backends.redis import RedisBackend


class _NoLock(SessionLock):
    """What a backend without a lock does: load, then save, with nothing in between."""

    def __init__(self, backend: RedisBackend, key: str) -> None:
        self._backend = backend
        self._key = key

    async def acquire(self) -> StoredSession | None:
        return await self._backend.load(self._key)

    async def save_and_release(
        self, value: bytes, ttl: float, *, user_id: str | None = None, replace_only: bool = False
    ) -> bool:
        return await self._backend.save(
            self._key, value, ttl, user_id=user_id, replace_only=replace_only
        )

    async def delete_and_release(self) -> None:
        await self._backend.delete(self._key)

    async def release(self) -> None:
        pass

    async def extend(self, lease: float) -> None:
        pass


class NoLockRedisBackend(RedisBackend):
    """RedisBackend with its lock disabled: the control group of the lost-update test."""

    def lock(self, key: str, *, timeout: float, lease: float) -> Any:
        return _NoLock(self, key)


def build_app() -> Sanic[Any, Any]:
    env = os.environ
    if env.get("SCT_POLL"):
        from sanic_cookies.backends.redis import _lock

        poll = float(env["SCT_POLL"])
        _lock._FIRST_DELAY = _lock._MAX_DELAY = _lock._MAX_DELAY_SUBSCRIBED = poll
    backend_class = RedisBackend if env.get("SCT_LOCK", "1") == "1" else NoLockRedisBackend
    backend = backend_class.from_url(env["SCT_REDIS_URL"], prefix=env["SCT_PREFIX"])
    work = float(env.get("SCT_WORK", "0.002"))

    app = Sanic("sct_redis_app")
    app.config.SESSION_LOCK_LEASE = float(env.get("SCT_LEASE", "10"))
    app.config.SESSION_LOCK_TIMEOUT = float(env.get("SCT_LOCK_TIMEOUT", "60"))
    # Plain-http test clients: the test app (only) sends a non-Secure cookie.
    Session(app, backend=backend, secure=False, warn_lock=False)

    @app.get("/incr")
    async def incr(request: Request) -> HTTPResponse:
        async with request.ctx.session as sess:
            n = sess.get("n", 0) + 1
            await asyncio.sleep(work)
            sess["n"] = n
        return json({"n": n, "pid": os.getpid()})

    @app.get("/tag_incr")
    async def tag_incr(request: Request) -> HTTPResponse:
        """``/incr`` that also stores ``?tag=`` on first use and returns the stored one."""
        async with request.ctx.session as sess:
            tag = sess.setdefault("tag", request.args.get("tag", ""))
            sess["n"] = n = sess.get("n", 0) + 1
        return json({"n": n, "tag": tag, "pid": os.getpid()})

    @app.get("/read")
    async def read(request: Request) -> HTTPResponse:
        sess = await request.ctx.session.load()
        return json({"n": sess.get("n", 0), "pid": os.getpid()})

    @app.get("/hold")
    async def hold(request: Request) -> HTTPResponse:
        async with request.ctx.session as sess:
            sess["n"] = sess.get("n", 0) + 1000  # never committed: the worker dies first
            await asyncio.to_thread(Path(env["SCT_SIGNAL"]).write_text, str(os.getpid()))
            await asyncio.Event().wait()  # hang until the test kills this worker
        return json({"n": sess["n"]})

    @app.get("/login")
    async def login(request: Request) -> HTTPResponse:
        user_id = request.args.get("user", "u1")
        async with request.ctx.session as sess:
            sess.set_auth(AuthInfo(user=user_id, user_id=user_id, login_at=time.time()))
            sess.regenerate()  # a change of privilege gets a new session id
        return json({"user": user_id, "pid": os.getpid()})

    @app.get("/plain")
    async def plain(request: Request) -> HTTPResponse:
        return json({"pid": os.getpid()})

    return app


app = build_app()

if __name__ == "__main__":
    app.run(
        host="127.0.0.1",
        port=int(os.environ["SCT_PORT"]),
        workers=int(os.environ.get("SCT_WORKERS", "4")),
        access_log=False,
        motd=False,
    )
