"""The session lock: a PostgreSQL advisory lock on a borrowed connection, in one of two scopes.

Both scopes hold one connection for the whole ``async with`` block, free the
lock when that connection drops (a killed worker, a network failure), have a
lease (the server closes the connection of a holder that stays silent for
`lease` seconds), and refuse to write once the lock is lost (`LockLost`).

``lock_scope="session"`` (the default): `SessionScopedLock`, 2 round trips::

    acquire            1. lock, then read the row FOR SHARE         (one prepared statement)
    save_and_release   2. write, then unlock                        (one prepared statement)

A session-level advisory lock, taken and released by the statements
themselves in autocommit. The lease is ``idle_session_timeout``. It needs
PostgreSQL 14 or later and a direct (or session-pooled) connection: behind a
transaction-pooling proxy (PgBouncer ``pool_mode=transaction``) the lock would
stay on a server connection that other clients then use; the backend checks for
such a proxy when it opens and refuses (see ``_pooling``).

``lock_scope="transaction"``: `TransactionScopedLock`, 3 round trips::

    acquire            1. BEGIN ISOLATION LEVEL READ COMMITTED;
                          SET LOCAL lock_timeout, idle_in_transaction_session_timeout;
                          SELECT pg_advisory_xact_lock(id)          (one simple query)
                       2. SELECT the row                            (prepared statement)
    save_and_release   3. UPSERT ...; COMMIT                        (one simple query)

The lock lives exactly as long as the transaction, which works through any
proxy. The load is its own round trip because asyncpg returns no rows from a
multi-statement simple query, and sends every prepared statement with its own
Sync, so ``BEGIN`` cannot share a round trip with a statement whose rows we
need. The lease is ``idle_in_transaction_session_timeout``, set for this
transaction only.

Why a single lock-and-read statement does not lose updates (session scope):
its snapshot is taken before the lock wait, but it reads ``FOR SHARE``, which
under READ COMMITTED returns the newest committed version of a row that
changed after the snapshot (waiting for a writer still committing). Rows are
only ever created outside the lock (a new session gets a new id), and a locked
save that would overwrite a row created after the snapshot writes nothing and
raises `LockLost`. Under a stricter default isolation the read fails instead
of returning a stale row; it is then repeated with a fresh snapshot.
"""

from __future__ import annotations

import contextlib
from abc import abstractmethod
from typing import TYPE_CHECKING, Literal

import asyncpg

from sanic_cookies import (
    ConfigurationError,
    LockLost,
    LockTimeout,
    SessionLock,
    StoredSession,
    Turn,
    clock,
)

from ._connector import Checkout, Conn
from ._sql import DIVISION_BY_ZERO, milliseconds

if TYPE_CHECKING:
    from ._store import PostgresStore

__all__ = ["AdvisoryLock", "LockScope", "SessionScopedLock", "TransactionScopedLock"]

#: Which advisory lock `PostgresBackend` / `SQLAlchemyBackend` take (see the module docs).
LockScope = Literal["session", "transaction"]

# A waited-for lock (or row) not granted within lock_timeout, or the server's own
# statement_timeout: the lock was not granted.
_NOT_GRANTED = (asyncpg.LockNotAvailableError, asyncpg.QueryCanceledError)
# The first release with idle_session_timeout, the session scope's lease.
_IDLE_SESSION_TIMEOUT_SINCE = 14
# Re-reads after a serialization failure (stricter default isolation): see `_reread`.
_REREADS = 3


