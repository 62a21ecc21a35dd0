"""A slot holding live sessions is migrated to another primary while locked increments run.

The migration is done by hand, as ``redis-cli --cluster reshard`` does it:
``CLUSTER SETSLOT IMPORTING`` / ``MIGRATING``, ``MIGRATE`` of the slot's keys
(sessions and their locks), then ``CLUSTER SETSLOT NODE``. Between the keys
moving and the slot changing owner the old owner answers ``ASK``; after, it
answers ``MOVED``. The test waits (with deadlines) until the backend has
followed both, so each path really ran under load, and checks that every
increment acknowledged with 200 is in the store afterwards.

The load comes from a real 2-worker Sanic app and from a backend in the test
process (whose redirection counters the test reads), on two more sessions in
the migrated slot.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis
from cluster_procs import (
    ClusterAppServer,
    LoadReport,
    OwnCluster,
    final_value,
    new_sessions,
    run_load,
    wait_for,
)
from redis.crc import key_slot
from redis.exceptions import TryAgainError
from redis_procs import HOST, app_env

from sanic_cookies.backends.redis import RedisBackend
from sanic_cookies.backends.redis._cluster_pipeline import TRYAGAIN_WITHIN, ClusterAutoPipeline
from sanic_cookies.clock import ManualClock, use_clock

pytestmark = [pytest.mark.redis, pytest.mark.slow]

SESSIONS = 12
CONCURRENCY = 8
ACKED_BEFORE = 100
ACKED_AFTER = 100
WAIT = 20.0  # seconds any one phase may take before the test fails
# TRYAGAIN replies one command could follow when they were counted (16 redirections,
# every other one an ASK), not timed: a slot held half-moved longer failed requests.
TRYAGAINS_OF_OLD = 8


def keys_in_slot(slot: int, count: int) -> list[str]:
    """`count` session keys whose data and lock keys hash to `slot`."""
    found = []
    for i in range(1_000_000):
        key = f"reshard-{i}"
        if key_slot(key.encode()) == slot:
            found.append(key)
            if len(found) == count:
                return found
    raise AssertionError(f"no keys found for slot {slot}")


async def test_a_slot_migrated_mid_load_loses_nothing_acknowledged(
    own_cluster: Callable[..., OwnCluster], unique_prefix: str, tmp_path: Path
) -> None:
    cluster = own_cluster(masters=3)
    env = app_env(cluster.url, unique_prefix, SCT_LEASE="5", SCT_LOCK_TIMEOUT="5", SCT_WORK="0")
    server = ClusterAppServer(tmp_path, env, workers=2)
    server.start()
    backend = RedisBackend.from_url(cluster.url, prefix=unique_prefix)
    await backend.open()
    admins: dict[int, aioredis.Redis] = {}
    try:
        pipeline = backend._pipeline
        assert isinstance(pipeline, ClusterAutoPipeline)
        limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
        async with httpx.AsyncClient(base_url=server.base, timeout=30, limits=limits) as client:
            sessions = await new_sessions(client, SESSIONS, unique_prefix, "reshard")
            slot = sessions[0].slot
            local_keys = keys_in_slot(slot, 2)
            source = cluster.by_port(cluster.owner_port(slot))
            target = next(n for n in cluster.nodes if n is not source)
            admins = {n.port: aioredis.Redis(host=HOST, port=n.port) for n in cluster.nodes}
            ids = {
                n.port: (await admins[n.port].execute_command("CLUSTER", "MYID")).decode()
                for n in cluster.nodes
            }

            report = LoadReport()
            local_acked: dict[str, list[int]] = {k: [] for k in local_keys}
            local_errors: list[str] = []
            done = False

            async def local_increments(key: str) -> None:
                while not done:
                    lock = backend.lock(key, timeout=5, lease=5)
                    try:
                        stored = await lock.acquire()
                        n = int(stored.value) + 1 if stored is not None else 1
                        await lock.save_and_release(str(n).encode(), 300)
                    except Exception as exc:
                        local_errors.append(f"{type(exc).__name__}: {exc}")
                        continue
                    local_acked[key].append(n)

            async def migrate() -> dict[str, float]:
                nonlocal done
                src, dst = admins[source.port], admins[target.port]
                await wait_for(lambda: report.statuses[200] >= ACKED_BEFORE, WAIT, "no load")
                started = time.monotonic()
                # Counted from here: a redirection can come as soon as a command is sent.
                asked = pipeline.asked
                await dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", ids[source.port])
                await src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", ids[target.port])
                moved_keys = 0
                for _ in range(1000):
                    keys = await src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100)
                    if not keys:
                        break
                    await src.execute_command(
                        "MIGRATE", HOST, target.port, "", 0, 5000, "KEYS", *keys
                    )
                    moved_keys += len(keys)
                else:
                    raise AssertionError("the slot's keys did not finish moving")
                await wait_for(lambda: pipeline.asked > asked, WAIT, "no ASK followed")
                # Held half-moved (keys on the target, slot still the source's) until some
                # lock has been refused with TRYAGAIN more often than a fixed count of tries
                # allowed (8): the split lasts as long as the migration of the whole slot.
                retried = pipeline.retried
                await wait_for(
                    lambda: pipeline.retried > retried + 2 * TRYAGAINS_OF_OLD, WAIT, "no TRYAGAIN"
                )
                half_moved = time.monotonic() - started
                moved = pipeline.moved
                for node in (
                    target,
                    source,
                    *(n for n in cluster.nodes if n not in (source, target)),
                ):
                    await admins[node.port].execute_command(
                        "CLUSTER", "SETSLOT", slot, "NODE", ids[target.port]
                    )
                await wait_for(lambda: pipeline.moved > moved, WAIT, "no MOVED followed")
                finished = time.monotonic() - started
                acked = report.statuses[200]
                await wait_for(
                    lambda: report.statuses[200] >= acked + ACKED_AFTER, WAIT, "no load after"
                )
                done = True
                return {"keys": moved_keys, "half_moved": half_moved, "finished": finished}

            load = asyncio.gather(
                run_load(client, sessions, report, lambda: done, CONCURRENCY),
                *(local_increments(k) for k in local_keys),
            )
            try:
                figures = await migrate()
            finally:
                done = True
                await load

            assert cluster.owner_port(slot) == target.port
            finals = {s.tag: await final_value(client, s) for s in sessions}
            lost = sum(s.lost(finals[s.tag]) for s in sessions)
            for key, acked in local_acked.items():
                stored = await backend.load(key)
                final = int(stored.value) if stored is not None else 0
                lost += len(acked) - len({n for n in acked if n <= final})
            print(
                f"\ncluster resharding: slot {slot} ({figures['keys']:.0f} keys) moved in "
                f"{figures['finished']:.2f}s under load; statuses {dict(report.statuses)}; "
                f"in-process {sum(map(len, local_acked.values()))} increments acknowledged, "
                f"{len(local_errors)} failed; followed MOVED {pipeline.moved}, "
                f"ASK {pipeline.asked}, TRYAGAIN {pipeline.retried}; "
                f"acknowledged but lost: {lost}"
            )
            assert lost == 0
            # Followed redirections are invisible to clients: not one request failed.
            assert report.statuses[503] == 0
            assert local_errors == []
            assert report.statuses[500] == 0, server.tail()
            assert set(report.statuses) <= {200, 503}, dict(report.statuses)
            assert report.wrong == []
            assert all(acked for acked in local_acked.values())
    finally:
        for admin in admins.values():
            await admin.aclose()
        await backend.close()
        server.stop()


async def test_a_slot_stuck_half_moved_fails_the_command_after_tryagain_within(
    own_cluster: Callable[..., OwnCluster], unique_prefix: str
) -> None:
    # A migration that never ends (an operator stopped halfway): the command split
    # across the two nodes retries TRYAGAIN, then fails once TRYAGAIN_WITHIN has passed
    # on the library's clock (advanced here, not waited for), instead of hanging.
    cluster = own_cluster(masters=3)
    backend = RedisBackend.from_url(cluster.url, prefix=unique_prefix)
    await backend.open()
    keys = ("{stuck}record", "{stuck}lock")  # one hash tag: one slot
    slot = key_slot(keys[0].encode())
    source = cluster.by_port(cluster.owner_port(slot))
    target = next(n for n in cluster.nodes if n is not source)
    src, dst = (
        aioredis.Redis(host=HOST, port=source.port),
        aioredis.Redis(host=HOST, port=target.port),
    )
    try:
        pipeline = backend._pipeline
        assert isinstance(pipeline, ClusterAutoPipeline)
        await src.set(keys[0], b"1")
        source_id = (await src.execute_command("CLUSTER", "MYID")).decode()
        target_id = (await dst.execute_command("CLUSTER", "MYID")).decode()
        await dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
        await src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
        await src.execute_command("MIGRATE", HOST, target.port, "", 0, 5000, "KEYS", keys[0])
        script = ("EVAL", "return redis.call('EXISTS', KEYS[1], KEYS[2])", 2, *keys)
        with use_clock(ManualClock()) as clock:
            split = asyncio.ensure_future(pipeline.execute(*script))
            await wait_for(lambda: pipeline.retried > TRYAGAINS_OF_OLD, WAIT, "no TRYAGAIN")
            assert not split.done()  # still retrying past the old fixed count
            clock.advance(TRYAGAIN_WITHIN)
            with pytest.raises(TryAgainError):
                await asyncio.wait_for(split, WAIT)
        for node in (target, source, *(n for n in cluster.nodes if n not in (source, target))):
            async with aioredis.Redis(host=HOST, port=node.port) as admin:
                await admin.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target_id)
        assert await pipeline.execute(*script) == 1  # the migration ended: answered
    finally:
        await src.aclose()
        await dst.aclose()
        await backend.close()
