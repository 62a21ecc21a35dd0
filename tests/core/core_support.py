"""Helpers for the core's end-to-end tests: apps, requests, cookies, a counting backend.

Imported by the test modules of tests/core (pytest puts this directory on ``sys.path``).
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Mapping
from http.cookies import SimpleCookie
from typing import Any, ClassVar, Self

from sanic import Request, Sanic, json, text
from sanic.response import HTTPResponse

from sanic_cookies import Backend, Session, SessionLock, StoredSession
from sanic_cookies.backends.memory import MemoryBackend

Sanic.test_mode = True


class StoreDown(ConnectionError):
    """What a `CountingBackend` raises for an operation told to fail."""


class CountingBackend(Backend):
    """Wraps a `MemoryBackend`, counting every store call and failing the ones asked to.

    `calls` counts backend methods (``load``, ``save``, ...) and lock methods
    (``lock.acquire``, ``lock.save_and_release``, ...). Put an operation name in
    `fail` to make it raise `StoreDown` instead of reaching the store.
    """

    name: ClassVar[str] = "counting"
    supports_user_index: ClassVar[bool] = True

    def __init__(self, inner: MemoryBackend | None = None) -> None:
        self.inner = inner if inner is not None else MemoryBackend()
        self.calls: Counter[str] = Counter()
        self.fail: set[str] = set()

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        return cls()

    def _count(self, op: str) -> None:
        self.calls[op] += 1
        if op in self.fail:
            raise StoreDown(f"store down during {op}")

    def reset(self) -> None:
        """Forget the counts (not the data)."""
        self.calls.clear()

    def store_calls(self) -> dict[str, int]:
        """The counts as a plain dict, without zero entries."""
        return {op: n for op, n in self.calls.items() if n}

    async def open(self) -> None:
        await self.inner.open()

    async def close(self) -> None:
        await self.inner.close()

    async def load(self, key: str) -> StoredSession | None:
        self._count("load")
        return await self.inner.load(key)

    async def save(
        self,
        key: str,
        value: bytes,
        ttl: float,
        *,
        user_id: str | None = None,
        replace_only: bool = False,
    ) -> bool:
        self._count("save")
        return await self.inner.save(key, value, ttl, user_id=user_id, replace_only=replace_only)

    async def delete(self, key: str) -> None:
        self._count("delete")
        await self.inner.delete(key)

    async def touch(self, key: str, ttl: float) -> bool:
        self._count("touch")
        return await self.inner.touch(key, ttl)

    def lock(self, key: str, *, timeout: float, lease: float) -> SessionLock:
        return _CountingLock(self, self.inner.lock(key, timeout=timeout, lease=lease))

    async def list_user_sessions(self, user_id: str) -> Mapping[str, StoredSession]:
        self._count("list_user_sessions")
        return await self.inner.list_user_sessions(user_id)

    async def delete_user_sessions(self, user_id: str, *, keep: str | None = None) -> int:
        self._count("delete_user_sessions")
        return await self.inner.delete_user_sessions(user_id, keep=keep)


class _CountingLock(SessionLock):
    def __init__(self, backend: CountingBackend, inner: SessionLock) -> None:
        self._backend = backend
        self._inner = inner

    async def acquire(self) -> StoredSession | None:
        self._backend._count("lock.acquire")
        return await self._inner.acquire()

    async def save_and_release(
        self,
        value: bytes,
        ttl: float,
        *,
        user_id: str | None = None,
        replace_only: bool = False,
    ) -> bool:
        # On failure the in-process lock underneath stays held: the core must release() it.
        self._backend._count("lock.save_and_release")
        return await self._inner.save_and_release(
            value, ttl, user_id=user_id, replace_only=replace_only
        )

    async def delete_and_release(self) -> None:
        self._backend._count("lock.delete_and_release")
        await self._inner.delete_and_release()

    async def release(self) -> None:
        self._backend.calls["lock.release"] += 1  # counted, never failed: release is best effort
        await self._inner.release()

    async def extend(self, lease: float) -> None:
        self._backend._count("lock.extend")
        await self._inner.extend(lease)


def new_app(prefix: str = "sc") -> Sanic[Any, Any]:
    """A Sanic app with a name no other test uses."""
    return Sanic(f"{prefix}_{uuid.uuid4().hex}")


def session_app(**session_options: Any) -> tuple[Sanic[Any, Any], Session]:
    """An app with one `Session(app, **session_options)` and the standard routes below.

    Routes (all on the session named ``session``):

    * ``/untouched``: never uses the session.
    * ``/read``: ``await load()``, returns the data as JSON (unlocked; warns unless warn_lock off).
    * ``/locked-read``: ``async with``, changes nothing, returns the data.
    * ``/set?key=value&...``: sets each query argument (as a string) inside ``async with``.
    * ``/incr``: adds one to ``n`` inside ``async with``, returns the new value.
    * ``/regenerate``, ``/destroy``, ``/clear``: those operations inside ``async with``.
    """
    app = new_app()
    session = Session(app, **session_options)
    add_standard_routes(app)
    return app, session


def add_standard_routes(app: Sanic[Any, Any], name: str = "session") -> None:
    """Register the routes described in `session_app` for the session named `name`."""

    def sess(request: Request) -> Any:
        return getattr(request.ctx, name)

    @app.get("/untouched")
    async def untouched(request: Request) -> HTTPResponse:
        return text("untouched")

    @app.get("/read")
    async def read(request: Request) -> HTTPResponse:
        loaded = await sess(request).load()
        return json(dict(loaded))

    @app.get("/locked-read")
    async def locked_read(request: Request) -> HTTPResponse:
        async with sess(request) as s:
            data = dict(s)
        return json(data)

    @app.get("/set")
    async def set_values(request: Request) -> HTTPResponse:
        async with sess(request) as s:
            for key, value in request.args.items():
                s[key] = value[0]
            data = dict(s)
        return json(data)

    @app.get("/incr")
    async def incr(request: Request) -> HTTPResponse:
        async with sess(request) as s:
            s["n"] = n = s.get("n", 0) + 1
        return json({"n": n})

    @app.get("/regenerate")
    async def regenerate(request: Request) -> HTTPResponse:
        async with sess(request) as s:
            s.regenerate()
        return text("ok")

    @app.get("/destroy")
    async def destroy(request: Request) -> HTTPResponse:
        async with sess(request) as s:
            s.destroy()
        return text("ok")

    @app.get("/clear")
    async def clear(request: Request) -> HTTPResponse:
        async with sess(request) as s:
            s.clear()
        return text("ok")


async def get(
    app: Sanic[Any, Any], path: str, cookie: str | bytes | None = None, **kwargs: Any
) -> Any:
    """GET `path` through the app's ASGI client, sending exactly `cookie` (``name=value``).

    The client's own cookie jar is emptied first, so nothing but `cookie` is sent.
    """
    client = app.asgi_client
    client.cookies.clear()
    headers = dict(kwargs.pop("headers", {}))
    if cookie is not None:
        headers["cookie"] = cookie
    _, response = await client.get(path, headers=headers, **kwargs)
    return response


def set_cookie_headers(response: Any) -> list[str]:
    """Every raw Set-Cookie header of `response`."""
    return list(response.headers.get_list("set-cookie"))


def parse_set_cookie(header: str) -> tuple[str, str, dict[str, str]]:
    """Split one raw Set-Cookie header into (name, value, attributes with lower-case names).

    Flag attributes (HttpOnly, Secure, Partitioned) map to ``""``.
    """
    first, *rest = (part.strip() for part in header.split(";"))
    name, _, value = first.partition("=")
    attrs: dict[str, str] = {}
    for part in rest:
        key, _, val = part.partition("=")
        attrs[key.strip().lower()] = val.strip()
    return name, value, attrs


def session_cookie(response: Any, name: str = "session") -> tuple[str, dict[str, str]]:
    """The value and attributes of the one Set-Cookie for cookie `name` (asserts there is one)."""
    found = [parse_set_cookie(h) for h in set_cookie_headers(response)]
    matching = [(value, attrs) for n, value, attrs in found if n == name]
    assert len(matching) == 1, f"expected one Set-Cookie for {name!r}, got {found}"
    return matching[0]


def cookie_header(response: Any, name: str = "session") -> str:
    """``name=value`` for the Cookie header of the next request, from `response`'s Set-Cookie."""
    value, _ = session_cookie(response, name)
    return f"{name}={value}"


def simple_cookie(header: str) -> SimpleCookie:
    """Parse a Set-Cookie header with the standard library (a second opinion on the syntax)."""
    jar: SimpleCookie = SimpleCookie()
    jar.load(header)
    return jar
