"""Where the backend's connections come from, and how they go back.

* A failed write's connection is closed only once the server cancelled the write:
  it must not land later, behind a caller told that nothing was written.
* The backend's own pool is lent without a timer while a connection is free, and
  still honours the wait limit once every connection is out.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from sanic_cookies import LockLost, LockTimeout
from sanic_cookies.backends.postgres import PostgresStore
from sanic_cookies.testing import decode_stored, encode_value, wait_until

pytestmark = pytest.mark.postgres

Make = Callable[..., PostgresStore]
#: Generous: the statements are cut at 0.5 s; this only catches a hang.
WITHIN = 20.0


def _key(n: int) -> str:
    return f"{n:064x}"


@pytest.mark.parametrize("scope", ["session", "transaction"])
@pytest.mark.parametrize("kind", ["asyncpg", "sqlalchemy"])
async def test_a_locked_save_stuck_past_command_timeout_is_cancelled_and_frees_the_lock(
    kind: str, scope: str, make_backend: Make, postgres_dsn: str
) -> None:
    backend = make_backend(
        kind, table=f"stuck_{kind}_{scope}", command_timeout=0.5, lock_scope=scope
    )
    await backend.open()
    blocker = await asyncpg.connect(postgres_dsn, timeout=5)
    try:
        key = _key(1)
        await backend.save(key, encode_value(1), 60)
        lock = backend.lock(key, timeout=5, lease=30)
        assert decode_stored(await lock.acquire()) == 1
        # Another transaction holds the row: the locked save's write waits for it.
        await blocker.execute("BEGIN")
        await blocker.fetch(f"SELECT 1 FROM {backend.queries.table} WHERE key = $1 FOR UPDATE", key)
        started = time.monotonic()
        with pytest.raises(LockLost):
            await asyncio.wait_for(lock.save_and_release(encode_value(99), 60), WITHIN)
        assert time.monotonic() - started < WITHIN
        await blocker.execute("COMMIT")  # had the save gone on on the server, it would land now
        again = backend.lock(key, timeout=5, lease=30)  # free: its connection was closed
        assert decode_stored(await again.acquire()) == 1  # and the stuck save wrote nothing
        await again.release()
    finally:
        await blocker.close()
        await backend.close()


@pytest.mark.parametrize("kind", ["asyncpg", "sqlalchemy"])
async def test_closing_after_a_timeout_leaves_nothing_running_on_the_server(
    kind: str, make_backend: Make, postgres_dsn: str
) -> None:
    backend = make_backend(kind, table=f"sleepy_{kind}")
    await backend.open()
    try:
        checkout = await backend.connector.checkout(5)
        marker = f"sleepy-{time.monotonic_ns()}"
        with pytest.raises(TimeoutError):
            await checkout.conn.fetchrow(f"SELECT pg_sleep(60), '{marker}'", timeout=0.3)
        await checkout.close(5)

        async def gone() -> bool:
            conn = await asyncpg.connect(postgres_dsn, timeout=5)
            try:
                running = await conn.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE query LIKE $1 "
                    "AND pid <> pg_backend_pid()",
                    f"%{marker}%",
                )
            finally:
                await conn.close()
            return bool(running == 0)

        assert await wait_until(gone, WITHIN)  # not left sleeping on the server
    finally:
        await backend.close()


async def _times_out(
    wait: Any, error: type[BaseException] = TimeoutError, limit: float = 0.2
) -> None:
    """`wait` fails with `error` after its own limit, not after hanging for `WITHIN`."""
    started = time.monotonic()
    with pytest.raises(error):
        await asyncio.wait_for(wait, WITHIN)
    assert time.monotonic() - started < WITHIN / 2, "waited with no limit"


def _timeouts_set(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every `asyncio.timeout` entered from now on (each sets a timer)."""
    made: list[object] = []
    real = asyncio.timeout

    def counted(delay: float | None) -> Any:
        made.append(delay)
        return real(delay)

    monkeypatch.setattr(asyncio, "timeout", counted)
    return made


