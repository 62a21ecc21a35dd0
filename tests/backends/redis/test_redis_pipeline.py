"""AutoPipeline: shared connection, replies matched to their commands, failures contained.

Each test runs its own redis-server (the shared one is never disturbed: some
tests kill connections or make the server sleep).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from environment import require_module
from redis.exceptions import ConnectionError, DataError, ResponseError, TimeoutError
from redis_procs import RedisServer

from sanic_cookies.backends.redis import RedisBackend
from sanic_cookies.backends.redis import _pipeline as pipeline_module
from sanic_cookies.backends.redis._pipeline import AutoPipeline
from sanic_cookies.testing import wait_until

pytestmark = pytest.mark.redis


@pytest.fixture
def server(own_redis: Callable[..., RedisServer]) -> RedisServer:
    return own_redis("--save", "", "--appendonly", "no", "--enable-debug-command", "local")


@pytest_asyncio.fixture
async def admin(server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    async with aioredis.Redis(port=server.port) as client:
        yield client


def pipeline_on(server: RedisServer, **options: Any) -> AutoPipeline:
    client = aioredis.Redis(port=server.port, **options)
    return AutoPipeline(client.connection_pool)


async def connected_clients(admin: aioredis.Redis) -> int:
    info = await admin.info("clients")
    return int(info["connected_clients"])


async def test_concurrent_commands_share_one_connection_and_get_their_own_replies(
    server: RedisServer, admin: aioredis.Redis
) -> None:
    pipe = pipeline_on(server)
    try:
        await asyncio.gather(*(pipe.execute("SET", f"k{i}", i) for i in range(300)))
        writer = pipe._conn._writer  # type: ignore[union-attr]
        assert writer is not None
        writes: list[int] = []
        real_writelines = writer.writelines

        def counted(chunks: Any) -> None:
            writes.append(1)
            real_writelines(chunks)

        writer.writelines = counted  # type: ignore[method-assign]
        replies = await asyncio.gather(*(pipe.execute("GET", f"k{i}") for i in range(300)))
        assert replies == [str(i).encode() for i in range(300)]
        assert len(writes) == 1  # the 300 commands of one tick went out together
        assert await connected_clients(admin) == 2  # admin and the pipeline's connection
    finally:
        await pipe.aclose()


async def test_an_error_reply_fails_only_its_own_command(server: RedisServer) -> None:
    pipe = pipeline_on(server)
    try:
        await pipe.execute("SET", "text", "x")
        conn_id = await pipe.execute("CLIENT", "ID")
        replies: tuple[Any, ...] = await asyncio.gather(
            pipe.execute("GET", "text"),
            pipe.execute("LPUSH", "text", "y"),  # WRONGTYPE
            pipe.execute("STRLEN", "text"),
            return_exceptions=True,
        )
        before, wrong, after = replies
        assert before == b"x"
        assert isinstance(wrong, ResponseError) and "WRONGTYPE" in str(wrong)
        assert after == 1
        assert await pipe.execute("CLIENT", "ID") == conn_id  # still in sync, not reconnected
    finally:
        await pipe.aclose()


async def test_an_argument_that_cannot_be_encoded_fails_only_its_own_command(
    server: RedisServer,
) -> None:
    pipe = pipeline_on(server)
    try:
        replies: tuple[Any, ...] = await asyncio.gather(
            pipe.execute("SET", "flag", True),  # redis-py refuses bools
            pipe.execute("ECHO", 10**30),
            return_exceptions=True,
        )
        assert isinstance(replies[0], DataError)
        assert replies[1] == b"1" + b"0" * 30
    finally:
        await pipe.aclose()


async def test_a_cancelled_caller_does_not_shift_the_replies(server: RedisServer) -> None:
    pipe = pipeline_on(server)
    try:
        await asyncio.gather(*(pipe.execute("SET", f"c{i}", i) for i in range(3)))

        async def get(i: int) -> bytes:
            return bytes(await pipe.execute("GET", f"c{i}"))

        tasks = [asyncio.ensure_future(get(i)) for i in range(3)]
        await asyncio.sleep(0)  # all three are written
        tasks[1].cancel()
        assert await tasks[0] == b"0"
        assert await tasks[2] == b"2"
        assert await pipe.execute("GET", "c1") == b"1"
    finally:
        await pipe.aclose()


async def test_a_reply_timeout_fails_the_commands_in_flight_then_it_reconnects(
    server: RedisServer,
) -> None:
    pipe = pipeline_on(server, socket_timeout=0.3)
    try:
        first_id = await pipe.execute("CLIENT", "ID")
        outcomes = await asyncio.gather(
            pipe.execute("DEBUG", "SLEEP", "0.8"),
            pipe.execute("PING"),
            return_exceptions=True,
        )
        assert [type(o) for o in outcomes] == [TimeoutError, TimeoutError]

        async def awake() -> bool:  # the server sleeps 0.8 s of its own time
            try:
                return bool(await pipe.execute("PING") == b"PONG")
            except TimeoutError:
                return False

        assert await wait_until(awake, 30)
        assert await pipe.execute("CLIENT", "ID") != first_id
    finally:
        await pipe.aclose()


async def test_the_reply_timeout_counts_from_the_last_reply_not_from_the_first_command(
    server: RedisServer,
) -> None:
    pipe = pipeline_on(server, socket_timeout=1.0)
    try:
        first_id = await pipe.execute("CLIENT", "ID")
        # 1.5 s of commands in all, each answered 0.1 s after it was sent. (Not in one
        # batch: Redis would send all its replies together, after 1.5 s.)
        for _ in range(15):
            assert await pipe.execute("DEBUG", "SLEEP", "0.1") == b"OK"
        assert await pipe.execute("CLIENT", "ID") == first_id
    finally:
        await pipe.aclose()


async def test_a_connection_the_server_closed_while_idle_is_replaced_unnoticed(
    server: RedisServer, admin: aioredis.Redis
) -> None:
    pipe = pipeline_on(server)
    try:
        first_id = await pipe.execute("CLIENT", "ID")
        assert await admin.client_kill_filter(_id=first_id) == 1
        await asyncio.sleep(0.1)  # the close reaches our side
        assert await pipe.execute("PING") == b"PONG"
        assert await pipe.execute("CLIENT", "ID") != first_id
    finally:
        await pipe.aclose()


async def test_a_server_that_is_gone_fails_the_waiting_commands(server: RedisServer) -> None:
    pipe = pipeline_on(server, socket_connect_timeout=1.0)
    try:
        assert await pipe.execute("PING") == b"PONG"
        server.stop()
        outcomes = await asyncio.gather(
            pipe.execute("PING"), pipe.execute("PING"), return_exceptions=True
        )
        assert all(isinstance(o, ConnectionError) for o in outcomes), outcomes
        server.start()
        assert await pipe.execute("PING") == b"PONG"
    finally:
        await pipe.aclose()


async def test_close_fails_what_is_queued_and_what_comes_later(
    server: RedisServer, admin: aioredis.Redis
) -> None:
    pipe = pipeline_on(server)
    assert await pipe.execute("PING") == b"PONG"
    queued = pipe.execute("PING")
    await pipe.aclose()
    with pytest.raises(ConnectionError):
        await queued
    with pytest.raises(ConnectionError):
        await pipe.execute("PING")
    assert await connected_clients(admin) == 1  # the pipeline's connection is gone


async def test_the_backend_can_send_each_command_through_the_pool(
    server: RedisServer, unique_prefix: str
) -> None:
    backend = RedisBackend.from_url(f"{server.url}?auto_pipeline=false", prefix=unique_prefix)
    await backend.open()
    try:
        assert backend._pipeline is None
        lock = backend.lock("k" * 64, timeout=1, lease=5)
        assert await lock.acquire() is None
        assert await lock.save_and_release(b"v", 30)
        stored = await backend.load("k" * 64)
        assert stored is not None and stored.value == b"v"
        assert backend._pipeline is None
    finally:
        await backend.close()


PACKERS = [
    pytest.param(pipeline_module._pack_in_python, id="python"),
    # None without hiredis: the test then skips, or fails where everything is installed.
    pytest.param(pipeline_module._c_pack, id="hiredis"),
]


@pytest.mark.parametrize("pack", PACKERS)
@pytest.mark.parametrize(
    "args",
    [
        ("EVALSHA", "a" * 40, 2, "s:{k}", "s:{k}:lock", "tok", b"\x00\xff" * 5000, 3600000, -1, 0),
        ("SET", "clé-ü", "välue", "PX", 10),
        ("GET", b"raw-key"),
    ],
)
def test_commands_are_packed_byte_for_byte_as_redis_py_packs_them(
    pack: Callable[..., bytes] | None, args: tuple[Any, ...]
) -> None:
    if pack is None:
        require_module("hiredis", "sanic-cookies-redis[hiredis]")
        pytest.fail("hiredis is importable, yet the pipeline found no C packer")
    expected = redis_py_pack(args, "utf-8")
    if pack is pipeline_module._pack_in_python:
        assert pack(args, "utf-8", "strict") == expected
    else:
        assert pack(args) == expected
    assert pipeline_module._pack(args, "utf-8", "strict") == expected
    assert pipeline_module._pack(args, "latin-1", "strict") == redis_py_pack(args, "latin-1")


@pytest.mark.parametrize("args", [("SET", "k", True), ("SCRIPT LOAD", "return 1"), (b"GET", "k")])
def test_anything_else_is_left_to_redis_py(args: tuple[Any, ...]) -> None:
    assert pipeline_module._pack(args, "utf-8", "strict") is None
    assert pipeline_module._pack(args, "latin-1", "strict") is None  # never the C packer


def redis_py_pack(args: tuple[Any, ...], encoding: str) -> bytes:
    conn = aioredis.Redis(encoding=encoding).connection_pool.make_connection()  # type: ignore[no-untyped-call]
    return b"".join(conn.pack_command(*args))
