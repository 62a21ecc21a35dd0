"""Where connections come from: an asyncpg pool, or a SQLAlchemy engine's pool.

Both backends run the same statements on an asyncpg connection; they differ
only in how they borrow it and give it back, which is all this module hides.
Giving back costs no round trip: the backend leaves every connection outside
a transaction, and a connection in doubt is closed instead of reused.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, NoReturn, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

__all__ = [
    "Checkout",
    "Conn",
    "Connector",
    "PoolConnector",
    "checkout_timed_out",
]

logger = logging.getLogger("sanic_cookies.postgres")

#: A borrowed asyncpg connection (a pool proxy, or a plain connection).
Conn: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"


class Checkout(ABC):
    """One borrowed connection, returned exactly once (later calls do nothing)."""

    __slots__ = ("_returned", "conn")

    def __init__(self, conn: Conn) -> None:
        self.conn = conn
        self._returned = False

    async def give_back(self) -> None:
        """Return the connection, which is idle outside any transaction. Never raises."""
        if not self._returned:
            self._returned = True
            try:
                await self._give_back()
            except Exception as exc:  # the connection is gone either way
                logger.debug("returning a connection failed: %s: %s", type(exc).__name__, exc)

    async def discard(self) -> None:
        """Close the connection (its state is unknown) and free its slot. Never raises.

        The server rolls back whatever the connection had open, releasing its
        transaction-scoped locks.
        """
        if not self._returned:
            self._returned = True
            with contextlib.suppress(Exception):
                self._terminate()
            try:
                await self._give_back()
            except Exception as exc:
                logger.debug("dropping a connection failed: %s: %s", type(exc).__name__, exc)

    async def close(self, within: float) -> None:
        """Close the connection of a statement that failed, once the server let go of it.

        asyncpg asks the server to cancel a statement that timed out or whose task
        was cancelled. `discard` closes the socket at once and drops that request:
        a write waiting for a row lock would then go on and commit after its caller
        was told nothing was written. This waits (at most `within` seconds) for
        the server to answer the cancellation, then closes as `discard` does.
        Never raises an error; a cancellation propagates, once the connection is
        closed and given back all the same.
        """
        if self._returned:
            return
        try:
            with contextlib.suppress(Exception):
                await self.conn.close(timeout=within)
        finally:
            # Also when cancelled midway: the connection (aborted by asyncpg then)
            # must go back to its pool, and be counted back.
            await self.discard()

    def _terminate(self) -> None:
        """Close the socket at once: no round trip, nothing to wait for."""
        self.conn.terminate()

    @abstractmethod
    async def _give_back(self) -> None:
        """Hand the connection (open or terminated) back to where it came from."""


class Connector(ABC):
    """A source of connections, opened and closed with the backend."""

    @abstractmethod
    async def open(self) -> None:
        """Get ready to lend connections (may be called again after `close`)."""

    @abstractmethod
    async def close(self) -> None:
        """Close what this connector created; leave alone what it was given."""

    @abstractmethod
    async def checkout(self, within: float) -> Checkout:
        """Borrow a connection, waiting at most `within` seconds.

        Raises:
            TimeoutError: No connection was free within `within` seconds (they
                were all lent: contention, not a failure).
            ConnectionError: A new connection could not be made (the server
                did not answer within the connect timeout, or refused).
        """


def checkout_timed_out(
    timer: asyncio.Timeout | None, exc: TimeoutError, limit: float | None = None
) -> NoReturn:
    """Raise what a `TimeoutError` in a checkout means.

    Called from the ``except TimeoutError as exc`` block. `exc` itself if `timer`
    (the checkout's wait limit) ran out: every connection was lent. Otherwise a
    `ConnectionError` from it: making a connection took longer than the connect
    timeout (`limit` seconds, if known). A server that does not answer is a store
    failure (an ERROR and a 503), not a busy session lock.
    """
    if timer is not None and timer.expired():
        raise exc
    within = "" if limit is None else f" ({limit:g}s)"
    raise ConnectionError(f"no answer from PostgreSQL within the connect timeout{within}") from exc


async def _keep_session(conn: Any) -> None:
    """asyncpg's pool `reset` hook: nothing to reset, so no round trip on release.

    asyncpg still rolls back a transaction left open before calling it; the
    default hook would send ``RESET ALL; UNLISTEN *; ...`` on every release.
    """


class _PoolCheckout(Checkout):
    __slots__ = ("_connector", "_pool")

    def __init__(
        self, connector: PoolConnector, pool: asyncpg.Pool[asyncpg.Record], conn: Conn
    ) -> None:
        super().__init__(conn)
        self._connector = connector
        self._pool = pool

    async def _give_back(self) -> None:
        # asyncpg replaces a terminated connection with a new one on the next acquire.
        try:
            await self._pool.release(self.conn)  # type: ignore[arg-type]
        finally:
            self._connector.returned(self._pool)


class PoolConnector(Connector):
    """Connections from an asyncpg pool: one it creates from a DSN, or one it is given.

    Args:
        dsn: ``postgresql://`` URL for a pool of its own (closed with the backend).
        pool: An existing pool to borrow from instead (never closed here).
        max_size: The most connections of its own pool.
        connect_timeout: Seconds to establish a connection.
        command_timeout: Default seconds per statement on its own pool.
        pool_options: More keyword arguments for `asyncpg.create_pool`.
    """

    def __init__(
        self,
        *,
        dsn: str | None,
        pool: asyncpg.Pool[asyncpg.Record] | None,
        max_size: int,
        connect_timeout: float,
        command_timeout: float,
        pool_options: Mapping[str, Any],
    ) -> None:
        self._dsn = dsn
        self._given = pool
        self._pool: asyncpg.Pool[asyncpg.Record] | None = pool
        self._options: dict[str, Any] = {
            # min_size=0: creating the pool never connects, so start-up
            # survives a database that is briefly down.
            "min_size": 0,
            "max_size": max_size,
            "timeout": connect_timeout,
            "command_timeout": command_timeout,
            "reset": _keep_session,
            **pool_options,
        }
        # Connections of its own pool lent out or being acquired now: while fewer than
        # its size, a free one is waiting in the pool and `checkout` needs no timer.
        self._lent = 0

    @property
    def pool(self) -> asyncpg.Pool[asyncpg.Record] | None:
        """The pool in use (None while closed)."""
        return self._pool

    async def open(self) -> None:
        if self._pool is None:
            self._pool = await asyncpg.create_pool(self._dsn, **self._options)

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        self._lent = 0
        if pool is None or pool is self._given:
            self._pool = self._given
            return
        try:
            await asyncio.wait_for(pool.close(), timeout=5.0)
        except Exception:  # a connection stuck in a request: cut it
            pool.terminate()

    async def checkout(self, within: float) -> Checkout:
        pool = self._pool
        if pool is None:
            raise asyncpg.InterfaceError("the session backend is closed")
        own = pool is not self._given
        # A connection is free in its own pool: acquire() waits for no other borrower
        # and at worst connects, within connect_timeout; no timer is needed if that
        # fits in `within`.
        free = own and self._lent < self._options["max_size"] and within >= self._options["timeout"]
        if own:
            # Counted before the acquire: asyncpg takes a connection out of its queue
            # before it connects it, and one being made is not free for the next borrower.
            self._lent += 1
        timer = None
        try:
            if free:
                conn = await pool.acquire()
            else:
                # asyncio.timeout rather than acquire(timeout=): asyncpg's own
                # timeout wraps the acquire in wait_for: ~4 µs more CPU per borrow.
                async with asyncio.timeout(within) as timer:
                    conn = await pool.acquire()
        except TimeoutError as exc:
            self.returned(pool)  # (a given pool is never counted)
            checkout_timed_out(timer, exc, self._options["timeout"])
        except BaseException:
            self.returned(pool)
            raise
        return _PoolCheckout(self, pool, conn)

    def returned(self, pool: asyncpg.Pool[asyncpg.Record]) -> None:
        """A connection of `pool` is back (or closed): one fewer lent out."""
        if pool is self._pool and pool is not self._given:
            self._lent -= 1
