"""`max_size`: a session too large for a server-side store is refused before anything is written.

Through a real Sanic app on each server-side store (memory, the shared Redis,
PostgreSQL). The client gets a 500 and no Set-Cookie (it keeps its previous
cookie), the store keeps what it had, and the error names the size and the setting.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from core_support import cookie_header, get, new_app
from fault_harness import key_of, stored_data
from sanic import Request, json, text
from sanic.response import HTTPResponse

from sanic_cookies import (
    AuthSession,
    ConfigurationError,
    Session,
    SessionConfig,
    SessionTooLarge,
)
from sanic_cookies._record import encode_data
from sanic_cookies.testing import FaultyBackend

KINDS = ["memory", "redis", "postgres"]
WRITES = ("save", "save_and_release", "delete", "delete_and_release", "touch")


def blob_app(backend: Any, **settings: Any) -> tuple[Any, Session]:
    """``/blob?n=N``: the session holds "x" * N (written in ``async with``, or unlocked)."""
    app = new_app("size")
    session = Session(app, backend=backend, secure=False, warn_lock=False, **settings)

    @app.get("/blob")
    async def blob(request: Request) -> HTTPResponse:
        async with request.ctx.session as sess:
            sess["blob"] = "x" * int(request.args["n"][0])
        return text("stored")

    @app.get("/blob-unlocked")
    async def blob_unlocked(request: Request) -> HTTPResponse:
        sess = await request.ctx.session.load()
        sess["blob"] = "x" * int(request.args["n"][0])
        return text("stored at response time")

    @app.get("/catch")
    async def catch(request: Request) -> HTTPResponse:
        try:
            async with request.ctx.session as sess:
                sess["blob"] = "x" * int(request.args["n"][0])
        except SessionTooLarge as exc:
            return json({"error": str(exc), "size": exc.size, "limit": exc.limit}, status=413)
        return text("stored")

    return app, session


def n_for(size: int) -> int:
    """The N whose ``{"blob": "x" * N}`` encodes to exactly `size` bytes."""
    n = size
    while len(encode_data({"blob": "x" * n})) > size:
        n -= 1
    assert len(encode_data({"blob": "x" * n})) == size
    return n


def writes(backend: FaultyBackend) -> int:
    return sum(backend.calls[op] for op in WRITES)


@pytest.mark.parametrize("kind", KINDS)
async def test_a_session_over_the_default_64_kib_is_refused_and_nothing_is_stored(
    kind: str, stores: Any, tag: str, caplog: pytest.LogCaptureFixture
) -> None:
    store, reader = await stores(kind, tag)
    backend = FaultyBackend(store)
    app, _ = blob_app(backend)
    n_max = n_for(64 * 1024)
    response = await get(app, f"/blob?n={n_max}")  # exactly the limit: fine
    assert response.status == 200, response.text
    cookie = cookie_header(response)
    assert await stored_data(reader, key_of(cookie)) == {"blob": "x" * n_max}

    before = writes(backend)
    for path in ("/blob", "/blob-unlocked"):
        for n in (n_max + 1, 5_000_000):  # one byte over; the 5 MB that 1.0 stored
            with caplog.at_level(logging.ERROR):
                for sent in (cookie, None):  # the existing session, and a new one
                    response = await get(app, f"{path}?n={n}", sent)
                    assert response.status == 500, (path, n, response.status)
                    assert response.headers.get_list("set-cookie") == []
    assert writes(backend) == before, "something was written"
    assert await stored_data(reader, key_of(cookie)) == {"blob": "x" * n_max}
    logged = [r for r in caplog.records if r.exc_info and r.exc_info[0] is SessionTooLarge]
    assert logged, "the developer sees the error in the log"


async def test_the_error_names_the_size_and_the_setting() -> None:
    app, _ = blob_app("memory://")
    response = await get(app, "/catch?n=70000")
    assert response.status == 413  # what this app chose to answer
    body = response.json
    size = len(encode_data({"blob": "x" * 70000}))
    assert (body["size"], body["limit"]) == (size, 65536)
    assert f"is {size} bytes" in body["error"]
    assert "max_size (SESSION_MAX_SIZE)" in body["error"]

    auth_app = new_app("size")
    auth = AuthSession(auth_app, backend="memory://", secure=False)

    @auth_app.get("/big")
    async def big(request: Request) -> HTTPResponse:
        try:
            async with request.ctx.auth_session as sess:
                sess["blob"] = "x" * 70000
        except SessionTooLarge as exc:
            return text(str(exc))
        return text("stored")

    assert auth.config.max_size == 65536
    assert "max_size (AUTH_SESSION_MAX_SIZE)" in (await get(auth_app, "/big")).text


@pytest.mark.parametrize("kind", ["memory", "redis"])
async def test_max_size_is_a_setting_and_none_turns_it_off(
    kind: str, stores: Any, tag: str
) -> None:
    store, reader = await stores(kind, tag)
    app, session = blob_app(store, max_size=None)
    assert session.config.max_size is None
    response = await get(app, "/blob?n=5000000")
    assert response.status == 200
    assert await stored_data(reader, key_of(cookie_header(response))) == {"blob": "x" * 5_000_000}

    app = new_app("size")
    app.config.SESSION_MAX_SIZE = 1000
    session = Session(app, backend="memory://", secure=False)
    assert session.config.max_size == 1000
    app = new_app("size")
    app.config.SESSION_MAX_SIZE = None
    assert Session(app, backend="memory://").config.max_size is None


@pytest.mark.parametrize("bad", [0, -1, 2.5, "64k", True])
def test_bad_max_size(bad: Any) -> None:
    with pytest.raises(ConfigurationError, match="SESSION_MAX_SIZE"):
        SessionConfig.resolve({"max_size": bad}, {})
