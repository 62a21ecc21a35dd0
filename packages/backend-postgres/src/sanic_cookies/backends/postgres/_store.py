"""What both PostgreSQL backends share: the operations, on any `Connector`."""

from __future__ import annotations

import asyncio
import logging
from abc import abstractmethod
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, ClassVar

import asyncpg
from sqlalchemy import Table

from sanic_cookies import (
    Backend,
    BackendUnavailable,
    ConfigurationError,
    KeyTurns,
    SessionLock,
    StoredSession,
)
from sanic_cookies.clock import now

from ._connector import Conn, Connector
from ._lock import LockScope, SessionScopedLock, TransactionScopedLock
from ._pooling import Pooling, detect_pooling
from ._schema import ddl_statements, qualified_name
from ._sql import Queries, rows_affected
from ._sweeper import Sweeper
from ._table_check import missing_table, no_rights, table_problem

__all__ = ["PostgresStore", "is_unreachable"]

logger = logging.getLogger("sanic_cookies.postgres")

# Server answers that mean "not reachable right now" rather than "misconfigured": a
# connection failure (08), insufficient resources (53: too many connections, as while a
# deploy's old and new workers overlap; disk full), an operator's intervention (57).
_TRANSIENT_SQLSTATE_CLASSES = ("08", "53", "57")
# Server answers that mean a mistake in the settings: the role or password (28), the
# database (3D), the schema (3F), the role's rights (42).
_CONFIGURATION_SQLSTATE_CLASSES = ("28", "3D", "3F", "42")


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """`exc`, then what it wraps (SQLAlchemy's ``orig``, or ``__cause__``), once each."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = getattr(current, "orig", None) or current.__cause__


def is_unreachable(exc: BaseException) -> bool:
    """Tell whether `exc` means the database is down or unreachable (worth waiting out)."""
    for cause in _causes(exc):
        if isinstance(cause, asyncpg.ClientConfigurationError):  # (an InterfaceError)
            return False  # sslmode=bogus and the like: the settings, not the network
        if isinstance(cause, OSError | TimeoutError | asyncpg.InterfaceError):
            return True
        if isinstance(cause, asyncpg.PostgresError):
            return str(cause.sqlstate or "")[:2] in _TRANSIENT_SQLSTATE_CLASSES
    return False


def _settings_mistake(exc: BaseException) -> Exception | None:
    """What behind `exc` names a settings mistake (unknown database, bad sslmode, ...), if any."""
    for cause in _causes(exc):
        if isinstance(cause, asyncpg.ClientConfigurationError):
            return cause
        if isinstance(cause, asyncpg.PostgresError):
            if str(cause.sqlstate or "")[:2] in _CONFIGURATION_SQLSTATE_CLASSES:
                return cause
            return None
    return None


class PostgresStore(Backend):
    """Sessions in one PostgreSQL table, reached through a `Connector`.

    Subclasses decide where connections come from (`PostgresBackend`:
    asyncpg's pool; `SQLAlchemyBackend`: an `AsyncEngine`'s pool).
    """

    supports_user_index: ClassVar[bool] = True
    #: The connector of the read replica, if any (set by subclasses that take ``replica=``).
    replica_connector: Connector | None = None

    def __init__(
        self,
        *,
        table: str | Table,
        schema: str | None,
        create_table: bool,
        command_timeout: float,
        sweep_interval: float | None,
        sweep_batch: int,
        lock_scope: LockScope,
    ) -> None:
        if lock_scope not in ("session", "transaction"):
            raise ConfigurationError(
                f"lock_scope must be 'session' or 'transaction', got {lock_scope!r}"
            )
        if command_timeout <= 0:
            raise ConfigurationError(f"command_timeout must be positive, got {command_timeout}")
        if sweep_interval is not None and sweep_interval < 0:
            raise ConfigurationError(f"sweep_interval must not be negative, got {sweep_interval}")
        if sweep_batch < 1:
            raise ConfigurationError(f"sweep_batch must be at least 1, got {sweep_batch}")
        if isinstance(table, Table):
            if schema is not None and schema != table.schema:
                raise ConfigurationError("Pass the schema in the Table, not as schema=")
            self.table = table
        else:
            from sqlalchemy import MetaData

            from ._schema import sessions_table

            try:
                self.table = sessions_table(MetaData(), table, schema)
            except ValueError as exc:
                raise ConfigurationError(str(exc)) from None
        self.queries = Queries(qualified_name(self.table))
        self.session_lock_sql = self.queries.session_lock_statements()
        self.create_table = create_table
        self.command_timeout = float(command_timeout)
        self.sweep_batch = sweep_batch
        self.lock_scope: LockScope = lock_scope
        self._sweeper = Sweeper(self, sweep_interval or None)
        self._ddl_pending = False
        self._pooling_pending = False
        # Why this backend cannot work through its connections (see `_check_pooling`).
        self._refusal: str | None = None
        self._ddl_lock: asyncio.Lock | None = None
        self._starting = False  # in open(): a bad table raises ConfigurationError
        #: The session lock's in-process queue: tasks of this process wanting the same
        #: session wait here in order, so only one of them holds a connection for it.
        self.lock_turns = KeyTurns()

    @property
    @abstractmethod
    def connector(self) -> Connector:
        """Where this backend borrows its connections."""

    # -- life cycle -----------------------------------------------------------------

    async def open(self) -> None:
        """Connect, check the table (creating it if asked), and start the sweeper.

        A database that cannot be reached now does not stop the app: one
        warning is logged, requests answer 503 until it is back, and the table
        is checked (and, with `create_table`, created) on the first request that
        reaches it. A reachable database that refuses (bad password, unknown
        database, no permission) raises, and so does a missing table without
        `create_table` or a table of that name whose columns are not ours
        (`ConfigurationError`), so the mistake shows at start-up.
        """
        await self.connector.open()
        if self.replica_connector is not None:
            await self.replica_connector.open()
        self._ddl_pending = True  # the table is checked (and created, with create_table)
        self._pooling_pending = True
        self._refusal = None
        self._ddl_lock = asyncio.Lock()
        self._starting = True
        try:
            await self.ready()
        except BackendUnavailable as exc:
            if self._refusal is None:
                raise
            raise ConfigurationError(self._refusal) from exc
        except Exception as exc:
            if not is_unreachable(exc):
                mistake = _settings_mistake(exc)
                if mistake is None:
                    raise
                who = "PostgreSQL" if isinstance(mistake, asyncpg.PostgresError) else "asyncpg"
                raise ConfigurationError(
                    f"{self.label}: {who} refused at start-up: {mistake} "
                    f"({type(mistake).__name__}); check the database, user, password and "
                    "options of the URL, and the role's rights on the schema"
                ) from exc
            logger.warning(
                "%s: database unreachable at start-up (%s: %s); sessions answer 503 until it "
                "is back",
                self.label,
                type(exc).__name__,
                exc,
            )
        finally:
            self._starting = False
        self._sweeper.start()

    async def close(self) -> None:
        """Stop the sweeper and close connections this backend opened."""
        await self._sweeper.stop()
        await self.connector.close()
        if self.replica_connector is not None:
            await self.replica_connector.close()

    async def ready(self) -> None:
        """Do what start-up could not: check the pooling, check (and create) the table.

        Raises:
            BackendUnavailable: The connections go through a proxy this backend
                cannot lock through (see `_check_pooling`); at start-up `open`
                raises `ConfigurationError` instead.
            ConfigurationError: At start-up, the table is missing without
                `create_table`, or its columns are not ours (see `_check_table`).
                After start-up (the database was down then) the same answers
                `BackendUnavailable` (503) with one ERROR line naming the table and
                the fix, and the table is checked again on the next request.
        """
        if self._refusal is not None:
            raise BackendUnavailable(self._refusal)
        if not (self._ddl_pending or self._pooling_pending):
            return
        assert self._ddl_lock is not None
        async with self._ddl_lock:
            if self._pooling_pending:
                self._refusal = await self._check_pooling()
                self._pooling_pending = False
                if self._refusal is not None:
                    logger.error("%s: %s", self.label, self._refusal)
                    raise BackendUnavailable(self._refusal)
            if self._ddl_pending:
                try:
                    exists = await self._check_table()
                except ConfigurationError as exc:
                    if self._starting:
                        raise
                    # The server runs: like a store that is down, not a bug of the
                    # handler (a 500); checked again next time, so fixing the table
                    # (python -m sanic_cookies ddl) needs no restart.
                    logger.error("%s", exc)  # (its message names the backend)
                    raise BackendUnavailable(str(exc)) from exc
                if exists and self.create_table:
                    await self._create()
                self._ddl_pending = False

    async def _check_pooling(self) -> str | None:
        """Why the lock cannot work through this backend's connections, or None if it can.

        The session-scoped lock needs one server connection per client connection
        for two statements in a row; a transaction-pooling proxy (PgBouncer
        ``pool_mode=transaction``) breaks that. asyncpg's named prepared
        statements break on such a proxy whatever the scope, unless
        ``statement_cache_size=0`` (or the proxy tracks them: PgBouncer 1.21+
        ``max_prepared_statements``). See `detect_pooling`.
        """
        found = await detect_pooling(self.connector, self.command_timeout)
        logger.debug("%s: connections reach PostgreSQL %s", self.label, found.value)
        no_cache = (
            "set asyncpg's statement_cache_size=0 (PostgresBackend: ?statement_cache_size=0 or "
            "pool_options; SQLAlchemyBackend: ?statement_cache_size=0 or connect_args), "
            "or let the proxy keep prepared statements (PgBouncer 1.21+ max_prepared_statements)"
        )
        if self.lock_scope == "session" and found is not Pooling.DIRECT:
            if found is Pooling.SESSION:
                return None
            return (
                "PostgreSQL is reached through a transaction-pooling proxy (such as PgBouncer "
                "with pool_mode=transaction): lock_scope='session' would leave its advisory "
                "lock on a server connection that other clients then use. Use "
                'lock_scope="transaction"'
                + ("" if found is Pooling.TRANSACTION else f", and {no_cache}")
            )
        if found is Pooling.TRANSACTION_NO_PREPARED:
            return (
                "PostgreSQL is reached through a transaction-pooling proxy that loses asyncpg's "
                f"named prepared statements between transactions: {no_cache}"
            )
        return None

    async def _create(self) -> None:
        script = self.queries.create_script(ddl_statements(self.table))
        async with self._connection() as conn:
            await conn.execute(script, timeout=max(self.command_timeout, 30.0))
        logger.debug("%s: table %s ready", self.label, self.queries.table)

    async def _check_table(self) -> bool:
        """Look at the table (borrowing a connection warms the pool).

        Returns:
            True if it is still to be created (it is missing and `create_table` is set).

        Raises:
            ConfigurationError: It is missing without `create_table`, is not ours, or
                the role may not read and write its rows.
        """
        async with self._connection() as conn:
            columns = await conn.fetch(
                self.queries.table_columns, self.queries.table, timeout=self.command_timeout
            )
            exists = bool(columns) or await conn.fetchval(
                self.queries.table_exists, self.queries.table, timeout=self.command_timeout
            )
            if exists and not columns:
                # Another worker's CREATE TABLE committed between the two statements:
                # read the columns again rather than call the new table "not ours".
                columns = await conn.fetch(
                    self.queries.table_columns, self.queries.table, timeout=self.command_timeout
                )
            allowed = exists and await conn.fetchval(
                self.queries.table_rights, self.queries.table, timeout=self.command_timeout
            )
        if not exists:
            if self.create_table:
                return True
            raise missing_table(self.label, self.queries.table)
        problem = table_problem(self.label, self.queries.table, [tuple(c) for c in columns])
        if problem is not None:
            raise problem
        if not allowed:
            raise no_rights(self.label, self.queries.table)
        return False

    @asynccontextmanager
    async def _connection(self, connector: Connector | None = None) -> AsyncIterator[Conn]:
        """Borrow a connection (from `connector`, default the primary's) for autocommit."""
        checkout = await (connector or self.connector).checkout(self.command_timeout)
        try:
            yield checkout.conn
        except BaseException as exc:
            conn = checkout.conn
            clean = (
                isinstance(exc, asyncpg.PostgresError)
                and not is_unreachable(exc)
                and not conn.is_closed()
                and not conn.is_in_transaction()
            )
            await (checkout.give_back() if clean else checkout.discard())
            raise
        await checkout.give_back()

    async def _execute(self, sql: str, *args: Any) -> str:
        await self.ready()
        async with self._connection() as conn:
            return await conn.execute(sql, *args, timeout=self.command_timeout)

    async def _fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        await self.ready()
        async with self._connection() as conn:
            return await conn.fetch(sql, *args, timeout=self.command_timeout)

    # -- the Backend contract -------------------------------------------------------

    async def load(self, key: str) -> StoredSession | None:
        """One prepared SELECT of a live row."""
        rows = await self._fetch(self.queries.load, key)
        return StoredSession(bytes(rows[0][0]), now() + float(rows[0][1])) if rows else None

    async def save(
        self,
        key: str,
        value: bytes,
        ttl: float,
        *,
        user_id: str | None = None,
        replace_only: bool = False,
    ) -> bool:
        """One UPSERT (or, with `replace_only`, one UPDATE of a live row)."""
        if replace_only:
            status = await self._execute(self.queries.replace, key, value, float(ttl), user_id)
            return rows_affected(status) > 0
        await self._execute(self.queries.save, key, value, float(ttl), user_id)
        return True

    async def delete(self, key: str) -> None:
        """One DELETE; a missing key is fine."""
        await self._execute(self.queries.delete, key)

    async def touch(self, key: str, ttl: float) -> bool:
        """One UPDATE of a live row's expiry."""
        status = await self._execute(self.queries.touch, key, float(ttl))
        return rows_affected(status) > 0

    def lock(self, key: str, *, timeout: float, lease: float) -> SessionLock:
        """An advisory lock on `key`, of scope `lock_scope` (see `AdvisoryLock`)."""
        scope = SessionScopedLock if self.lock_scope == "session" else TransactionScopedLock
        return scope(self, key, timeout=timeout, lease=lease)

    async def list_user_sessions(self, user_id: str) -> Mapping[str, StoredSession]:
        """The live rows whose ``user_id`` is `user_id` (one indexed SELECT).

        Read from the replica when one is configured (it may lag the primary by
        its replication delay); from the primary when there is none, or when the
        replica fails in any way (logged).
        """
        rows = await self._read_replica(self.queries.list_user, user_id)
        return self._listing(rows)

    async def probe_replica(self) -> bool | None:
        """Ask the read replica a trivial query: None if there is none, True if it answers.

        For ``python -m sanic_cookies check``, which must report a failing replica
        that `list_user_sessions` quietly works around.

        Raises:
            Exception: Whatever the replica failed with.
        """
        replica = self.replica_connector
        if replica is None:
            return None
        async with self._connection(replica) as conn:
            await conn.fetch(
                f"SELECT 1 FROM {self.queries.table} LIMIT 1", timeout=self.command_timeout
            )
        return True

    async def list_user_sessions_primary(self, user_id: str) -> Mapping[str, StoredSession]:
        """`list_user_sessions` read from the primary, never the replica.

        For the login path (the ``max_sessions_per_user`` cap): a lagging
        replica would under-count, and a broken one must not fail a login.
        """
        return self._listing(await self._fetch(self.queries.list_user, user_id))

    @staticmethod
    def _listing(rows: list[asyncpg.Record]) -> dict[str, StoredSession]:
        t = now()
        return {str(r[0]): StoredSession(bytes(r[1]), t + float(r[2])) for r in rows}

    async def _read_replica(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        """A read that may be served by the replica. Never used on the locked path."""
        replica = self.replica_connector
        if replica is None:
            return await self._fetch(sql, *args)
        await self.ready()
        try:
            async with self._connection(replica) as conn:
                return await conn.fetch(sql, *args, timeout=self.command_timeout)
        except Exception as exc:
            # Any failure of the replica (refused, unknown database, a missing table,
            # a timeout): the primary has the answer, and the replica is optional.
            logger.warning(
                "%s: read replica failed (%s: %s); reading from the primary",
                self.label,
                type(exc).__name__,
                str(exc).splitlines()[0][:160] if str(exc) else "",
            )
        return await self._fetch(sql, *args)

    async def delete_user_sessions(self, user_id: str, *, keep: str | None = None) -> int:
        """Delete every row of `user_id` except `keep`; return how many live ones went."""
        rows = await self._fetch(self.queries.delete_user, user_id, keep)
        return int(rows[0][0])

    # -- sweeping -----------------------------------------------------------------------

    async def cleanup(self) -> int:
        """Delete every expired row now, whatever the sweepers are doing; return how many.

        Rows are deleted in batches of `sweep_batch`, each its own short
        transaction, skipping rows a writer has locked. This is what
        ``python -m sanic_cookies cleanup --backend URL`` runs (e.g. from cron).
        """
        return await self._sweep(elect=False)

    async def sweep(self) -> int:
        """One elected sweep, as the background sweeper runs it; return rows deleted.

        Only the process holding the sweep lock deletes; the others return 0 at once.
        """
        return await self._sweep(elect=True)

    async def _sweep(self, *, elect: bool) -> int:
        await self.ready()
        sql = self.queries.sweep(elect=elect)
        args: tuple[int, ...] = (
            (self.queries.sweep_lock_id, self.sweep_batch) if elect else (self.sweep_batch,)
        )
        total = 0
        while True:
            async with self._connection() as conn:
                row = await conn.fetchrow(sql, *args, timeout=max(self.command_timeout, 30.0))
            assert row is not None
            elected, deleted = bool(row[0]), int(row[1])
            total += deleted
            if not elected or deleted < self.sweep_batch:
                return total
