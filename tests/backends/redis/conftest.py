"""Fixtures of the Redis backend tests: private servers, a 3-node cluster, app servers."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cluster_procs import OwnCluster
from redis_procs import AppServer, RedisCluster, RedisServer, free_port


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    """A real 3-primary Redis Cluster on spare loopback ports, for the whole run."""
    cluster = RedisCluster(tmp_path_factory.mktemp("redis-cluster"))
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[Callable[..., RedisServer]]:
    """``own_redis(*extra_args)``: start a private redis-server on a spare port.

    Each is stopped when the test ends. Use it for tests that stop Redis or
    read its global counters: the shared server at 6379 is never touched.
    """
    servers: list[RedisServer] = []

    def start(*extra: str) -> RedisServer:
        server = RedisServer(tmp_path / f"redis-{len(servers)}", free_port(), extra)
        servers.append(server)
        server.start()
        return server

    try:
        yield start
    finally:
        for server in servers:
            server.stop()


@pytest.fixture
def app_server(tmp_path: Path) -> Iterator[Callable[..., AppServer]]:
    """``app_server(env, workers=4)``: run ``redis_app.py`` as a Sanic server; stopped after."""
    servers: list[AppServer] = []

    def start(env: dict[str, str], workers: int = 4) -> AppServer:
        server = AppServer(tmp_path, env, workers)
        servers.append(server)
        server.start()
        return server

    try:
        yield start
    finally:
        for server in servers:
            server.stop()


@pytest.fixture
def unique_prefix(redis_key_prefix: str) -> str:
    """A key prefix no other test uses."""
    return f"{redis_key_prefix}{uuid.uuid4().hex[:8]}:"


@pytest.fixture
def own_cluster(tmp_path: Path) -> Iterator[Callable[..., OwnCluster]]:
    """``own_cluster(masters=3, replicas=0)``: a private cluster, killed when the test ends."""
    clusters: list[OwnCluster] = []

    def start(masters: int = 3, replicas: int = 0) -> OwnCluster:
        cluster = OwnCluster(tmp_path / f"cluster-{len(clusters)}", masters, replicas)
        clusters.append(cluster)
        cluster.start()
        return cluster

    try:
        yield start
    finally:
        for cluster in clusters:
            cluster.stop()
