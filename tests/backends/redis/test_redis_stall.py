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
from collections.abc import Callable

import pytest
from redis_procs import RedisServer

from sanic_cookies import LockTimeout
from sanic_cookies._ids import new_session_id, store_key
from sanic_cookies.backends.redis import RedisBackend
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


async def test_a_session_is_free_as_soon_as_a_stalled_redis_resumes(
    own_redis: Callable[..., RedisServer], unique_prefix: str
) -> None:
    server = own_redis()
    assert server.process is not None
    backend = RedisBackend.from_url(server.url, prefix=unique_prefix, socket_timeout=0.5)
    await backend.open()
    try:
        key = store_key(new_session_id())
        await backend.save(key, encode_value(1), 60)
        server.process.send_signal(signal.SIGSTOP)
        try:
            for _ in range(3):  # requests that give up while Redis queues their scripts
                with pytest.raises(Exception):  # noqa: B017 (a reply timeout, whatever its type)
                    await asyncio.wait_for(
                        backend.lock(key, timeout=1, lease=LEASE).acquire(), WITHIN
                    )
        finally:
            server.process.send_signal(signal.SIGCONT)
        # Without the void, a queued acquire that ran on resume would hold the lock for
        # the whole lease: this lock would time out.
        fresh = backend.lock(key, timeout=10, lease=LEASE)
        assert decode_stored(await asyncio.wait_for(fresh.acquire(), WITHIN)) == 1
        await fresh.release()
    finally:
        await backend.close()