class AdvisoryLock(SessionLock):
    """Exclusive access to one session row, across every process using the database.

    Made by `PostgresBackend.lock` / `SQLAlchemyBackend.lock`. Subclasses
    implement the steps of one scope on the borrowed connection; this class
    borrows it, keeps it for the block and gives it back (or closes it when
    its state is in doubt).
    """

    __slots__ = ("_checkout", "_key", "_lease", "_store", "_timeout", "_turn")

    def __init__(self, store: PostgresStore, key: str, *, timeout: float, lease: float) -> None:
        self._store = store
        self._key = key
        self._timeout = timeout
        self._lease = lease
        self._checkout: Checkout | None = None
        self._turn: Turn | None = None

    async def acquire(self) -> StoredSession | None:
        """Take the lock (waiting at most the acquire timeout), then load the row.

        The tasks of this process that want the same session first queue in
        order (`KeyTurns`), so only the first of them holds a connection and
        waits in the server's lock queue; the server wakes it when the holder
        in any process unlocks.

        Raises:
            LockTimeout: Neither a connection nor the lock came within the timeout.
        """
        if self._checkout is not None:
            raise RuntimeError("this session lock is already held")
        store = self._store
        await store.ready()
        deadline = clock.monotonic() + self._timeout
        try:
            turn = await store.lock_turns.take(self._key, within=self._timeout, hold=self._lease)
        except TimeoutError:
            raise LockTimeout(f"Session lock not acquired within {self._timeout}s") from None
        try:
            left = deadline - clock.monotonic()
            self._checkout, stored = await self._checkout_and_lock(store, left)
        except LockTimeout:
            turn.end()
            raise
        except Exception as exc:
            turn.fail(exc)  # the database failed: the waiters behind answer now, not one by one
            raise
        except BaseException:
            turn.end()
            raise
        self._turn = turn
        return stored

    async def _checkout_and_lock(
        self, store: PostgresStore, wait: float
    ) -> tuple[Checkout, StoredSession | None]:
        """Borrow a connection, take the lock and read the row, within `wait` seconds."""
        deadline = clock.monotonic() + wait
        try:
            checkout = await store.connector.checkout(max(wait, 0.0))
        except TimeoutError:
            raise LockTimeout(
                f"No database connection for the session lock within {self._timeout}s"
            ) from None
        try:
            row = await self._lock_and_load(checkout, max(deadline - clock.monotonic(), 0.0))
        except LockTimeout:
            raise
        except BaseException:
            await checkout.discard()
            raise
        return checkout, (
            None if row is None else StoredSession(bytes(row[0]), clock.now() + float(row[1]))
        )

    @abstractmethod
    async def _lock_and_load(self, checkout: Checkout, wait: float) -> asyncpg.Record | None:
        """Take the lock within `wait` seconds and read the live row.

        On `LockTimeout`, leave nothing held and dispose of `checkout`; on any
        other error the caller closes the connection.
        """

    def _end_turn(self) -> None:
        """The next task of this process waiting for this session may go on."""
        turn, self._turn = self._turn, None
        if turn is not None:
            turn.end()

    def _take(self) -> Checkout:
        checkout, self._checkout = self._checkout, None
        self._end_turn()
        if checkout is None:
            raise LockLost("This session lock is not held (never acquired, or already released)")
        return checkout

    def _not_held(self) -> LockLost:
        return LockLost("This session lock is not held")


