"""`PostgresBackend`: sessions in PostgreSQL through an asyncpg pool."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Self

import asyncpg
from sqlalchemy import Table

from sanic_cookies import ConfigurationError, redact_url

from ._connector import Connector, PoolConnector
from ._lock import LockScope
from ._options import check_dsn, split_url
from ._schema import DEFAULT_TABLE
from ._store import PostgresStore

__all__ = ["PostgresBackend"]

_SCHEMES = ("postgresql", "postgres")


class PostgresBackend(PostgresStore):
    """Sessions in a PostgreSQL table, through asyncpg (``postgresql://`` URLs).

    ::

        Session(app, backend="postgresql://app@db:5432/app?create_table=true")
        # or, sharing the app's pool:
        Session(app, backend=PostgresBackend(pool=app.ctx.pool, table="web_sessions"))

    Every operation outside a lock is one prepared statement (one round trip);
    see `AdvisoryLock` for the lock's. Expired rows are never returned and are
    deleted by a sweeper that one worker at a time runs (see `cleanup`).

    Args:
        dsn: The database URL, for a pool of the backend's own (closed with it).
        pool: An existing asyncpg pool to use instead; the backend never
            closes it. (asyncpg's default pool ``reset`` sends one extra
            statement per release; pass ``reset=`` a no-op coroutine to
            `asyncpg.create_pool` to avoid it, as the backend's own pool does.)
        table: The table name, or a `Table` from `sessions_table`.
        schema: The table's schema (None: the search path).
        create_table: Create the schema, table and indexes at start-up if missing.
        max_size: The most connections in the backend's own pool (per worker).
        connect_timeout: Seconds to establish a connection (a dead host fails this fast).
        command_timeout: Seconds any one statement may take.
        sweep_interval: Seconds between sweeps of expired rows; None or 0: no sweeper.
        sweep_batch: Rows deleted per sweep transaction.
        lock_scope: ``"session"`` (2 round trips per locked read-modify-write;
            PostgreSQL 14+, not behind a transaction-pooling proxy) or
            ``"transaction"`` (3 round trips, works through PgBouncer's
            transaction pooling). See `AdvisoryLock`.
        pool_options: More keyword arguments for `asyncpg.create_pool`
            (``ssl``, ``server_settings``, ``init``, ``statement_cache_size``, ...);
            they apply to the replica's pool too. A ``min_size`` above 0 (the
            default is 0) makes asyncpg connect while creating the pool: a
            database that is down at start-up then fails the start.
        replica: A read replica: its URL (a pool of the backend's own, with the
            same settings), or an asyncpg pool. Only `list_user_sessions` reads
            from it (``list_sessions`` and the CLI's listing); loads, locks and
            writes always go to the primary. None: everything on the primary.
    """

    name: ClassVar[str] = "postgres"

    def __init__(
        self,
        dsn: str | None = None,
        *,
        pool: asyncpg.Pool[asyncpg.Record] | None = None,
        table: str | Table = DEFAULT_TABLE,
        schema: str | None = None,
        create_table: bool = False,
        max_size: int = 10,
        connect_timeout: float = 2.0,
        command_timeout: float = 5.0,
        sweep_interval: float | None = 300.0,
        sweep_batch: int = 1000,
        lock_scope: LockScope = "session",
        pool_options: Mapping[str, Any] | None = None,
        replica: str | asyncpg.Pool[asyncpg.Record] | None = None,
    ) -> None:
        if (dsn is None) == (pool is None):
            raise ConfigurationError("PostgresBackend needs either a dsn or a pool, not both")
        for url in (dsn, replica):
            if isinstance(url, str):
                check_dsn(url)  # as from_url does (asyncpg's own errors may quote a password)
        if max_size < 1:
            raise ConfigurationError(f"max_size must be at least 1, got {max_size}")
        if connect_timeout <= 0:
            raise ConfigurationError(f"connect_timeout must be positive, got {connect_timeout}")
        super().__init__(
            table=table,
            schema=schema,
            create_table=create_table,
            command_timeout=command_timeout,
            sweep_interval=sweep_interval,
            sweep_batch=sweep_batch,
            lock_scope=lock_scope,
        )
        self._connector = PoolConnector(
            dsn=dsn,
            pool=pool,
            max_size=max_size,
            connect_timeout=connect_timeout,
            command_timeout=command_timeout,
            pool_options=pool_options or {},
        )
        if replica is not None:
            self.replica_connector = PoolConnector(
                dsn=replica if isinstance(replica, str) else None,
                pool=None if isinstance(replica, str) else replica,
                max_size=max_size,
                connect_timeout=connect_timeout,
                command_timeout=command_timeout,
                pool_options=pool_options or {},
            )

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """Build from ``postgresql://user:password@host:port/db?option=value``.

        Query options named like this class's arguments (``table``, ``schema``,
        ``create_table``, ``max_size``, ``connect_timeout``, ``command_timeout``,
        ``sweep_interval``, ``sweep_batch``, ``lock_scope``, ``replica``) configure the
        backend, and ``statement_cache_size`` goes to the pool (0 behind PgBouncer in
        transaction mode); the rest of the URL goes to asyncpg unchanged. Keyword
        `options` win over the URL's.
        """
        scheme, sep, _ = url.partition("://")
        if not sep or scheme.lower() not in _SCHEMES:
            raise ConfigurationError(
                f"PostgresBackend takes postgresql:// or postgres:// URLs, got {redact_url(url)!r}"
            )
        known = {
            "table",
            "schema",
            "create_table",
            "max_size",
            "connect_timeout",
            "command_timeout",
            "sweep_interval",
            "sweep_batch",
            "lock_scope",
            "replica",
            "statement_cache_size",
        }
        dsn, merged = split_url(url, known, options)
        if "statement_cache_size" in merged:
            size = merged.pop("statement_cache_size")
            merged["pool_options"] = {
                "statement_cache_size": size,
                **(merged.get("pool_options") or {}),
            }
        try:
            return cls(dsn, **merged)
        except TypeError as exc:
            raise ConfigurationError(f"Bad PostgresBackend option: {exc}") from None

    @property
    def connector(self) -> Connector:
        """The asyncpg pool connector."""
        return self._connector

    @property
    def pool(self) -> asyncpg.Pool[asyncpg.Record] | None:
        """The asyncpg pool in use (None until `open`, and after `close` of an own pool).

        A pool the backend created is its own: it counts the connections it lends to
        know, without a timer, when one is free. For queries of your own, create the
        pool yourself and share it (``PostgresBackend(pool=...)``).
        """
        return self._connector.pool
