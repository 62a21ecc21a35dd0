"""A Redis secondary that misses a logout loses the copy once it is back, also after a restart.

The primary is durable: the shared Redis (a fresh key prefix) or PostgreSQL (a
fresh table). The secondary is a redis-server this test owns on a spare port,
stopped during the logout and started again with its data (it saves to disk on
SIGTERM, so the copy really survives the outage). Time on the library's clock is
moved by the test; the background retry task runs on its own, with no request
to trigger it.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fault_stores import backend_module
from sanic import Request, Sanic, json, text
from sanic.response import HTTPResponse
from serving import serving

from sanic_cookies import AuthSession, Backend, MultiBackend
from sanic_cookies._ids import store_key
from sanic_cookies._pending import reserved_key

# The redis-server helpers of the Redis backend's tests.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "backends" / "redis"))
from redis_procs import RedisServer, free_port

pytestmark = pytest.mark.redis

Sanic.test_mode = True

RETRY = 30.0  # library seconds: the copy must be gone this long after the secondary failed
WITHIN = 15.0  # real seconds the background task may take to get there (a busy machine)
COOKIE = "auth_session"
PRIMARIES = ["redis", "postgres"]


class Clock:
    """The library clock of `MultiBackend`, moved forward by the test."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.offset = 0.0
        module = importlib.import_module("sanic_cookies._multi")
        monkeypatch.setattr(module, "now", self.now, raising=False)

    def now(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    return Clock(monkeypatch)


class Copy:
    """The secondary: its own redis-server (saving to disk when stopped) and a key prefix."""

    def __init__(self, server: RedisServer, prefix: str) -> None:
        self.server = server
        self.prefix = prefix

    def backend(self) -> Backend:
        module = backend_module("redis")
        backend: Backend = module.RedisBackend(self.server.url, prefix=self.prefix)
        return backend

    @contextlib.asynccontextmanager
    async def reader(self) -> AsyncIterator[Backend]:
        backend = self.backend()
        await backend.open()
        try:
            yield backend
        finally:
            await backend.close()


@pytest.fixture
def copy(tmp_path: Path, run_id: str) -> Iterator[Copy]:
    backend_module("redis")
    server = RedisServer(tmp_path / "copy", free_port(), ["--save", "3600 1"])
    server.start()
    try:
        yield Copy(server, f"sctest:{run_id}:copy:{uuid.uuid4().hex[:8]}:")
    finally:
        server.stop()


def build_app(primary: Backend, secondary: Backend) -> tuple[Sanic[Any, Any], MultiBackend]:
    """An app whose AuthSession reads `primary` and copies every write to `secondary`."""
    app = Sanic(f"copies_{uuid.uuid4().hex}")
    multi = MultiBackend(primary, secondary, secondary_timeout=2.0, retry_interval=RETRY)
    auth = AuthSession(app, backend=multi, session_name=COOKIE, secure=False)

    @app.get("/login/<name>")
    async def login(request: Request, name: str) -> HTTPResponse:
        await auth.login_user(request, name)
        return text("in")

    @app.get("/whoami")
    async def whoami(request: Request) -> HTTPResponse:
        return json({"user": await auth.current_user(request)})

    @app.get("/logout")
    async def logout(request: Request) -> HTTPResponse:
        await auth.logout_user(request)
        return text("out")

    @app.get("/everywhere/<name>")
    async def everywhere(request: Request, name: str) -> HTTPResponse:
        return json({"ended": await auth.logout_everywhere(name)})

    @app.get("/destroy")
    async def destroy(request: Request) -> HTTPResponse:
        async with request.ctx.auth_session as sess:
            sess.destroy()
        return text("destroyed")

    return app, multi


def record_key(multi: MultiBackend) -> str:
    """The primary's key for the deletes the secondary missed."""
    return reserved_key(list(multi.metrics)[1])


@contextlib.asynccontextmanager
async def served(app: Sanic[Any, Any]) -> AsyncIterator[httpx.AsyncClient]:
    """Serve `app` in this loop (started once, as in production; see `serving.serving`)."""
    async with (
        serving(app) as address,
        httpx.AsyncClient(base_url=f"http://{address}", timeout=30) as client,
    ):
        yield client


async def log_in(client: httpx.AsyncClient, name: str) -> str:
    """Log `name` in, in a new session; the Cookie header of that session."""
    response = await client.get(f"/login/{name}")
    assert response.status_code == 200, response.text
    cookie = f"{COOKIE}={response.cookies[COOKIE]}"
    client.cookies.clear()  # every request sends exactly the cookie it is given
    return cookie


def key_of(cookie: str) -> str:
    return store_key(cookie.split("=", 1)[1])


async def eventually(condition: Callable[[], Awaitable[bool]]) -> bool:
    """Whether `condition` holds within WITHIN real seconds (the retry task works meanwhile)."""
    deadline = time.monotonic() + WITHIN
    while not await condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def all_gone(copy: Backend, cookies: list[str]) -> bool:
    return all([await copy.load(key_of(c)) is None for c in cookies])


async def end_sessions(client: httpx.AsyncClient, how: str, cookies: list[str]) -> None:
    if how == "logout_everywhere":
        response = await client.get("/everywhere/ada", headers={"cookie": cookies[0]})
        assert response.json() == {"ended": len(cookies)}
        return
    for cookie in cookies:
        path = "/logout" if how == "logout_user" else "/destroy"
        response = await client.get(path, headers={"cookie": cookie})
        assert response.status_code == 200, response.text


@pytest.mark.parametrize("how", ["logout_user", "logout_everywhere", "destroy"])
@pytest.mark.parametrize("kind", PRIMARIES)
async def test_a_copy_that_missed_the_logout_is_deleted_once_the_secondary_is_back(
    kind: str, how: str, clock: Clock, copy: Copy, stores: Any, tag: str
) -> None:
    primary, primary_reader = await stores(kind, tag)
    app, multi = build_app(primary, copy.backend())
    async with served(app) as client:
        cookies = [await log_in(client, "ada") for _ in range(2)]
        async with copy.reader() as reader:
            for cookie in cookies:
                assert await reader.load(key_of(cookie)) is not None, "the copy was never written"

        copy.server.stop()  # the secondary is down during the logout
        await end_sessions(client, how, cookies)
        for cookie in cookies:  # the logout worked where it counts
            reply = await client.get("/whoami", headers={"cookie": cookie})
            assert reply.json() == {"user": None}
        assert await primary_reader.load(record_key(multi)) is not None, "not recorded"

        copy.server.start()  # back, with its data: the copies survived the outage
        async with copy.reader() as reader:
            for cookie in cookies:
                assert await reader.load(key_of(cookie)) is not None
            # Within the retry interval of the failure, with no request at all.
            clock.advance(RETRY)
            assert await eventually(lambda: all_gone(reader, cookies)), "a copy outlived logout"
            assert await reader.list_user_sessions("ada") == {}

        # Done: the primary no longer keeps the record (updated right after the deletes).
        async def record_gone() -> bool:
            return await primary_reader.load(record_key(multi)) is None

        assert await eventually(record_gone)


@pytest.mark.parametrize("kind", PRIMARIES)
async def test_the_retry_survives_a_restart_of_the_app(
    kind: str, copy: Copy, stores: Any, tag: str
) -> None:
    primary, primary_reader = await stores(kind, tag)
    first, multi = build_app(primary, copy.backend())
    async with served(first) as client:
        ada = await log_in(client, "ada")
        bob = await log_in(client, "bob")
        copy.server.stop()
        assert (await client.get("/logout", headers={"cookie": ada})).status_code == 200
        assert (await client.get("/everywhere/bob")).json() == {"ended": 1}
    # The first app is gone, and with it everything it kept in memory.
    assert await primary_reader.load(record_key(multi)) is not None, "not recorded"

    copy.server.start()
    async with copy.reader() as reader:
        assert await reader.load(key_of(ada)) is not None
        assert await reader.load(key_of(bob)) is not None
        # A new process: a new MultiBackend over the same primary data and the same copy.
        same_primary, _ = await stores(kind, tag)
        second, _ = build_app(same_primary, copy.backend())
        async with served(second):
            assert await eventually(lambda: all_gone(reader, [ada, bob])), (
                "the restarted app forgot the missed logouts"
            )

            async def record_gone() -> bool:
                return await primary_reader.load(record_key(multi)) is None

            assert await eventually(record_gone)
