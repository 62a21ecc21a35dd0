"""Memory as the primary, Redis as a secondary: a copy for others to read, and its outages.

These tests start their own ``redis-server`` on a free loopback port in a
temporary directory (the shared server at 6379 is never stopped), stop it in
the middle of the run and start it again.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from core_support import add_standard_routes, cookie_header, get, new_app
from fault_harness import key_of, stored_data
from fault_stores import backend_module, unavailable
from ports import free_port

from sanic_cookies import Backend, MultiBackend, Session
from sanic_cookies.clock import ManualClock

pytestmark = pytest.mark.redis


class RedisServer:
    """A redis-server process this test owns: no persistence, so a restart starts empty."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary is not None
        self.process = subprocess.Popen(
            [
                *(binary, "--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no", "--dir", str(self.workdir)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis-server did not come up on port {self.port}")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    backend_module("redis")
    if shutil.which("redis-server") is None:
        unavailable("redis-server is not installed")
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest_asyncio.fixture
async def reader(own_redis: RedisServer, run_id: str) -> AsyncIterator[Any]:
    """``await reader()``: a freshly opened RedisBackend on the copy's keys (closed at the end)."""
    module = backend_module("redis")
    prefix = f"sctest:{run_id}:outage:"
    opened: list[Backend] = []

    async def make() -> Backend:
        backend: Backend = module.RedisBackend(own_redis.url, prefix=prefix)
        await backend.open()
        opened.append(backend)
        return backend

    make.prefix = prefix  # type: ignore[attr-defined]
    yield make
    for backend in opened:
        with contextlib.suppress(Exception):  # a reader of a server that is gone
            await backend.close()


async def _incr(app: Any, cookie: str | None) -> tuple[int, str]:
    response = await get(app, "/incr", cookie)
    assert response.status == 200, response.text
    return response.json["n"], cookie or cookie_header(response)


async def _same_everywhere(session: Session, redis: Backend, cookie: str) -> dict[str, Any]:
    """The copy in Redis is byte for byte the primary's; returns the data."""
    backend = session.backend
    assert isinstance(backend, MultiBackend)
    key = key_of(cookie)
    assert key is not None
    in_memory = await backend.primary.load(key)
    in_redis = await redis.load(key)
    assert in_memory is not None
    assert in_redis is not None, f"session {key[:8]} missing from Redis"
    assert in_redis.value == in_memory.value
    data = await stored_data(redis, key)
    assert data is not None
    return data


async def test_every_session_written_is_readable_from_redis_and_outages_do_not_stop_the_app(
    own_redis: RedisServer, reader: Any, manual_clock: ManualClock
) -> None:
    app = new_app("outage")
    session = Session(app, backend="memory://", secure=False, warn_lock=False, expiry=600)
    session.add_backend(own_redis.url, prefix=reader.prefix)
    add_standard_routes(app)

    # 1. Redis up: every write lands in both stores, identically.
    clients: list[str] = []
    for _ in range(5):
        n, cookie = await _incr(app, None)
        for _ in range(2):
            n, _ = await _incr(app, cookie)
        assert n == 3
        clients.append(cookie)
    redis = await reader()
    for cookie in clients:
        assert await _same_everywhere(session, redis, cookie) == {"n": 3}
    assert session.metrics["redis"].failures == 0

    # 2. Redis stopped: the app keeps serving every request from memory.
    own_redis.stop()
    statuses = []
    for cookie in clients:
        for _ in range(3):
            response = await get(app, "/incr", cookie)
            statuses.append(response.status)
        statuses.append((await get(app, "/read", cookie)).status)
    response = await get(app, "/incr")  # a session born during the outage
    statuses.append(response.status)
    clients.append(cookie_header(response))
    assert statuses == [200] * len(statuses)
    for cookie in clients[:-1]:
        assert (await get(app, "/read", cookie)).json == {"n": 6}
    outage = session.metrics["redis"]
    assert outage.failures >= 1, "the outage went unnoticed"

    # 3. Redis back (empty: it keeps nothing on disk). After the back-off, each
    # session's next write gives Redis the whole session again.
    own_redis.start()
    manual_clock.advance(1)  # MultiBackend's default retry_interval is one second
    for cookie in clients:
        await _incr(app, cookie)
    redis = await reader()
    for cookie in clients[:-1]:
        assert await _same_everywhere(session, redis, cookie) == {"n": 7}
    assert await _same_everywhere(session, redis, clients[-1]) == {"n": 2}
