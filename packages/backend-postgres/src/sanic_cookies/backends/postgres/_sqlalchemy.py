"""`SQLAlchemyBackend`: sessions in PostgreSQL through the application's `AsyncEngine`.

The backend borrows connections from the engine's pool and runs its
statements on the asyncpg driver connection underneath, the same statements
as `PostgresBackend`, so both have the same round trips and the same locking.
SQLAlchemy's own transaction never starts (no ``BEGIN``, and its rollback on
check-in is a no-op); the backend ends its transactions itself and
invalidates any connection it cannot leave clean.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Any, ClassVar, Self

from sqlalchemy import Table
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.util import greenlet_spawn

from sanic_cookies import ConfigurationError, redact_url

from ._connector import Checkout, Conn, Connector, checkout_timed_out
from ._lock import LockScope
from ._options import split_url
from ._schema import DEFAULT_TABLE
from ._store import PostgresStore

__all__ = ["EngineConnector", "SQLAlchemyBackend"]


class _EngineCheckout(Checkout):
    __slots__ = ("_raw",)

    def __init__(self, raw: PoolProxiedConnection, conn: Conn) -> None:
        super().__init__(conn)
        self._raw = raw

    async def _give_back(self) -> None:
        # The pool's check-in (reset, invalidate) calls the driver synchronously, which
        # SQLAlchemy's async adaptation runs inside a greenlet.
        if self.conn.is_closed():
            # Tell the pool, so it opens a new connection instead of lending this one.
            await greenlet_spawn(self._raw.invalidate)
        await greenlet_spawn(self._raw.close)


class EngineConnector(Connector):
    """Connections from a SQLAlchemy `AsyncEngine` using the asyncpg driver.

    Args:
        engine: The engine.
        owned: Dispose of the engine's pool on `close` (an engine the backend made).
    """

    def __init__(self, engine: AsyncEngine, *, owned: bool) -> None:
        self.engine = engine
        self.owned = owned

    async def open(self) -> None:
        """Nothing to do: the engine connects on demand."""

    async def close(self) -> None:
        """Dispose of the pool of an engine this backend created."""
        if self.owned:
            await self.engine.dispose()

    async def checkout(self, within: float) -> Checkout:
        timer = asyncio.timeout(within)
        try:
            return await self._checkout(timer)
        except TimeoutError as exc:
            checkout_timed_out(timer, exc)

    async def _checkout(self, timer: asyncio.Timeout) -> Checkout:
        async with timer:
            # A connection the server closed (restart) stays in the pool until
            # used; replace it here, at no cost, rather than fail a request.
            # The pool's connection itself, not an AsyncConnection around it: nothing
            # here runs SQL through SQLAlchemy, and the wrapper costs ~25 µs per borrow.
            for _ in range(2):
                raw = await self.engine.raw_connection()
                driver: Conn | None = raw.driver_connection
                if driver is not None and not driver.is_closed():
                    return _EngineCheckout(raw, driver)
                with contextlib.suppress(Exception):
                    await greenlet_spawn(raw.invalidate)
                await greenlet_spawn(raw.close)
        raise ConnectionError("the engine lent only closed connections")


class SQLAlchemyBackend(PostgresStore):
    """Sessions in a PostgreSQL table, through a SQLAlchemy `AsyncEngine` (asyncpg driver).

    ::

        metadata = MetaData()                      # the app's, seen by Alembic
        sessions = sessions_table(metadata)        # add the sessions table to it
        engine = create_async_engine("postgresql+asyncpg://app@db/app")
        Session(app, backend=SQLAlchemyBackend(engine, table=sessions))

        # or by URL (the backend makes and disposes of its own engine):
        Session(app, backend="postgresql+asyncpg://app@db/app?create_table=true")

    It borrows connections from the engine's pool (so sessions count against
    the app's pool size) and behaves exactly like `PostgresBackend`. If the
    engine has ``pool_pre_ping=True``, SQLAlchemy adds one round trip per
    borrow; the backend does not need it (it replaces connections the server
    closed by itself).

    Args:
        engine: The application's engine; its driver must be asyncpg.
        table: The table name, or the `Table` from `sessions_table`.
        schema: The table's schema, when `table` is a name (None: the search path).
        create_table: Create the schema, table and indexes at start-up if missing.
        command_timeout: Seconds any one statement (and a connection checkout) may take.
        sweep_interval: Seconds between sweeps of expired rows; None or 0: no sweeper.
        sweep_batch: Rows deleted per sweep transaction.
        lock_scope: ``"session"`` (2 round trips per locked read-modify-write;
            PostgreSQL 14+, not behind a transaction-pooling proxy) or
            ``"transaction"`` (3 round trips, works through PgBouncer's
            transaction pooling). See `AdvisoryLock`.
        replica: An engine on a read replica (never disposed of here). Only
            `list_user_sessions` reads from it; loads, locks and writes always
            go to `engine`. None: everything on `engine`.
    """

    name: ClassVar[str] = "postgres+sqlalchemy"

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        table: str | Table = DEFAULT_TABLE,
        schema: str | None = None,
        create_table: bool = False,
        command_timeout: float = 5.0,
        sweep_interval: float | None = 300.0,
        sweep_batch: int = 1000,
        lock_scope: LockScope = "session",
        replica: AsyncEngine | None = None,
        _owned: bool = False,
    ) -> None:
        if engine.dialect.name != "postgresql" or engine.dialect.driver != "asyncpg":
            raise ConfigurationError(
                "SQLAlchemyBackend needs a postgresql+asyncpg engine, got "
                f"{engine.dialect.name}+{engine.dialect.driver}"
            )
        super().__init__(
            table=table,
            schema=schema,
            create_table=create_table,
            command_timeout=command_timeout,
            sweep_interval=sweep_interval,
            sweep_batch=sweep_batch,
            lock_scope=lock_scope,
        )
        self._connector = EngineConnector(engine, owned=_owned)
        if replica is not None:
            self.replica_connector = EngineConnector(replica, owned=_owned)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """Build from ``postgresql+asyncpg://user@host/db?option=value``, with its own engine.

        Backend options in the query (``table``, ``schema``, ``create_table``,
        ``command_timeout``, ``sweep_interval``, ``sweep_batch``, ``lock_scope``) and engine
        options (``pool_size`` default 10, ``max_overflow`` default 0,
        ``pool_timeout`` default `command_timeout`, ``connect_timeout``
        default 2, ``statement_cache_size``: asyncpg's, 0 behind PgBouncer in transaction
        mode) are taken out; the rest goes to SQLAlchemy. ``replica`` (a
        ``postgresql+asyncpg://`` URL) gets an engine of its own with the same
        options. Keyword `options` win over the URL's; ``engine_options`` (a
        dict) is passed to `create_async_engine` as is.
        """
        if url.partition("://")[0].lower() != "postgresql+asyncpg":
            raise ConfigurationError(
                "SQLAlchemyBackend.from_url takes postgresql+asyncpg:// URLs, "
                f"got {redact_url(url)!r}"
            )
        known = {
            "table",
            "schema",
            "create_table",
            "command_timeout",
            "sweep_interval",
            "sweep_batch",
            "lock_scope",
            "pool_size",
            "max_overflow",
            "pool_timeout",
            "connect_timeout",
            "statement_cache_size",
            "replica",
        }
        engine_url, merged = split_url(url, known, options)
        if "," in engine_url.partition("://")[2].partition("/")[0].rpartition("@")[2]:
            raise ConfigurationError(
                "SQLAlchemy reads one host in a URL's authority: list several in the query "
                f"(?host=h1:5432&host=h2:5432), got {redact_url(url)!r}"
            )
        engine_options: dict[str, Any] = dict(merged.pop("engine_options", None) or {})
        command_timeout = float(merged.get("command_timeout", 5.0))
        connect_timeout = float(merged.pop("connect_timeout", 2.0))
        engine_options.setdefault("pool_size", merged.pop("pool_size", 10))
        engine_options.setdefault("max_overflow", merged.pop("max_overflow", 0))
        engine_options.setdefault("pool_timeout", merged.pop("pool_timeout", command_timeout))
        connect_args: Mapping[str, Any] = engine_options.pop("connect_args", {})
        engine_options["connect_args"] = {
            "timeout": connect_timeout,
            "command_timeout": command_timeout,
            **(
                {"statement_cache_size": merged.pop("statement_cache_size")}
                if "statement_cache_size" in merged
                else {}
            ),
            **connect_args,
        }
        replica_url = merged.pop("replica", None)
        try:
            engine = create_async_engine(engine_url, **engine_options)
            if replica_url is not None:
                merged["replica"] = create_async_engine(replica_url, **engine_options)
        except (ValueError, ArgumentError):  # SQLAlchemy's URL parser: its words may quote it
            raise ConfigurationError(
                f"SQLAlchemy cannot read the URL {redact_url(url)!r} (an empty port?)"
            ) from None
        try:
            return cls(engine, _owned=True, **merged)
        except TypeError as exc:
            raise ConfigurationError(f"Bad SQLAlchemyBackend option: {exc}") from None

    @property
    def connector(self) -> Connector:
        """The engine connector."""
        return self._connector

    @property
    def engine(self) -> AsyncEngine:
        """The engine sessions are stored through."""
        return self._connector.engine