class SessionScopedLock(AdvisoryLock):
    """A session-level advisory lock taken and read in one round trip, released in one.

    The default scope; see the module documentation.
    """

    __slots__ = ("_found", "_lock_id", "_sql")

    def __init__(self, store: PostgresStore, key: str, *, timeout: float, lease: float) -> None:
        super().__init__(store, key, timeout=timeout, lease=lease)
        self._found = False
        self._sql = store.session_lock_sql
        self._lock_id = store.queries.lock_id(key)

    async def _lock_and_load(self, checkout: Checkout, wait: float) -> asyncpg.Record | None:
        store = self._store
        if checkout.conn.get_server_version().major < _IDLE_SESSION_TIMEOUT_SINCE:
            raise ConfigurationError(
                "lock_scope='session' needs PostgreSQL 14 or later (its lease is "
                "idle_session_timeout); use lock_scope='transaction' on older servers"
            )
        args = (
            self._key,
            self._lock_id,
            str(milliseconds(wait)),
            str(milliseconds(self._lease)),
        )
        conn = checkout.conn
        try:
            row = await conn.fetchrow(
                self._sql.lock_and_load, *args, timeout=wait + store.command_timeout
            )
        except _NOT_GRANTED:
            # The advisory lock may have been granted before the row lock timed out, and a
            # session-level lock outlives the failed statement: close the connection.
            await checkout.discard()
            raise LockTimeout(f"Session lock not acquired within {self._timeout}s") from None
        except asyncpg.SerializationError:
            # A stricter default isolation than READ COMMITTED: the read refused to
            # follow a row changed after the snapshot. The lock is held now; read again.
            # A retry can still meet the previous holder's commit in flight (it waits for
            # it, then fails once more); the one after that sees it committed.
            row = await self._reread(conn, args)
        self._found = row is not None
        return row

    async def _reread(self, conn: Conn, args: tuple[str, int, str, str]) -> asyncpg.Record | None:
        sql, limit = self._sql.reread, self._store.command_timeout
        for _ in range(_REREADS - 1):
            with contextlib.suppress(asyncpg.SerializationError):
                return await conn.fetchrow(sql, *args, timeout=limit)
        return await conn.fetchrow(sql, *args, timeout=limit)  # the last try's error propagates

    async def save_and_release(
        self,
        value: bytes,
        ttl: float,
        *,
        user_id: str | None = None,
        replace_only: bool = False,
    ) -> bool:
        """Write, then unlock, in one round trip.

        Raises:
            LockLost: The connection dropped (lease expired, server restart), or
                a row was created after the lock's read; nothing was written.
        """
        mode = "replace" if replace_only else ("upsert" if self._found else "create")
        written = await self._finish(
            "save",
            self._sql.save[mode],
            self._key,
            value,
            float(ttl),
            user_id,
        )
        if mode == "create" and not written:
            raise LockLost(
                "The session was created by someone else after this lock read it; "
                "nothing was written"
            )
        return written > 0

    async def delete_and_release(self) -> None:
        """Delete the row, then unlock, in one round trip.

        Raises:
            LockLost: The connection dropped; nothing was deleted.
        """
        await self._finish("delete", self._sql.delete, self._key)

    async def release(self) -> None:
        """Unlock and return the connection (one round trip). Idempotent, never raises."""
        checkout, self._checkout = self._checkout, None
        self._end_turn()
        if checkout is None:
            return
        try:
            await checkout.conn.fetchrow(
                self._sql.unlock, self._lock_id, timeout=self._store.command_timeout
            )
        except Exception:
            await checkout.discard()  # closing the connection frees the lock just the same
            return
        except BaseException:
            await checkout.discard()
            raise
        await checkout.give_back()

    async def extend(self, lease: float) -> None:
        """Restart the lease at `lease` seconds (one round trip).

        Raises:
            LockLost: The connection dropped.
        """
        checkout = self._checkout
        if checkout is None:
            raise self._not_held()
        store = self._store
        try:
            await checkout.conn.fetchrow(
                self._sql.set_lease,
                str(milliseconds(lease)),
                timeout=store.command_timeout,
            )
        except BaseException as exc:
            self._checkout = None
            self._end_turn()
            await checkout.discard()
            if isinstance(exc, Exception):
                raise _lost("extend", exc) from exc
            raise
        self._lease = lease
        if self._turn is not None:
            self._turn.extend(lease)

    async def _finish(self, operation: str, sql: str, *args: object) -> int:
        """Run the write-then-unlock statement `sql`; return the rows it wrote."""
        checkout = self._take()
        store = self._store
        try:
            row = await checkout.conn.fetchrow(
                sql, *args, self._lock_id, timeout=store.command_timeout
            )
        except Exception as exc:
            # Unknown whether the statement unlocked: closing the connection settles it
            # (once the server cancelled the statement: it must not write later).
            await checkout.close(store.command_timeout)
            raise _lost(operation, exc) from exc
        except BaseException:
            await checkout.discard()
            raise
        await checkout.give_back()
        assert row is not None
        return int(row[0])


