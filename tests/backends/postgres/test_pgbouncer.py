"""Through a real PgBouncer (Debian's package) on loopback, in front of the shared server.

* The session-scoped lock is refused at start-up behind ``pool_mode=transaction``
  (its advisory lock would stay on a server connection other clients then use),
  on both backends; a session-mode PgBouncer and a direct connection pass.
* Behind transaction pooling asyncpg's named prepared statements break: the
  transaction scope with the statement cache on is refused too, with what to set.
* A database out of reach at start-up is checked on first contact: the refusal then
  answers every request with 503 instead of locking wrongly.
* With ``lock_scope="transaction"`` and ``statement_cache_size=0``, 400 locked
  increments across 4 Sanic workers (16 client connections on 6 server
  connections) end at 400; the same increments unlocked lose updates. A worker
  SIGKILLed inside ``async with`` frees the lock and loses no commit.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pg_support import AppServer, PgBouncer, RoundTrips, pgbouncer, sqlalchemy_url
from test_multiprocess import (
    INCREMENTS,
    _env,
    _hammer,
    _hammer_on_several_workers,
    _read,
    _start_session,
    kill_the_lock_holder,
)

from sanic_cookies import BackendUnavailable, ConfigurationError
from sanic_cookies._ids import new_session_id, store_key
from sanic_cookies.backends.postgres import PostgresBackend, PostgresStore, SQLAlchemyBackend
from sanic_cookies.backends.postgres._pooling import Pooling, detect_pooling

# One at a time under pytest-xdist, with test_multiprocess.py (see one_fleet_at_a_time).
pytestmark = [pytest.mark.postgres, pytest.mark.usefixtures("one_fleet_at_a_time")]

NO_CACHE = "?statement_cache_size=0"


@pytest.fixture(scope="module")
def bouncer(postgres_dsn: str) -> Iterator[PgBouncer]:
    """PgBouncer in transaction mode, for this module."""
    with pgbouncer(postgres_dsn, pool_mode="transaction") as running:
        yield running


def _backend(kind: str, url: str, schema: str, **options: Any) -> PostgresStore:
    options = {"schema": schema, "table": "bounced", "create_table": True, **options}
    options.setdefault("sweep_interval", None)
    if kind == "asyncpg":
        return PostgresBackend.from_url(url, **options)
    return SQLAlchemyBackend.from_url(sqlalchemy_url(url), **options)


@pytest.mark.parametrize("kind", ["asyncpg", "sqlalchemy"])
@pytest.mark.parametrize("query", ["", NO_CACHE])
async def test_session_scope_through_transaction_pooling_is_refused_at_start_up(
    kind: str, query: str, bouncer: PgBouncer, pg_schema: str
) -> None:
    backend = _backend(kind, bouncer.dsn + query, pg_schema)
    assert backend.lock_scope == "session"  # the default
    with pytest.raises(ConfigurationError, match='lock_scope="transaction"') as caught:
        await backend.open()
    await backend.close()
    # With the statement cache on, the message also says how to turn it off.
    assert ("statement_cache_size=0" in str(caught.value)) == (query == ""), caught.value


@pytest.mark.parametrize("kind", ["asyncpg", "sqlalchemy"])
async def test_transaction_scope_with_the_statement_cache_on_is_refused(
    kind: str, bouncer: PgBouncer, pg_schema: str
) -> None:
    backend = _backend(kind, bouncer.dsn, pg_schema, lock_scope="transaction")
    with pytest.raises(ConfigurationError, match="statement_cache_size=0"):
        await backend.open()
    await backend.close()


@pytest.mark.parametrize("kind", ["asyncpg", "sqlalchemy"])
async def test_transaction_scope_without_the_cache_works_through_transaction_pooling(
    kind: str, bouncer: PgBouncer, pg_schema: str
) -> None:
    backend = _backend(kind, bouncer.dsn + NO_CACHE, pg_schema, lock_scope="transaction")
    await backend.open()
    try:
        assert await detect_pooling(backend.connector, 5.0) is Pooling.TRANSACTION
        key, user = store_key(new_session_id()), new_session_id()
        await backend.save(key, b"v1", 60, user_id=user)
        lock = backend.lock(key, timeout=5, lease=10)
        stored = await lock.acquire()
        assert stored is not None and stored.value == b"v1"
        assert await lock.save_and_release(b"v2", 60, user_id=user, replace_only=True)
        loaded = await backend.load(key)
        assert loaded is not None and loaded.value == b"v2"
        assert list(await backend.list_user_sessions(user)) == [key]
    finally:
        await backend.close()


async def test_direct_and_session_pooled_connections_pass(
    postgres_dsn: str, pg_schema: str
) -> None:
    direct = _backend("asyncpg", postgres_dsn, pg_schema)
    await direct.open()
    try:
        assert await detect_pooling(direct.connector, 5.0) is Pooling.DIRECT
    finally:
        await direct.close()
    with pgbouncer(postgres_dsn, pool_mode="session") as session_mode:
        pooled = _backend("asyncpg", session_mode.dsn, pg_schema)
        await pooled.open()  # the session scope works through session pooling
        try:
            assert await detect_pooling(pooled.connector, 5.0) is Pooling.SESSION
            key = store_key(new_session_id())
            lock = pooled.lock(key, timeout=5, lease=10)
            assert await lock.acquire() is None
            assert await lock.save_and_release(b"x", 60)
        finally:
            await pooled.close()


async def test_a_proxy_out_of_reach_at_start_up_is_checked_on_first_contact(
    postgres_dsn: str, pg_schema: str
) -> None:
    late = PgBouncer(postgres_dsn, pool_mode="transaction")
    backend = _backend("asyncpg", late.dsn + NO_CACHE, pg_schema, connect_timeout=0.5)
    try:
        await backend.open()  # nothing listens yet: a warning, not an error
        late.start()
        key = store_key(new_session_id())
        for _ in range(2):  # the verdict is kept: no second check
            with pytest.raises(BackendUnavailable, match='lock_scope="transaction"'):
                await backend.load(key)
        with pytest.raises(BackendUnavailable, match='lock_scope="transaction"'):
            await backend.lock(key, timeout=5, lease=10).acquire()
    finally:
        await backend.close()
        late.remove()


@pytest.mark.slow
async def test_locked_increments_across_four_workers_through_pgbouncer(
    bouncer: PgBouncer, pg_schema: str
) -> None:
    env = _env("asyncpg-transaction", bouncer.dsn + NO_CACHE, pg_schema, "multi_pgbouncer")
    async with AppServer(env, workers=4) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            locked_cookie = await _start_session(client)
            control_cookie = await _start_session(client)

        started = time.monotonic()
        locked, pids = await _hammer_on_several_workers(server, "/incr", locked_cookie)
        locked_seconds = time.monotonic() - started
        control, _ = await _hammer(server, "/incr-unlocked", control_cookie)

        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            locked_final = await _read(client, locked_cookie)
            control_final = await _read(client, control_cookie)

    print(
        f"\n[pgbouncer transaction mode] {INCREMENTS} locked increments in "
        f"{locked_seconds:.2f}s -> {locked_final}; unlocked control -> {control_final}; "
        f"workers answering: {len(pids)}"
    )
    assert locked == [200] * len(locked), server.output()[-3000:]
    assert locked_final == len(locked)  # INCREMENTS per round
    assert control == [200] * INCREMENTS
    assert control_final < INCREMENTS, "the unlocked control lost nothing: the test proves nothing"
    assert len(pids) > 1, "only one worker answered"


class WaitsCounted(RoundTrips):
    """`RoundTrips`, plus the ``Flush`` (``H``) that ends asyncpg's describe of a statement.

    The client waits for the answer to a Flush too; `RoundTrips` leaves it out because
    a cached statement never sends one.
    """

    def _scan(self, data: bytes) -> None:
        super()._scan(data)
        offset = 0
        while offset < len(data):
            length = int.from_bytes(data[offset + 1 : offset + 5], "big")
            if data[offset : offset + 1] == b"H":
                self.count += 1
                self.kinds.append("flush")
            offset += 1 + length


async def test_round_trips_through_transaction_pooling_without_the_cache(
    bouncer: PgBouncer, pg_schema: str
) -> None:
    # What statement_cache_size=0 costs: asyncpg describes each statement, then sends
    # parse, bind and execute together: 2 round trips where the cache needs 1.
    counter = WaitsCounted()
    backend = PostgresBackend(
        bouncer.dsn,
        schema=pg_schema,
        table="bounced",
        create_table=True,
        sweep_interval=None,
        lock_scope="transaction",
        max_size=2,
        pool_options={"statement_cache_size": 0, "init": counter.init},
    )
    await backend.open()
    try:
        key = store_key(new_session_id())
        counts = {}
        for name, call in {
            "save": lambda: backend.save(key, b"v", 60),
            "load": lambda: backend.load(key),
        }.items():
            for _ in range(2):  # the second time as the first: nothing is cached
                counter.reset()
                await call()
                counts[name] = counter.count
        lock = backend.lock(key, timeout=5, lease=10)
        counter.reset()
        await lock.acquire()
        await lock.save_and_release(b"w", 60, replace_only=True)
        counts["locked read-modify-write"] = counter.count
    finally:
        await backend.close()
    print(f"\n[pgbouncer, statement_cache_size=0] round trips: {counts}")
    # Direct, with the cache: 1, 1 and 3 (tests/backends/postgres/test_round_trips.py).
    assert counts == {"save": 2, "load": 2, "locked read-modify-write": 4}


@pytest.mark.slow
async def test_a_sigkilled_lock_holder_behind_pgbouncer_frees_the_lock(
    bouncer: PgBouncer, postgres_dsn: str, pg_schema: str
) -> None:
    # PgBouncer closes the server connection of a client that vanished mid-transaction,
    # which ends the transaction and its lock on the server.
    freed_after, final = await kill_the_lock_holder(
        "asyncpg-transaction", bouncer.dsn + NO_CACHE, postgres_dsn, pg_schema, "kill_pgbouncer"
    )
    print(f"\n[pgbouncer] lock freed {freed_after:.3f}s after SIGKILL (lease: 60s); n = {final}")
    assert freed_after < 10, "the lock was not freed by the dropped connection"
    assert final == 6  # 5 increments before, 1 after; the killed holder's +1000 never committed
