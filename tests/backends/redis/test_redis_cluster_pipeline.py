"""Auto-pipelining on Redis Cluster: one connection and one write per primary and loop tick."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError
from redis_procs import HOST, RedisCluster

from sanic_cookies.backends.redis import RedisBackend
from sanic_cookies.backends.redis._cluster_pipeline import ClusterAutoPipeline

pytestmark = pytest.mark.redis

BURST = 300


async def connected_clients(ports: list[int]) -> list[int]:
    counts = []
    for port in ports:
        async with aioredis.Redis(host=HOST, port=port) as admin:
            counts.append(int((await admin.info("clients"))["connected_clients"]))
    return counts


async def burst(backend: RedisBackend, prefix: str, size: int = BURST) -> list[Any]:
    """`size` saves then `size` loads of keys spread over every slot owner, all at once."""
    keys = [f"{prefix}{i}" for i in range(size)]
    await asyncio.gather(*(backend.save(k, k.encode(), 60) for k in keys))
    loaded = await asyncio.gather(*(backend.load(k) for k in keys))
    return [s.value if s is not None else None for s in loaded]


async def test_commands_of_one_tick_go_out_in_one_write_per_primary(
    redis_cluster: RedisCluster, redis_key_prefix: str
) -> None:
    backend = RedisBackend.from_url(redis_cluster.url, prefix=f"{redis_key_prefix}cpipe:")
    await backend.open()
    try:
        pipeline = backend._pipeline
        assert isinstance(pipeline, ClusterAutoPipeline)
        await burst(backend, "warm")  # every primary's connection is open now
        nodes = pipeline._pipelines
        assert len(nodes) == 3  # one pipeline per primary, none for anything else
        writes: dict[str, int] = dict.fromkeys(nodes, 0)
        for name, node_pipeline in nodes.items():
            writer = node_pipeline._conn._writer  # type: ignore[union-attr]
            assert writer is not None
            real = writer.writelines

            def counted(chunks: Any, name: str = name, real: Any = real) -> None:
                writes[name] += 1
                real(chunks)

            writer.writelines = counted  # type: ignore[method-assign]
        ports = [node.port for node in redis_cluster.nodes]
        before = await connected_clients(ports)
        keys = [f"k{i}" for i in range(BURST)]
        loaded = await asyncio.gather(*(backend.load(k) for k in keys))
        assert [s.value if s is not None else None for s in loaded] == [None] * BURST
        assert writes == dict.fromkeys(nodes, 1)  # 300 scripts: 3 writes
        values = await burst(backend, "v")
        assert values == [f"v{i}".encode() for i in range(BURST)]
        assert await connected_clients(ports) == before  # no connection was added
    finally:
        await backend.close()


async def test_without_auto_pipeline_the_client_pool_opens_more_connections(
    redis_cluster: RedisCluster, redis_key_prefix: str
) -> None:
    """The control group of the test above: what the cluster client's pools do.

    A smaller burst: 300 at once exceed the pools' 100 connections per node
    (MaxConnectionsError) and time out connecting on a loaded machine.
    """
    backend = RedisBackend.from_url(
        redis_cluster.url, prefix=f"{redis_key_prefix}cpool:", auto_pipeline=False
    )
    await backend.open()
    try:
        assert backend._pipeline is None
        ports = [node.port for node in redis_cluster.nodes]
        before = await connected_clients(ports)
        values = await burst(backend, "v", 60)
        assert values == [f"v{i}".encode() for i in range(60)]
        after = await connected_clients(ports)
        assert sum(after) - sum(before) > len(ports)
    finally:
        await backend.close()


async def test_a_closed_backend_fails_stragglers_and_opens_nothing(
    redis_cluster: RedisCluster, redis_key_prefix: str
) -> None:
    backend = RedisBackend.from_url(redis_cluster.url, prefix=f"{redis_key_prefix}cclosed:")
    await backend.open()
    pipeline = backend._pipeline
    assert isinstance(pipeline, ClusterAutoPipeline)
    await backend.save("k", b"x", 60)
    await backend.close()
    with pytest.raises(ConnectionError):
        await pipeline.execute("EVALSHA", "0" * 40, 1, "some-key")
    assert pipeline._pipelines == {}
    await backend.open()  # a reopened backend works again, with a new pipeline
    try:
        stored = await backend.load("k")
        assert stored is not None and stored.value == b"x"
    finally:
        await backend.close()
