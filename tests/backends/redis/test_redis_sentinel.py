"""RedisBackend behind Redis Sentinel: URLs, the conformance suite, min_replicas.

The servers are real: `SentinelGroup` starts 1 master, 1 replica and 3
sentinels on spare loopback ports. Failovers (a switchover, and the master
killed under load) are in ``test_redis_failover.py``, which runs once, in
``nox -s tests``.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.asyncio.connection import Connection, SSLConnection
from redis.asyncio.sentinel import SentinelManagedConnection, SentinelManagedSSLConnection
from redis_procs import free_port
from sentinel_procs import SentinelGroup

from sanic_cookies import BackendUnavailable, ConfigurationError
from sanic_cookies._discovery import backend_class
from sanic_cookies.backends.redis import RedisBackend
from sanic_cookies.backends.redis._sentinel import (
    SentinelRedis,
    _freshest_master,
    parse_sentinel_url,
)
from sanic_cookies.testing import BackendConformance

pytestmark = pytest.mark.redis


@pytest.fixture(scope="module")
def sentinel_group(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelGroup]:
    """A real 1-master, 1-replica, 3-sentinel deployment for this module."""
    group = SentinelGroup(tmp_path_factory.mktemp("sentinel"))
    group.start()
    try:
        yield group
    finally:
        group.stop()


@pytest.fixture
def prefix() -> str:
    return f"sctest:sentinel:{uuid.uuid4().hex[:8]}:"


@pytest.fixture
async def backend(sentinel_group: SentinelGroup, prefix: str) -> AsyncIterator[RedisBackend]:
    backend = RedisBackend.from_url(sentinel_group.url(), prefix=prefix)
    await backend.open()
    try:
        yield backend
    finally:
        await backend.close()


# -- URLs (no server needed) ---------------------------------------------------------


def test_sentinel_url_is_parsed() -> None:
    target = parse_sentinel_url(
        "rediss+sentinel://user:p%40ss@s1:26380,s2,[::1]:5000/mymaster/3"
        "?socket_timeout=1.5&sentinel_password=sp"
    )
    assert target.sentinels == [("s1", 26380), ("s2", 26379), ("::1", 5000)]
    assert target.service == "mymaster"
    assert target.tls
    assert target.redis_options == {
        "username": "user",
        "password": "p@ss",
        "db": 3,
        "socket_timeout": 1.5,
    }
    assert target.sentinel_options == {"password": "sp"}
    # No db in the path: none given, so a keyword db applies (else redis-py's 0).
    assert parse_sentinel_url("redis+sentinel://h:1/svc").redis_options == {}


@pytest.mark.parametrize(
    ("url", "message"),
    [
        # No sentinel: RedisBackend.from_url refuses it before the Sentinel parser does.
        ("redis+sentinel:///svc/0", "names no sentinel"),
        ("redis+sentinel://h:1", "must name the service"),
        ("redis+sentinel://h:1/svc/x", "Database 'x' in .* is not a number"),
        ("redis+sentinel://h:1/svc/0/extra", "must name the service"),
        ("redis+sentinel://h:port/svc/0", r"Malformed URL '.*//h:\*\*\*'"),
        ("redis+sentinel://h:1/svc/0?socket_timeout=soon", "Bad Redis option"),
    ],
)
def test_bad_sentinel_urls_are_configuration_errors(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        RedisBackend.from_url(url)


def test_a_sentinel_url_without_sentinels_names_the_mistake() -> None:
    with pytest.raises(ConfigurationError, match="names no sentinel"):
        parse_sentinel_url("redis+sentinel:///svc/0")


def test_the_freshest_master_wins_errors_and_down_masters_do_not() -> None:
    """Which sentinel's answer `MasterWatch.check` believes (no server needed)."""

    def master(epoch: int, port: int, **flags: Any) -> dict[str, Any]:
        return {"is_master": True, "ip": "10.0.0.1", "port": port, "config-epoch": epoch, **flags}

    answers: list[object] = [
        ConnectionError("down"),
        master(3, 1),
        master(9, 2, is_odown=True),  # objectively down: skipped however fresh
        master(5, 3),
        master(5, 4),  # a tie: the first answer wins
        {"is_master": False, "ip": "10.0.0.1", "port": 5},
    ]
    assert _freshest_master(answers) == (5, "10.0.0.1", 3)
    assert _freshest_master([ConnectionError("down"), master(1, 1, is_odown=True)]) is None


