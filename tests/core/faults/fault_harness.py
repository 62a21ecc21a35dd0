"""The app, routes and store checks the fault-injection tests share.

`build_rig` puts one or more stores behind an `AuthSession` (a `Session` with
logins, so the per-user index operations are reachable), wraps one store in a
`FaultyBackend`, and mounts routes that each reach one backend operation:

========================  =====================================================
``/peek``                 ``await load()``: load (and touch when a refresh is due)
``/uset?n=V``             ``await load()`` then set: an unlocked save
``/udestroy``             ``await load()`` then destroy(): an unlocked delete
``/get``                  ``async with``, reading only: lock acquire + release
``/set?n=V``              ``async with`` set: save_and_release (save for a new session)
``/destroy``              ``async with`` destroy(): delete_and_release
``/extend?n=V``           ``async with`` extend_lock() then set: extend + save_and_release
``/login``                ``login_user("u1")``
``/list``                 ``list_sessions("u1")``: list_user_sessions
``/logout-all``           ``logout_everywhere("u1")``: delete_user_sessions
========================  =====================================================
"""

from __future__ import annotations

import dataclasses
from typing import Any

from core_support import get, new_app, parse_set_cookie, set_cookie_headers
from sanic import Request, Sanic, json
from sanic.response import HTTPResponse

from sanic_cookies import AuthSession, Backend, MultiBackend
from sanic_cookies._ids import store_key
from sanic_cookies._record import decode_data, decode_record
from sanic_cookies.testing import FaultyBackend

USER = "u1"


@dataclasses.dataclass
class Rig:
    """One test app and what the checks need to see behind it."""

    app: Sanic[Any, Any]
    auth: AuthSession
    readers: list[Backend]  # one per store, primary first: read what is really stored
    labels: list[str]  # each store's label in `auth.metrics`
    faulty: FaultyBackend
    faulty_index: int  # which store the FaultyBackend wraps (0: the primary)

    async def states(self, key: str | None) -> list[dict[str, Any] | None]:
        """The session data each store holds under `key` (None: nothing)."""
        return [await stored_data(reader, key) for reader in self.readers]

    async def request(self, path: str, cookie: str | None = None, **kwargs: Any) -> Any:
        return await get(self.app, path, cookie, **kwargs)


async def stored_data(reader: Backend, key: str | None) -> dict[str, Any] | None:
    """The data dict of the record stored under `key`, or None if there is none."""
    if key is None:
        return None
    stored = await reader.load(key)
    if stored is None:
        return None
    record = decode_record(stored.value)
    assert record is not None, f"undecodable record under {key[:8]}: {stored.value!r}"
    return decode_data(bytes(record.data))


def session_cookie_of(response: Any) -> tuple[str, dict[str, str]] | None:
    """(value, attributes) of the response's Set-Cookie for ``session``, if any."""
    found = [parse_set_cookie(h) for h in set_cookie_headers(response)]
    mine = [(value, attrs) for name, value, attrs in found if name == "session"]
    assert len(mine) <= 1, f"several Set-Cookie headers for the session: {found}"
    return mine[0] if mine else None


def deletes_cookie(response: Any) -> bool:
    cookie = session_cookie_of(response)
    return cookie is not None and (cookie[0] == "" or cookie[1].get("max-age") == "0")


def key_of(cookie: str | None) -> str | None:
    """The store key behind a ``session=<id>`` Cookie header."""
    if cookie is None:
        return None
    return store_key(cookie.partition("=")[2])


def next_cookie(response: Any, cookie: str | None) -> str | None:
    """The Cookie header to send after `response` (it may set, keep or delete the cookie)."""
    set_cookie = session_cookie_of(response)
    if set_cookie is None:
        return cookie
    if deletes_cookie(response):
        return None
    return f"session={set_cookie[0]}"


def build_rig(
    backends: list[Backend],
    readers: list[Backend],
    *,
    faulty_index: int,
    **settings: Any,
) -> Rig:
    """An app whose session stores are `backends` (the first is the primary).

    The backend at `faulty_index` is wrapped in a `FaultyBackend`. Locks time
    out after one second and their leases last 30, so a lock left held shows
    up as a 503 on the next locked request rather than freeing itself.
    """
    faulty = FaultyBackend(backends[faulty_index])
    members = list(backends)
    members[faulty_index] = faulty
    # No back-off (retry_interval=0): every request tries every secondary; the tests count on it.
    backend = members[0] if len(members) == 1 else MultiBackend(*members, retry_interval=0.0)
    labels = list(backend.metrics) if isinstance(backend, MultiBackend) else [backend.label]
    app = new_app("faults")
    options: dict[str, Any] = {
        "secure": False,  # the test client sends cookies itself; no TLS here
        "warn_lock": False,
        "lock_timeout": 1.0,
        "lock_lease": 30.0,
        "expiry": 600.0,  # keys left in the shared Redis expire soon
        **settings,
    }
    auth = AuthSession(app, backend=backend, session_name="session", **options)
    add_fault_routes(app, auth)
    return Rig(app, auth, readers, labels, faulty, faulty_index)


def add_fault_routes(app: Sanic[Any, Any], auth: AuthSession) -> None:
    """The routes of the module docstring."""

    @app.get("/peek")
    async def peek(request: Request) -> HTTPResponse:
        sess = await request.ctx.session.load()
        return json(dict(sess))

    @app.get("/uset")
    async def uset(request: Request) -> HTTPResponse:
        sess = await request.ctx.session.load()
        sess["n"] = request.args.get("n")
        return json(dict(sess))

    @app.get("/udestroy")
    async def udestroy(request: Request) -> HTTPResponse:
        sess = await request.ctx.session.load()
        sess.destroy()
        return json({})

    @app.get("/get")
    async def locked_get(request: Request) -> HTTPResponse:
        async with request.ctx.session as sess:
            data = dict(sess)
        return json(data)

    @app.get("/set")
    async def locked_set(request: Request) -> HTTPResponse:
        async with request.ctx.session as sess:
            sess["n"] = request.args.get("n")
            data = dict(sess)
        return json(data)

    @app.get("/destroy")
    async def locked_destroy(request: Request) -> HTTPResponse:
        async with request.ctx.session as sess:
            sess.destroy()
        return json({})

    @app.get("/extend")
    async def locked_extend(request: Request) -> HTTPResponse:
        async with request.ctx.session as sess:
            await sess.extend_lock(5.0)
            sess["n"] = request.args.get("n")
            data = dict(sess)
        return json(data)

    @app.get("/login")
    async def login(request: Request) -> HTTPResponse:
        await auth.login_user(request, USER)
        return json({})

    @app.get("/list")
    async def list_sessions(request: Request) -> HTTPResponse:
        return json({"sessions": len(await auth.list_sessions(USER))})

    @app.get("/logout-all")
    async def logout_all(request: Request) -> HTTPResponse:
        return json({"ended": await auth.logout_everywhere(USER)})