class TransactionScopedLock(AdvisoryLock):
    """A transaction-scoped advisory lock: 3 round trips, works behind any proxy.

    ``lock_scope="transaction"``; see the module documentation.
    """

    __slots__ = ()

    async def _lock_and_load(self, checkout: Checkout, wait: float) -> asyncpg.Record | None:
        store = self._store
        conn = checkout.conn
        script = store.queries.begin_and_lock(self._key, wait=wait, lease=self._lease)
        try:
            await conn.execute(script, timeout=wait + store.command_timeout)
        except _NOT_GRANTED:
            await _rollback(checkout, store.command_timeout)
            raise LockTimeout(f"Session lock not acquired within {self._timeout}s") from None
        return await conn.fetchrow(store.queries.load, self._key, timeout=store.command_timeout)

    async def save_and_release(
        self,
        value: bytes,
        ttl: float,
        *,
        user_id: str | None = None,
        replace_only: bool = False,
    ) -> bool:
        """Write and commit in one round trip; the commit releases the lock.

        Raises:
            LockLost: The connection dropped or the transaction was aborted
                (lease expired, server restart); nothing was written.
        """
        checkout = self._take()
        store = self._store
        script = store.queries.save_and_commit(
            self._key, value, ttl, user_id, replace_only=replace_only
        )
        try:
            await checkout.conn.execute(script, timeout=store.command_timeout)
        except asyncpg.PostgresError as exc:
            if replace_only and exc.sqlstate == DIVISION_BY_ZERO:
                # The row was deleted or expired meanwhile (a logout): write nothing.
                await _rollback(checkout, store.command_timeout)
                return False
            await checkout.discard()
            raise _lost("save", exc) from exc
        except Exception as exc:
            await checkout.close(store.command_timeout)  # (see `Checkout.close`)
            raise _lost("save", exc) from exc
        except BaseException:
            await checkout.discard()
            raise
        await checkout.give_back()
        return True

    async def delete_and_release(self) -> None:
        """Delete the row and commit in one round trip; the commit releases the lock.

        Raises:
            LockLost: The connection dropped or the transaction was aborted.
        """
        checkout = self._take()
        store = self._store
        try:
            await checkout.conn.execute(
                store.queries.delete_and_commit(self._key), timeout=store.command_timeout
            )
        except Exception as exc:
            await checkout.close(store.command_timeout)  # (see `Checkout.close`)
            raise _lost("delete", exc) from exc
        except BaseException:
            await checkout.discard()
            raise
        await checkout.give_back()

    async def release(self) -> None:
        """Roll back (releasing the lock) and return the connection. Idempotent, never raises."""
        checkout, self._checkout = self._checkout, None
        self._end_turn()
        if checkout is not None:
            await _rollback(checkout, self._store.command_timeout)

    async def extend(self, lease: float) -> None:
        """Restart the lease at `lease` seconds (one round trip).

        Raises:
            LockLost: The connection dropped or the transaction was aborted.
        """
        checkout = self._checkout
        if checkout is None:
            raise self._not_held()
        store = self._store
        try:
            status = await checkout.conn.execute(
                store.queries.set_lease(lease), timeout=store.command_timeout
            )
            if not checkout.conn.is_in_transaction():
                raise LockLost(f"The session lock's transaction had ended ({status})")
        except LockLost:
            self._checkout = None
            self._end_turn()
            await checkout.discard()
            raise
        except Exception as exc:
            self._checkout = None
            self._end_turn()
            await checkout.discard()
            raise _lost("extend", exc) from exc
        except BaseException:
            self._checkout = None
            self._end_turn()
            await checkout.discard()
            raise
        self._lease = lease
        if self._turn is not None:
            self._turn.extend(lease)


def _lost(operation: str, exc: BaseException) -> LockLost:
    return LockLost(
        f"The session lock was lost before the {operation} ({type(exc).__name__}: {exc}); "
        "nothing was written"
    )


async def _rollback(checkout: Checkout, limit: float) -> None:
    """End the transaction (releasing its locks) and return the connection.

    Never raises an error: a connection that cannot roll back is closed, which
    ends its transaction on the server just the same. (Cancellation still
    propagates, after the connection is closed.)
    """
    conn: Conn = checkout.conn
    if conn.is_closed():
        await checkout.discard()
        return
    try:
        await conn.execute("ROLLBACK", timeout=limit)
    except Exception:
        await checkout.discard()
        return
    except BaseException:
        await checkout.discard()
        raise
    await checkout.give_back()
