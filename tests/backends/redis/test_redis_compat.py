"""The Redis backend's public-API fallbacks for redis-py's private attributes (`_compat`).

Every test here runs with `use_private_internals(False)`, as a redis-py without
those attributes would: the auto-pipeline's failure behaviour and a real locked
read-modify-write must hold on the fallbacks too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import pytest
import redis.asyncio as aioredis
from cluster_procs import OwnCluster, wait_for
from redis.crc import key_slot
from redis_procs import HOST, RedisServer

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
from sanic_cookies.backends.redis._cluster_pipeline import ClusterAutoPipeline

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

WAIT = 20.0  # seconds any one phase of the slot migration may take before the test fails


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
    assert redis_compat.cluster_primary is redis_compat._public_primary
    assert redis_compat.refresh_slot_map is redis_compat._public_refresh


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


async def test_a_slot_migration_is_followed_on_the_cluster_fallbacks(
    own_cluster: Callable[..., OwnCluster], unique_prefix: str
) -> None:
    """ASK, then MOVED and the slot map's refresh, through redis-py's public API only.

    Locked increments run on two sessions of one slot while the slot moves to
    another primary, as ``redis-cli --cluster reshard`` moves it (see
    test_redis_cluster_resharding.py, the same under a real app on the fast paths).
    """
    cluster = own_cluster(masters=3)
    backend = RedisBackend.from_url(cluster.url, prefix=unique_prefix)
    await backend.open()
    admins: dict[int, aioredis.Redis] = {}
    keys = ["compat-slot-a", "compat-slot-b"]
    slot = key_slot(keys[0].encode())
    keys[1] = next(k for k in (f"k{i}" for i in range(100_000)) if key_slot(k.encode()) == slot)
    acked: dict[str, list[int]] = {k: [] for k in keys}
    errors: list[str] = []
    done = False

    async def increments(key: str) -> None:
        while not done:
            lock = backend.lock(key, timeout=5, lease=5)
            try:
                stored = await lock.acquire()
                n = int(stored.value) + 1 if stored is not None else 1
                await lock.save_and_release(str(n).encode(), 300)
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                continue
            acked[key].append(n)

    pipeline = backend._pipeline
    assert isinstance(pipeline, ClusterAutoPipeline)
    load = asyncio.gather(*(increments(k) for k in keys))
    try:
        source = cluster.by_port(cluster.owner_port(slot))
        target = next(n for n in cluster.nodes if n is not source)
        admins = {n.port: aioredis.Redis(host=HOST, port=n.port) for n in cluster.nodes}
        ids = {
            port: (await admin.execute_command("CLUSTER", "MYID")).decode()
            for port, admin in admins.items()
        }
        await wait_for(lambda: all(len(a) >= 20 for a in acked.values()), WAIT, "no load")
        src, dst = admins[source.port], admins[target.port]
        await dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", ids[source.port])
        await src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", ids[target.port])
        while keys_left := await src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100):
            await src.execute_command("MIGRATE", HOST, target.port, "", 0, 5000, "KEYS", *keys_left)
        await wait_for(lambda: pipeline.asked > 0, WAIT, "no ASK followed")
        others = [port for port in admins if port not in (target.port, source.port)]
        for port in (target.port, source.port, *others):
            await admins[port].execute_command("CLUSTER", "SETSLOT", slot, "NODE", ids[target.port])
        await wait_for(lambda: pipeline.moved > 0, WAIT, "no MOVED followed")
        # The refreshed slot map names the new owner: MOVED replies stop.
        client = backend.client
        await wait_for(
            lambda: client.get_node_from_key(keys[0]).port == target.port,  # type: ignore[union-attr]
            WAIT,
            "the slot map was not refreshed",
        )
        moved, count = pipeline.moved, len(acked[keys[0]])
        await wait_for(lambda: len(acked[keys[0]]) >= count + 20, WAIT, "no load after")
        assert pipeline.moved == moved
    finally:
        done = True
        await load
        for admin in admins.values():
            await admin.aclose()
    try:
        assert errors == []
        for key, numbers in acked.items():
            stored = await backend.load(key)
            final = int(stored.value) if stored is not None else 0
            assert numbers == list(range(1, final + 1)), key  # none lost, none twice
    finally:
        await backend.close()
