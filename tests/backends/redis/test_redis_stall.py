"""A Redis that stalls (paused, not down) and then resumes.

A lock request whose reply never came may still run later: Redis runs what it had
queued once it resumes, in any order across connections, after its client gave up
(the request answered 503). The lock then voids that request's token (freeing the
lock if it was taken, and making a later run of it take nothing), retrying until
Redis answers: the session is free again at once, not when the lease ends.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis_procs import RedisServer

from sanic_cookies import KeyTurns, LockTimeout
from sanic_cookies._ids import new_session_id, store_key
from sanic_cookies.backends.redis import RedisBackend
from sanic_cookies.backends.redis._lock import RedisLock
from sanic_cookies.clock import ManualClock
from sanic_cookies.testing import decode_stored, encode_value

pytestmark = pytest.mark.redis

LEASE = 60.0  # what a stuck lock would cost: far longer than any wait below
WITHIN = 20.0  # a bound against a hang, not a speed check


async def test_a_voided_token_takes_nothing_when_its_acquire_runs_late(
    redis_url: str, unique_prefix: str
) -> None:
    # The order a stall can produce: the void first, then the acquire it voids.
    backend = RedisBackend.from_url(redis_url, prefix=f"{unique_prefix}void:")
    await backend.open()
    try:
        key = store_key(new_session_id())
        await backend.save(key, encode_value(1), 60)
        late = backend.lock(key, timeout=0.2, lease=LEASE)
        assert await late._store.void(key, late._token, 60_000) == 0  # held by nobody yet
        with pytest.raises(LockTimeout):
            await late.acquire()  # voided: it takes nothing (and waits its timeout)
        other = backend.lock(key, timeout=1, lease=LEASE)
        assert decode_stored(await other.acquire()) == 1  # free all along
        await other.release()
    finally:
        await backend.close()


@asynccontextmanager
async def _session_on_own_redis(
    own_redis: Callable[..., RedisServer], prefix: str
) -> AsyncIterator[tuple[RedisServer, RedisBackend, str]]:
    """A private redis-server, a backend on it (0.5 s reply timeout) and a saved session."""
    server = own_redis()
    assert server.process is not None
    backend = RedisBackend.from_url(server.url, prefix=prefix, socket_timeout=0.5)
    await backend.open()
    try:
        key = store_key(new_session_id())
        await backend.save(key, encode_value(1), 60)
        yield server, backend, key
    finally:
        await backend.close()


@contextmanager
def _stalled(server: RedisServer) -> Iterator[None]:
    """Redis paused for the block (SIGSTOP: its connections stay open, nothing answers)."""
    assert server.process is not None
    server.process.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        server.process.send_signal(signal.SIGCONT)


async def _gives_up(lock: RedisLock) -> None:
    """`lock`'s acquire fails (no reply from the stalled Redis), within `WITHIN`."""
    with pytest.raises(Exception):  # noqa: B017 (a reply timeout, whatever its type)
        await asyncio.wait_for(lock.acquire(), WITHIN)


async def _assert_free(backend: RedisBackend, key: str) -> None:
    """The session `key` (saved as 1) is free at once: a fresh lock takes it."""
    fresh = backend.lock(key, timeout=10, lease=LEASE)
    assert decode_stored(await asyncio.wait_for(fresh.acquire(), WITHIN)) == 1
    await fresh.release()


async def test_a_session_is_free_as_soon_as_a_stalled_redis_resumes(
    own_redis: Callable[..., RedisServer], unique_prefix: str
) -> None:
    async with _session_on_own_redis(own_redis, unique_prefix) as (server, backend, key):
        with _stalled(server):
            for _ in range(3):  # requests that give up while Redis queues their scripts
                await _gives_up(backend.lock(key, timeout=1, lease=LEASE))
        # Without the void, a queued acquire that ran on resume would hold the lock for
        # the whole lease: this lock would time out.
        await _assert_free(backend, key)


async def test_the_void_outlasts_the_lease_and_the_spent_lock_cannot_be_taken_again(
    own_redis: Callable[..., RedisServer], unique_prefix: str, manual_clock: ManualClock
) -> None:
    # A stall longer than the lease (on the library's clock, moved on here): the void
    # keeps trying past the lease, since the late acquire's lease starts only when
    # Redis runs it. And a lock whose acquire got no answer is spent: acquiring it
    # again would be undone by its own void.
    async with _session_on_own_redis(own_redis, unique_prefix) as (server, backend, key):
        lock = backend.lock(key, timeout=1, lease=5)
        with _stalled(server):
            await _gives_up(lock)
            with pytest.raises(RuntimeError, match="acquired once"):
                await lock.acquire()
            manual_clock.advance(10)  # twice the lease: the void must still be trying
        await _assert_free(backend, key)


class _ErrorReplies:
    """A lock store whose acquire loses its reply and whose void gets an error reply."""

    label = "fake"

    def __init__(self) -> None:
        self.voids = 0
        self.tasks: list[asyncio.Task[None]] = []
        self.turns = KeyTurns()

    def lock_keys(self, key: str, token: str) -> list[str]:
        return [key, key + ":lock", key + ":void"]

    async def take_turn(self, key: str, *, within: float, hold: float) -> Any:
        return await self.turns.take(key, within=within, hold=hold)

    async def acquire(self, keys: list[str], token: str, lease_ms: int) -> Any:
        raise RedisConnectionError("reply lost")

    async def void(self, key: str, token: str, keep_ms: int) -> Any:
        self.voids += 1
        raise ResponseError("OOM command not allowed when used memory > 'maxmemory'")

    def spawn(self, coro: Any) -> None:
        self.tasks.append(asyncio.ensure_future(coro))


async def test_a_void_answered_with_an_error_is_not_retried() -> None:
    # An error reply is an answer: retrying it for the lease would only add load to a
    # Redis already in trouble.
    store = _ErrorReplies()
    lock = RedisLock(store, "k", timeout=1, lease=5)  # type: ignore[arg-type]
    with pytest.raises(RedisConnectionError):
        await lock.acquire()
    await asyncio.wait_for(asyncio.gather(*store.tasks), WITHIN)
    assert store.voids == 1