def test_rediss_sentinel_uses_tls_to_the_servers_and_the_sentinels() -> None:
    """No TLS server here: this checks what each connection would be made with."""
    plain = RedisBackend.from_url("redis+sentinel://h1:1,h2:2/svc/0").client
    tls = RedisBackend.from_url(
        "rediss+sentinel://h1:1,h2:2/svc/0?ssl_cert_reqs=none&sentinel_password=sp"
    ).client
    assert isinstance(plain, SentinelRedis) and isinstance(tls, SentinelRedis)
    assert plain.connection_pool.connection_class is SentinelManagedConnection
    assert tls.connection_pool.connection_class is SentinelManagedSSLConnection
    assert tls.connection_pool.connection_kwargs["ssl_cert_reqs"] == "none"
    assert plain._sentinel is not None and tls._sentinel is not None
    for sentinel in plain._sentinel.sentinels:
        assert sentinel.connection_pool.connection_class is Connection
    for sentinel in tls._sentinel.sentinels:
        pool = sentinel.connection_pool
        assert pool.connection_class is SSLConnection
        assert pool.connection_kwargs["ssl_cert_reqs"] == "none"
        assert pool.connection_kwargs["password"] == "sp"
        assert pool.connection_kwargs["socket_connect_timeout"] == 1.0


def test_sentinel_schemes_are_installed_entry_points() -> None:
    for scheme in ("redis+sentinel", "rediss+sentinel"):
        assert backend_class(f"{scheme}://h:1/svc/0") is RedisBackend


def test_credentials_stay_out_of_repr() -> None:
    backend = RedisBackend.from_url("redis+sentinel://:hunter2@h1:1,h2:2/svc/0?prefix=p:")
    assert "hunter2" not in repr(backend)
    assert repr(backend) == "<RedisBackend sentinel redis+sentinel://h1:1,h2:2/svc/0 prefix='p:'>"