async def test_its_own_pool_lends_a_free_connection_without_a_timer(
    make_backend: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = make_backend("asyncpg", table="free_conns", max_size=2, sweep_interval=None)
    await backend.open()
    try:
        key = _key(2)
        await backend.save(key, encode_value(0), 60)
        made = _timeouts_set(monkeypatch)
        for n in range(5):
            lock = backend.lock(key, timeout=5, lease=30)
            await lock.acquire()
            await lock.save_and_release(encode_value(n), 60)
        assert made == []
        held = [await backend.connector.checkout(5) for _ in range(2)]
        await _times_out(backend.connector.checkout(0.2))  # every connection is out
        assert made == [0.2]
        for checkout in held:
            await checkout.give_back()
        assert decode_stored(await backend.load(key)) == 4
    finally:
        await backend.close()


async def test_every_way_back_counts_the_connection_as_returned(make_backend: Make) -> None:
    # One connection: were a way back not counted, the next wait would never end (the
    # count said "free") or would always take a timer; were one counted twice, an
    # exhausted pool would be taken for a free one and wait without a limit.
    backend = make_backend("asyncpg", table="one_conn", max_size=1, sweep_interval=None)
    await backend.open()
    try:
        connector = backend.connector
        for way in ("give_back", "discard", "close"):
            checkout = await asyncio.wait_for(connector.checkout(5), WITHIN)
            back = (lambda c=checkout: c.close(1)) if way == "close" else getattr(checkout, way)
            await back()
            await back()  # a second call does nothing, and counts nothing
        held = await asyncio.wait_for(connector.checkout(5), WITHIN)
        await _times_out(connector.checkout(0.2))
        await held.give_back()
        lock = backend.lock(_key(3), timeout=5, lease=30)
        await asyncio.wait_for(lock.acquire(), WITHIN)
        await lock.release()
        await backend.close()
        await backend.open()  # a new pool: nothing counted from the old one
        held = await asyncio.wait_for(connector.checkout(5), WITHIN)
        await _times_out(backend.lock(_key(4), timeout=0.2, lease=5).acquire(), LockTimeout)
        await held.give_back()
    finally:
        await backend.close()


async def test_a_connection_still_being_made_counts_as_lent(make_backend: Make) -> None:
    # asyncpg takes a connection out of its queue before it connects it. Counted only
    # once made, it left a window in which the count said "one is free" while the
    # queue was empty: the next checkout then waited, with no limit, for a borrower
    # that might keep its connection for a whole request.
    backend = make_backend("asyncpg", table="connecting", max_size=1, sweep_interval=None)
    await backend.open()
    try:
        connector = backend.connector
        pool = backend.pool  # type: ignore[attr-defined]
        assert pool is not None
        await pool.expire_connections()  # the next acquire connects anew (awaits)
        first = asyncio.ensure_future(connector.checkout(5))
        second = asyncio.ensure_future(connector.checkout(0.2))  # runs while first connects
        held = await asyncio.wait_for(first, WITHIN)
        try:
            started = time.monotonic()
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(asyncio.shield(second), 3)
            assert time.monotonic() - started < 2, "waited past its limit"
        finally:
            await held.give_back()
            late = await asyncio.wait_for(asyncio.gather(second, return_exceptions=True), WITHIN)
            if not isinstance(late[0], BaseException):
                await late[0].give_back()
    finally:
        await backend.close()


class _Silent:
    """A TCP server that accepts and never answers: a host behind a network that drops."""

    def __init__(self) -> None:
        self.never = asyncio.Event()
        self.server: asyncio.Server | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self.never.wait()
        finally:
            writer.close()

    async def __aenter__(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        self.never.set()


async def test_its_own_pool_keeps_a_wait_limit_shorter_than_connect_timeout() -> None:
    # A free slot may still have to connect; the lock's checkout gets what is left of
    # its timeout, which can be far less than connect_timeout.
    from sanic_cookies.backends.postgres._connector import PoolConnector

    async with _Silent() as port:
        connector = PoolConnector(
            dsn=f"postgresql://postgres@127.0.0.1:{port}/test",
            pool=None,
            max_size=2,
            connect_timeout=4.0,
            command_timeout=5.0,
            pool_options={},
        )
        await connector.open()
        try:
            started = time.monotonic()
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(connector.checkout(0.2), WITHIN)
            assert time.monotonic() - started < 2, "waited connect_timeout, not within"
        finally:
            pool = connector.pool
            if pool is not None:
                pool.terminate()


@pytest.mark.parametrize("kind", ["asyncpg", "sqlalchemy"])
async def test_a_close_cancelled_midway_still_gives_the_connection_back(
    kind: str, make_backend: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A request cancelled (a client gone, a shutdown) while its failed write's
    # connection waits for the server's answer to the cancellation.
    size = {"max_size": 1} if kind == "asyncpg" else {"pool_size": 1}
    backend = make_backend(kind, table=f"cancelled_close_{kind}", sweep_interval=None, **size)
    await backend.open()
    try:
        connector = backend.connector
        checkout = await asyncio.wait_for(connector.checkout(5), WITHIN)
        with pytest.raises(TimeoutError):
            await checkout.conn.fetchrow("SELECT pg_sleep(60)", timeout=0.2)
        closing = asyncio.ensure_future(checkout.close(5))
        await asyncio.sleep(0)  # it now waits for the server (the cancel request's answer)
        assert not closing.done()
        closing.cancel()
        with pytest.raises(asyncio.CancelledError):
            await closing
        made = _timeouts_set(monkeypatch)
        # The pool's one connection is back, and (own pool) counted back as free.
        again = await asyncio.wait_for(connector.checkout(5), WITHIN)
        await again.give_back()
        if kind == "asyncpg":
            assert made == [], "counted as still lent"
    finally:
        await backend.close()


class _Cable:
    """A TCP relay to PostgreSQL that can go silent, like a network that drops packets.

    ``async with _Cable(dsn) as cable:`` relays to the server of `dsn`; `cable.dsn`
    is `dsn` with the relay as its host.
    """

    def __init__(self, dsn: str) -> None:
        self.parts = urlsplit(dsn)
        self.target = (self.parts.hostname or "127.0.0.1", self.parts.port or 5432)
        self.cut = asyncio.Event()
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            if self.cut.is_set():
                continue  # dropped on the floor: no answer, no reset
            writer.write(data)
            await writer.drain()
        if not self.cut.is_set():
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        if self.cut.is_set():
            return  # accepted, never answered
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self.writers.append(up_writer)
        await asyncio.gather(
            self._pump(reader, up_writer), self._pump(up_reader, writer), return_exceptions=True
        )

    @property
    def dsn(self) -> str:
        """The DSN it was given, with the relay (once started) as its host."""
        assert self.server is not None, "the relay is not started"
        port = int(self.server.sockets[0].getsockname()[1])
        netloc = self.parts.netloc
        user = netloc.rsplit("@", 1)[0] + "@" if "@" in netloc else ""
        return urlunsplit(self.parts._replace(netloc=f"{user}127.0.0.1:{port}"))

    async def __aenter__(self) -> _Cable:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self.writers:
            writer.transport.abort()


@pytest.mark.parametrize("scope", ["session", "transaction"])
async def test_a_locked_save_on_a_silent_network_fails_within_twice_command_timeout(
    scope: str, postgres_dsn: str, pg_schema: str
) -> None:
    # docs/backend-postgres.md, "Down later": on a network that goes silent a locked
    # write fails after at most twice command_timeout: the statement's, then the wait
    # for the server to answer the cancellation (which never comes).
    from sanic_cookies.backends.postgres import PostgresBackend

    async with _Cable(postgres_dsn) as cable:
        backend = PostgresBackend.from_url(
            cable.dsn,
            table=f"silent_{scope}",
            schema=pg_schema,
            create_table=True,
            command_timeout=1.0,
            lock_scope=scope,
            sweep_interval=None,
        )
        await backend.open()
        try:
            lock = backend.lock(_key(7), timeout=5, lease=30)
            await lock.acquire()
            cable.cut.set()  # the network goes silent just before the save
            started = time.monotonic()
            with pytest.raises(LockLost):
                await asyncio.wait_for(lock.save_and_release(encode_value(1), 60), WITHIN)
            took = time.monotonic() - started
            assert took >= 1.0  # not before its own time limit
            assert took < 2 * 1.0 + 2.0, took  # twice command_timeout, with room for a busy machine
        finally:
            pool = backend.pool
            if pool is not None:
                pool.terminate()


@pytest.mark.parametrize("kind", ["asyncpg", "sqlalchemy"])
async def test_a_connection_that_cannot_be_made_is_a_connection_error_not_a_busy_lock(
    kind: str,
) -> None:
    # A server that does not answer is a store failure (ERROR, counted, 503), not lock
    # contention (LockTimeout, WARNING): the checkout says ConnectionError, naming the
    # connect timeout, and its own wait limit still gives TimeoutError (test above).
    from sqlalchemy.ext.asyncio import create_async_engine

    from sanic_cookies.backends.postgres._connector import Connector, PoolConnector
    from sanic_cookies.backends.postgres._sqlalchemy import EngineConnector

    async with _Silent() as port:
        dsn = f"postgresql://postgres@127.0.0.1:{port}/test"
        connector: Connector
        if kind == "asyncpg":
            connector = PoolConnector(
                dsn=dsn,
                pool=None,
                max_size=2,
                connect_timeout=0.3,
                command_timeout=5.0,
                pool_options={},
            )
        else:
            engine = create_async_engine(
                dsn.replace("postgresql://", "postgresql+asyncpg://"),
                connect_args={"timeout": 0.3},
            )
            connector = EngineConnector(engine, owned=True)
        await connector.open()
        try:
            started = time.monotonic()
            with pytest.raises(ConnectionError, match="connect timeout"):
                await asyncio.wait_for(connector.checkout(5), WITHIN)
            assert time.monotonic() - started < 5, "waited for the checkout's limit"
        finally:
            if isinstance(connector, PoolConnector):
                if connector.pool is not None:
                    connector.pool.terminate()
            else:
                await connector.close()


async def test_a_lock_whose_database_stops_answering_fails_as_a_store_error(
    postgres_dsn: str, pg_schema: str
) -> None:
    # The database goes silent after start-up, and the lock must make a new connection:
    # a store failure (ConnectionError), within connect_timeout, not a LockTimeout.
    from sanic_cookies.backends.postgres import PostgresBackend

    async with _Cable(postgres_dsn) as cable:
        backend = PostgresBackend.from_url(
            cable.dsn,
            table="silent_connect",
            schema=pg_schema,
            create_table=True,
            connect_timeout=0.5,
            sweep_interval=None,
        )
        await backend.open()
        try:
            await backend.save(_key(8), encode_value(1), 60)  # ready: table and pooling checked
            pool = backend.pool
            assert pool is not None
            await pool.expire_connections()  # the next borrow connects anew
            cable.cut.set()
            lock = backend.lock(_key(8), timeout=5, lease=30)
            started = time.monotonic()
            with pytest.raises(ConnectionError, match="connect timeout"):
                await asyncio.wait_for(lock.acquire(), WITHIN)
            assert time.monotonic() - started < 5, "took the lock's timeout: a LockTimeout path"
        finally:
            pool = backend.pool
            if pool is not None:
                pool.terminate()
