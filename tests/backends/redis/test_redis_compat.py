"""The Redis backend's public-API fallbacks for redis-py's private attributes (`_compat`).

Every test here runs with `use_private_internals(False)`, as a redis-py without
those attributes would: the auto-pipeline's failure behaviour and a real locked
read-modify-write must hold on the fallbacks too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from redis_procs import RedisServer

# The auto-pipeline's behaviour checks, run again on the fallbacks. (Not the ones
# that patch the private stream writer, nor the replacement of a connection closed
# while idle, which the fallback finds out only by a failed command: see `_compat`.)
from test_redis_pipeline import (
    admin,
    server,
    test_a_cancelled_caller_does_not_shift_the_replies,
    test_a_reply_timeout_fails_the_commands_in_flight_then_it_reconnects,
    test_a_server_that_is_gone_fails_the_waiting_commands,
    test_an_argument_that_cannot_be_encoded_fails_only_its_own_command,
    test_an_error_reply_fails_only_its_own_command,
    test_close_fails_what_is_queued_and_what_comes_later,
    test_the_reply_timeout_counts_from_the_last_reply_not_from_the_first_command,
)

from sanic_cookies.backends.redis import RedisBackend
from sanic_cookies.backends.redis import _compat as redis_compat

__all__ = [
    "admin",
    "server",
    "test_a_cancelled_caller_does_not_shift_the_replies",
    "test_a_reply_timeout_fails_the_commands_in_flight_then_it_reconnects",
    "test_a_server_that_is_gone_fails_the_waiting_commands",
    "test_an_argument_that_cannot_be_encoded_fails_only_its_own_command",
    "test_an_error_reply_fails_only_its_own_command",
    "test_close_fails_what_is_queued_and_what_comes_later",
    "test_the_reply_timeout_counts_from_the_last_reply_not_from_the_first_command",
]

pytestmark = pytest.mark.redis


@pytest.fixture(autouse=True)
def public_api_only() -> Iterator[None]:
    redis_compat.use_private_internals(False)
    try:
        yield
    finally:
        redis_compat.use_private_internals(True)


def test_the_fallbacks_are_the_ones_in_use() -> None:
    assert redis_compat.write_batch is redis_compat._public_write
    assert redis_compat.connection_broken is redis_compat._public_broken


def test_this_redis_py_has_the_private_attributes_the_fast_paths_use() -> None:
    # If a redis-py release drops them, this fails first: the fallbacks serve meanwhile.
    assert redis_compat.PRIVATE_INTERNALS_AVAILABLE


async def test_locked_read_modify_writes_through_the_auto_pipeline_on_the_fallbacks(
    server: RedisServer, unique_prefix: str
) -> None:
    backend = RedisBackend.from_url(server.url, prefix=unique_prefix)
    await backend.open()
    key = "k" * 64

    async def incr() -> None:
        lock = backend.lock(key, timeout=10, lease=5)
        stored = await lock.acquire()
        n = 0 if stored is None else int(stored.value)
        assert await lock.save_and_release(str(n + 1).encode(), 30)

    try:
        await asyncio.gather(*(incr() for _ in range(20)))
        stored = await backend.load(key)
        assert stored is not None and stored.value == b"20"
    finally:
        await backend.close()