@pytest.mark.parametrize(
    "options",
    [
        {"min_replicas": -1},
        {"min_replicas": 1, "min_replicas_timeout": 0},
        {"min_replicas": 1, "min_replicas_timeout": 2.0},  # not below socket_timeout (2 s)
        {"min_replicas": 1, "cluster": True},
    ],
)
def test_bad_min_replicas_settings(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        RedisBackend.from_url("redis://127.0.0.1:6379/0", **options)


def test_min_replicas_from_the_url() -> None:
    backend = RedisBackend.from_url(
        "redis+sentinel://h:1/svc/0?min_replicas=1&min_replicas_timeout=0.25"
    )
    assert (backend._min_replicas, backend._min_replicas_timeout) == (1, 0.25)
    with pytest.raises(ConfigurationError):
        RedisBackend.from_url("redis+sentinel://h:1/svc/0?min_replicas=one")


# -- against the real deployment -----------------------------------------------------


class TestSentinelConformance(BackendConformance):
    @pytest.fixture(autouse=True)
    def _deployment(self, sentinel_group: SentinelGroup, prefix: str) -> None:
        self.url = sentinel_group.url()
        self.prefix = prefix

    def backend_url(self) -> str:
        return self.url

    def backend_options(self) -> dict[str, Any]:
        return {"prefix": self.prefix}


# -- min_replicas: WAIT after each session write ---------------------------------------


async def test_min_replicas_waits_for_the_replica(
    sentinel_group: SentinelGroup, prefix: str
) -> None:
    """With min_replicas=1 a save returns once the replica has the write."""
    backend = RedisBackend.from_url(sentinel_group.url(), prefix=prefix, min_replicas=1)
    await backend.open()
    try:
        async with aioredis.Redis(port=sentinel_group.replica.port) as replica:
            for i in range(30):
                assert await backend.save(f"w{i}", b"x" * 100, 60)
                # No polling: the replica had it before save returned.
                assert await replica.exists(f"{prefix}{{w{i}}}") == 1
            lock = backend.lock("w0", timeout=1, lease=5)
            await lock.acquire()
            await lock.delete_and_release()
            assert await replica.exists(f"{prefix}{{w0}}") == 0
    finally:
        await backend.close()


async def test_min_replicas_without_the_replica_answers_503(
    sentinel_group: SentinelGroup, prefix: str
) -> None:
    """The replica stopped (SIGSTOP): a save raises BackendUnavailable after the timeout.

    The write itself is on the master (it is not undone); the error says the
    replicas did not confirm it. Without min_replicas the same save succeeds.
    """
    waiting = RedisBackend.from_url(
        sentinel_group.url(), prefix=prefix, min_replicas=1, min_replicas_timeout=0.3
    )
    plain = RedisBackend.from_url(sentinel_group.url(), prefix=prefix)
    await waiting.open()
    await plain.open()
    process = sentinel_group.replica.process
    assert process is not None
    os.kill(process.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        with pytest.raises(BackendUnavailable, match=r"reached 0 of the 1 replicas"):
            await waiting.save("paused", b"v", 60)
        took = time.monotonic() - started
        assert await plain.save("paused2", b"v", 60)
        stored = await plain.load("paused")
        assert stored is not None and stored.value == b"v"  # on the master all the same
    finally:
        os.kill(process.pid, signal.SIGCONT)
        await waiting.close()
        await plain.close()
    print(f"min_replicas=1, replica paused: BackendUnavailable after {took:.3f}s")
    assert took >= 0.3  # WAIT's timeout, measured by Redis: the save did wait
    # Back in sync, the replica acknowledges again.
    again = RedisBackend.from_url(sentinel_group.url(), prefix=prefix, min_replicas=1)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                assert await again.save("resumed", b"v", 60)
                break
            except BackendUnavailable:
                assert time.monotonic() < deadline, "the replica never caught up"
    finally:
        await again.close()


async def test_sentinel_client_closes_its_sentinel_connections(
    sentinel_group: SentinelGroup, prefix: str
) -> None:
    backend = RedisBackend.from_url(sentinel_group.url(), prefix=prefix)
    await backend.open()
    assert await backend.save("c", b"v", 60)
    sentinel = backend.client._sentinel  # type: ignore[union-attr]
    assert sentinel is not None
    await backend.close()
    for client in sentinel.sentinels:
        assert not client.connection_pool._in_use_connections
        assert all(c._reader is None for c in client.connection_pool._available_connections)


# -- start-up mistakes (review 18) -------------------------------------------------


async def test_an_unknown_service_name_fails_the_start(sentinel_group: SentinelGroup) -> None:
    url = sentinel_group.url().replace("/sctmaster/", "/no-such-service/")
    backend = RedisBackend.from_url(url, prefix="sctest:nosuch:")
    try:
        with pytest.raises(ConfigurationError, match="no service named 'no-such-service'"):
            await backend.open()
    finally:
        await backend.close()


async def test_a_sentinel_password_the_sentinels_refuse_fails_the_start(
    sentinel_group: SentinelGroup,
) -> None:
    # These sentinels have only the default user: AUTH as another is refused (WRONGPASS),
    # exactly as a wrong sentinel_password is.
    backend = RedisBackend.from_url(
        sentinel_group.url() + "?sentinel_username=nobody&sentinel_password=wrong",
        prefix="sctest:auth:",
    )
    try:
        with pytest.raises(ConfigurationError, match="refused the credentials"):
            await backend.open()
    finally:
        await backend.close()


async def test_unreachable_sentinels_start_with_one_short_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = f"redis+sentinel://127.0.0.1:{free_port()},127.0.0.1:{free_port()}/sctmaster/0"
    backend = RedisBackend.from_url(url, prefix="sctest:unreachable:")
    try:
        await backend.open()  # the app starts; requests answer 503 until a sentinel answers
    finally:
        await backend.close()
    lines = [r.getMessage() for r in caplog.records if "unreachable at start-up" in r.getMessage()]
    assert len(lines) == 1 and len(lines[0]) < 400, lines
