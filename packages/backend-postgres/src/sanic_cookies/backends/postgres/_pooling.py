"""Start-up check: is the database reached through a transaction-pooling proxy?

The session-scoped lock takes a session-level advisory lock in one autocommit
statement and frees it in the next, so both must run on the same server
connection. Behind PgBouncer's ``pool_mode=transaction`` (or any proxy that
hands out a server connection per transaction) they need not: the lock stays on
a server connection that other clients then use, and two requests can hold
"the" lock at once. The check finds such a proxy with real statements:

1. On connection A: ``SELECT pg_backend_pid()``. A direct connection (or a
   proxy that passes the server's identity through) answers the pid it
   announced at login (``BackendKeyData``): no proxy, done. PgBouncer announces
   a made-up pid, so the check goes on.
2. Connection B opens a transaction and asks for its server's pid. A
   transaction-mode proxy just got A's server back, and hands it out again
   (PgBouncer reuses the most recently freed server first): B's pid is A's.
   Two client connections on one server process: transaction pooling.
3. Otherwise A asks again while B holds its server: a different pid means A's
   server changed between two statements, transaction pooling again. Steps 2
   and 3 run three times (another client may take A's freed server first)
   before the proxy is taken for a session-pooling one.
   A named prepared statement that A made in step 1 and that is now missing
   (or exists twice) proves the same, and also that asyncpg's statement cache
   must be off (``statement_cache_size=0``) for anything to work.

A session-pooling proxy (``pool_mode=session``) keeps A on its server for the
connection's life: step 3 sees the same pid and the check passes.
"""

from __future__ import annotations

import enum
import logging

import asyncpg

from ._connector import Checkout, Connector

__all__ = ["Pooling", "detect_pooling"]

logger = logging.getLogger("sanic_cookies.postgres")

_PID = "SELECT pg_backend_pid()"
# A prepared statement from one server connection used on another one.
_STATEMENT_MOVED = (asyncpg.InvalidSQLStatementNameError, asyncpg.DuplicatePreparedStatementError)
# A second connection for the check, at most this long (a pool of one never lends it).
_SECOND_CONNECTION_WITHIN = 2.0
# Rounds of the two-connection check before a proxy is taken for session pooling.
_ROUNDS = 3


class Pooling(enum.Enum):
    """What `detect_pooling` found between the backend and PostgreSQL."""

    DIRECT = "direct"
    """A connection is its own server process (no proxy, or one passing the pid through)."""
    SESSION = "session"
    """A proxy that keeps each client connection on one server connection."""
    TRANSACTION = "transaction"
    """A proxy that may switch server connections between transactions."""
    TRANSACTION_NO_PREPARED = "transaction-no-prepared"
    """Transaction pooling, and asyncpg's named prepared statements break on it."""


async def detect_pooling(connector: Connector, limit: float) -> Pooling:
    """Find out how `connector`'s connections reach PostgreSQL (see the module docs).

    Args:
        connector: Where the backend borrows connections.
        limit: Seconds for each statement and for the first checkout.

    Returns:
        The kind of pooling seen. Costs one round trip on a direct connection;
        behind a proxy, a second connection and up to 13 more round trips.
    """
    first = await connector.checkout(limit)
    try:
        return await _check(connector, first, limit)
    except _STATEMENT_MOVED:
        # Another client's statement on "our" server, or ours gone from it.
        return Pooling.TRANSACTION_NO_PREPARED
    except BaseException:
        await first.discard()
        raise
    finally:
        await first.give_back()  # does nothing after a discard


async def _check(connector: Connector, first: Checkout, limit: float) -> Pooling:
    pid = await first.conn.fetchval(_PID, timeout=limit)
    if pid == first.conn.get_server_pid():
        return Pooling.DIRECT
    try:
        second = await connector.checkout(min(limit, _SECOND_CONNECTION_WITHIN))
    except Exception as exc:  # a pool of one (asyncio's or SQLAlchemy's timeout), or a refusal
        # Only A's own second statement can tell now, and only if another client took
        # its server meanwhile: say so.
        logger.warning(
            "sanic-cookies: PostgreSQL is reached through a proxy, and the pool lent no "
            "second connection to check its pooling mode (%s); behind a transaction-pooling "
            "proxy use lock_scope='transaction'",
            type(exc).__name__,
        )
        return await _second_statement(first, pid, limit)
    try:
        for round_ in range(_ROUNDS):
            # Later rounds: free A's server last, so that B's transaction is handed it.
            if round_ and await _second_statement(first, pid, limit) is Pooling.TRANSACTION:
                return Pooling.TRANSACTION
            await second.conn.execute("BEGIN", timeout=limit)
            shared = await second.conn.fetchval(_PID, timeout=limit) == pid
            found = await _second_statement(first, pid, limit)
            await second.conn.execute("ROLLBACK", timeout=limit)
            if shared:  # B in a transaction on A's server: two clients, one server
                return Pooling.TRANSACTION
            if found is not Pooling.SESSION:
                return found
            # Session pooling so far; or another client (a busy proxy, the other
            # workers starting) took A's freed server before B: look again.
        return Pooling.SESSION
    finally:
        await _end(second, limit)


async def _second_statement(checkout: Checkout, pid: int, limit: float) -> Pooling:
    again = await checkout.conn.fetchval(_PID, timeout=limit)
    return Pooling.SESSION if again == pid else Pooling.TRANSACTION


async def _end(checkout: Checkout, limit: float) -> None:
    """Roll back what is still open on `checkout` and give it back; close it if that fails."""
    try:
        if checkout.conn.is_in_transaction():
            await checkout.conn.execute("ROLLBACK", timeout=limit)
    except Exception:
        await checkout.discard()
        return
    await checkout.give_back()
