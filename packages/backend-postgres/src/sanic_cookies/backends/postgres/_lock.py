"""The session lock: a transaction-scoped advisory lock on a borrowed connection.

Round trips of one locked read-modify-write::

    acquire            1. BEGIN ISOLATION LEVEL READ COMMITTED;
                          SET LOCAL lock_timeout, idle_in_transaction_session_timeout;
                          SELECT pg_advisory_xact_lock(id)          (one simple query)
                       2. SELECT the row                            (prepared statement)
    save_and_release   3. UPSERT ...; COMMIT                        (one simple query)

Why the load is its own round trip: asyncpg returns no rows from a
multi-statement simple query, and sends every prepared statement with its own
Sync, so ``BEGIN`` cannot share a round trip with a statement whose rows we
need. Folding the lock into the load statement instead would be wrong, not
just slower: under READ COMMITTED a statement reads the snapshot taken when it
started, i.e. *before* it waited for the lock, so it would return the value the
previous holder was about to replace, and lose that holder's update. Taking the
lock in the ``BEGIN`` round trip makes the load's snapshot start after the lock.

The lock lives exactly as long as the transaction: ``COMMIT`` or ``ROLLBACK``
releases it, and so does a dropped connection (a killed worker, a network
failure), because the server then aborts the transaction. The lease is
``idle_in_transaction_session_timeout``, set for this transaction only: a
holder that is alive but stops talking to the server for `lease` seconds has
its connection closed by the server. A save on a lost lock runs on a dead
connection or an aborted transaction, so it cannot write; it raises `LockLost`.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import asyncpg

from sanic_cookies._backend import SessionLock, StoredSession
from sanic_cookies._errors import LockLost, LockTimeout

from ._connector import Checkout, Conn
from ._sql import DIVISION_BY_ZERO

if TYPE_CHECKING:
    from ._store import PostgresStore

__all__ = ["AdvisoryLock"]


class AdvisoryLock(SessionLock):
    """Exclusive access to one session row, across every process using the database.

    Made by `PostgresBackend.lock` / `SQLAlchemyBackend.lock`; see the module
    documentation for the round trips and the lease.
    """

    __slots__ = ("_checkout", "_key", "_lease", "_store", "_timeout")

    def __init__(self, store: PostgresStore, key: str, *, timeout: float, lease: float) -> None:
        self._store = store
        self._key = key
        self._timeout = timeout
        self._lease = lease
        self._checkout: Checkout | None = None

    async def acquire(self) -> StoredSession | None:
        """Take the lock (waiting at most the acquire timeout), then load the row.

        Raises:
            LockTimeout: Neither a connection nor the lock came within the timeout.
        """
        if self._checkout is not None:
            raise RuntimeError("this session lock is already held")
        store = self._store
        await store.ready()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        try:
            checkout = await store.connector.checkout(self._timeout)
        except TimeoutError:
            raise LockTimeout(
                f"No database connection for the session lock within {self._timeout}s"
            ) from None
        conn = checkout.conn
        try:
            wait = max(deadline - loop.time(), 0.0)
            script = store.queries.begin_and_lock(self._key, wait=wait, lease=self._lease)
            try:
                await conn.execute(script, timeout=wait + store.command_timeout)
            except (asyncpg.LockNotAvailableError, asyncpg.QueryCanceledError):
                # lock_timeout ran out (or the server's own statement_timeout did)
                await _rollback(checkout, store.command_timeout)
                raise LockTimeout(f"Session lock not acquired within {self._timeout}s") from None
            row = await conn.fetchrow(store.queries.load, self._key, timeout=store.command_timeout)
        except LockTimeout:
            raise
        except BaseException:
            await checkout.discard()
            raise
        self._checkout = checkout
        return None if row is None else StoredSession(bytes(row[0]), float(row[1]))

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
            await checkout.discard()
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
            await checkout.discard()
            raise _lost("delete", exc) from exc
        except BaseException:
            await checkout.discard()
            raise
        await checkout.give_back()

    async def release(self) -> None:
        """Roll back (releasing the lock) and return the connection. Idempotent, never raises."""
        checkout, self._checkout = self._checkout, None
        if checkout is not None:
            await _rollback(checkout, self._store.command_timeout)

    async def extend(self, lease: float) -> None:
        """Restart the lease at `lease` seconds (one round trip).

        Raises:
            LockLost: The connection dropped or the transaction was aborted.
        """
        checkout = self._checkout
        if checkout is None:
            raise LockLost("This session lock is not held")
        store = self._store
        try:
            status = await checkout.conn.execute(
                store.queries.set_lease(lease), timeout=store.command_timeout
            )
            if not checkout.conn.is_in_transaction():
                raise LockLost(f"The session lock's transaction had ended ({status})")
        except LockLost:
            self._checkout = None
            await checkout.discard()
            raise
        except Exception as exc:
            self._checkout = None
            await checkout.discard()
            raise _lost("extend", exc) from exc
        except BaseException:
            self._checkout = None
            await checkout.discard()
            raise
        self._lease = lease

    def _take(self) -> Checkout:
        checkout, self._checkout = self._checkout, None
        if checkout is None:
            raise LockLost("This session lock is not held (never acquired, or already released)")
        return checkout


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
