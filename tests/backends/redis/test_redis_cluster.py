"""RedisBackend against the conformance suite on a real 3-node Redis Cluster the tests start."""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio.cluster import RedisCluster as ClusterClient
from redis_procs import RedisCluster

from sanic_cookies.backends.redis import RedisBackend
from sanic_cookies.testing import BackendConformance

pytestmark = pytest.mark.redis


class TestRedisClusterConformance(BackendConformance):
    @pytest.fixture(autouse=True)
    def _cluster(self, redis_cluster: RedisCluster, redis_key_prefix: str) -> None:
        self.url = redis_cluster.url
        self.prefix = f"{redis_key_prefix}cluster:"

    def backend_url(self) -> str:
        return self.url

    def backend_options(self) -> dict[str, Any]:
        return {"prefix": self.prefix}


async def test_session_keys_share_a_slot_and_users_spread(redis_cluster: RedisCluster) -> None:
    """The data and lock keys of a session hash to one slot; user indexes go elsewhere."""
    backend = RedisBackend.from_url(redis_cluster.url, prefix="sctest:slots:")
    await backend.open()
    try:
        client = backend.client
        assert isinstance(client, ClusterClient)
        keys = backend._keys
        slots_of_users = set()
        for i in range(20):
            key = f"{i:064x}"
            assert client.keyslot(keys.data(key)) == client.keyslot(keys.lock(key))
            slots_of_users.add(client.keyslot(keys.index(f"user-{i}")))
        assert len(slots_of_users) > 1
        # The nodes really own different slots: the cluster is not one node in disguise.
        assert len({n.name for n in client.get_primaries()}) == 3
    finally:
        await backend.close()


async def test_wrapped_cluster_client_is_detected_and_not_closed(
    redis_cluster: RedisCluster, redis_key_prefix: str
) -> None:
    client = ClusterClient.from_url(f"redis://127.0.0.1:{redis_cluster.nodes[1].port}")
    try:
        backend = RedisBackend(client=client, prefix=f"{redis_key_prefix}wrapped-cluster:")
        assert backend._cluster
        await backend.open()
        key = "ab" * 32
        assert await backend.save(key, b"x", 30, user_id="u1")
        assert set(await backend.list_user_sessions("u1")) == {key}
        await backend.close()
        assert await client.ping()  # still usable: the backend did not close it
        await backend.open()  # and the backend works again after a restart
        assert (await backend.load(key)) is not None
        await backend.close()
    finally:
        await client.aclose()
