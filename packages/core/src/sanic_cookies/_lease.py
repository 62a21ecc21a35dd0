"""A ready fenced lease lock, for stores that can do four small things atomically.

Writing a `SessionLock` that excludes across processes, expires with its holder
and refuses a late holder's write is the hard part of a backend. `LeaseLock`
does it on top of four primitives the store provides, each one atomic (a single
SQL statement or transaction, a Lua script, a conditional put), described by
`LeaseStore`::

    try_lock(key, token, lease)         set the lock of `key` to (token, now + lease)
                                        if it is absent or expired; True if it was set
    write_if_locked(key, token, ...)    if `token` holds the unexpired lock of `key`:
                                        write (or delete) the value AND delete the lock
    extend_lock(key, token, lease)      if `token` holds the unexpired lock: now + lease
    unlock(key, token)                  delete the lock of `key` if `token` holds it

"now" is the store's clock (the database server's, the file's host's), so the
lease is measured in one place for every process. `LeaseLock` adds the rest:
a random token per acquisition (the fence), polling with backoff until the
acquire timeout, and first-come-first-served turns among the tasks of one
process (`KeyTurns`): only the task whose turn it is polls the store, and a
release hands the turn to the next task of this process at once.

It also keeps its own deadline, on the library clock (`sanic_cookies.clock.now`):
the lease is counted from just before the store call that granted or extended it,
so the local deadline never falls after the store's. Past it, `extend` and the
writes raise `LockLost` without asking the store, so a store primitive that checks
the token but not the expiry still cannot let a late holder write.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
from typing import Any, Protocol

from ._backend import SessionLock, StoredSession
from ._errors import LockLost, LockTimeout
from ._turns import KeyTurns, Turn
from .clock import monotonic, now

__all__ = ["LeaseLock", "LeaseStore"]

# Poll backoff: the first retry soon (most holders are done in milliseconds), then
# doubling, so many waiters on a slow holder do not hammer the store.
_FIRST_POLL = 0.005
_LAST_POLL = 0.1


class LeaseStore(Protocol):
    """The atomic primitives `LeaseLock` needs (usually implemented by the backend itself).

    Every method must be atomic with respect to every other process using the
    store, and must measure "now" on the store's clock. A lock is "held by
    `token`" when the lock entry of the key carries `token` and has not expired.
    """

    async def load(self, key: str) -> StoredSession | None:
        """The value under `key` (as `Backend.load`)."""
        ...

    async def try_lock(self, key: str, token: str, lease: float) -> bool:
        """Set the lock of `key` to (`token`, now + `lease`) if it is absent or expired.

        Returns:
            True if the lock is now `token`'s; False if another token holds it.
        """
        ...

    async def write_if_locked(
        self,
        key: str,
        token: str,
        value: bytes | None,
        ttl: float,
        *,
        user_id: str | None = None,
        replace_only: bool = False,
    ) -> bool | None:
        """If `token` holds the lock of `key`: write, delete the lock, in one atomic step.

        Args:
            key: The store key.
            token: The holder's token.
            value: The value to save as `Backend.save` does (with `user_id` and
                `replace_only`), or None to delete the key as `Backend.delete` does.
            ttl: Seconds the saved value lives (ignored for a delete).
            user_id: As for `Backend.save`.
            replace_only: As for `Backend.save`.

        Returns:
            None if `token` does not hold the lock (nothing written, no lock
            touched); False if `replace_only` found no value (nothing written, the
            lock deleted all the same); True otherwise.
        """
        ...

    async def extend_lock(self, key: str, token: str, lease: float) -> bool:
        """If `token` holds the lock of `key`, set its expiry to now + `lease`.

        Returns:
            False if `token` no longer holds it (expired, or taken by another).
        """
        ...

    async def unlock(self, key: str, token: str) -> None:
        """Delete the lock of `key` if `token` holds it; otherwise do nothing."""
        ...


class LeaseLock(SessionLock):
    """A fenced lease lock built on a `LeaseStore`'s atomic primitives.

    It excludes across every process sharing the store, frees itself `lease`
    seconds after a holder that died (on the store's clock), and refuses the
    write of a holder whose lease ran out (`LockLost`). Return it from
    `Backend.lock`, with one registry dict per backend instance (its same-process turns)::

        def lock(self, key, *, timeout, lease):
            return LeaseLock(self, self._waiters, key, timeout=timeout, lease=lease)

    Like every `SessionLock` it is single-use: acquired once, then spent by
    `save_and_release`, `delete_and_release` or `release`; acquiring it again
    raises `RuntimeError`.
    """

    def __init__(
        self,
        store: LeaseStore,
        registry: dict[str, Any],
        key: str,
        *,
        timeout: float,
        lease: float,
    ) -> None:
        """Make an unacquired lock.

        Args:
            store: Provides the primitives (usually the backend itself).
            registry: The same-process turns (`KeyTurns`) live here; one empty dict
                per backend.
            key: The store key to lock.
            timeout: Seconds `acquire` keeps trying before `LockTimeout`.
            lease: Seconds the lock outlives a holder that stopped (see `extend`).
        """
        self._store = store
        self._turns = KeyTurns(registry)
        self._turn: Turn | None = None
        self._key = key
        self._timeout = timeout
        self._lease = lease
        self._token: str | None = None
        self._used = False
        # When the lease ends on the library clock (set by acquire and extend).
        self._deadline = 0.0

    @property
    def held(self) -> bool:
        """True from a successful `acquire` until the lock is released or found lost."""
        return self._token is not None

    async def acquire(self) -> StoredSession | None:
        if self._used:
            raise RuntimeError("A SessionLock is single-use: ask Backend.lock() for a new one")
        self._used = True
        token = secrets.token_hex(16)
        deadline = monotonic() + self._timeout
        try:
            # Tasks of this process queue here; only the head polls the store.
            turn = await self._turns.take(self._key, within=self._timeout, hold=self._lease)
        except TimeoutError:
            raise LockTimeout(f"Session lock not acquired within {self._timeout}s") from None
        try:
            delay = _FIRST_POLL
            while True:
                started = now()  # before the grant: the local lease ends no later
                if await self._store.try_lock(self._key, token, self._lease):
                    break
                remaining = deadline - monotonic()
                if remaining <= 0:
                    raise LockTimeout(f"Session lock not acquired within {self._timeout}s")
                await asyncio.sleep(min(delay * random.uniform(0.5, 1.0), remaining))
                delay = min(delay * 2, _LAST_POLL)
        except LockTimeout:
            turn.end()
            raise
        except Exception as exc:
            turn.fail(exc)  # the store failed: the waiters behind answer now, not one by one
            raise
        except BaseException:
            turn.end()
            raise
        self._token = token
        self._turn = turn
        self._deadline = started + self._lease
        try:
            return await self._store.load(self._key)
        except BaseException:
            with contextlib.suppress(Exception):
                await self.release()
            raise

    async def save_and_release(
        self,
        value: bytes,
        ttl: float,
        *,
        user_id: str | None = None,
        replace_only: bool = False,
    ) -> bool:
        return await self._write(value, ttl, user_id=user_id, replace_only=replace_only)

    async def delete_and_release(self) -> None:
        await self._write(None, 0.0)

    async def release(self) -> None:
        token, self._token = self._token, None
        if token is not None:
            try:
                await self._store.unlock(self._key, token)
            finally:
                self._end_turn()

    async def extend(self, lease: float) -> None:
        token = self._token
        if token is None:
            raise LockLost("This session lock is not held (never acquired, released or lost)")
        await self._check_deadline(f"The session lock's lease ran out before extend({lease})")
        started = now()
        if not await self._store.extend_lock(self._key, token, lease):
            self._token = None
            self._end_turn()
            raise LockLost(f"The session lock's lease ran out before extend({lease})")
        self._deadline = started + lease
        if self._turn is not None:
            self._turn.extend(lease)

    async def _write(
        self,
        value: bytes | None,
        ttl: float,
        *,
        user_id: str | None = None,
        replace_only: bool = False,
    ) -> bool:
        token = self._token
        if token is None:
            raise LockLost("This session lock is not held (never acquired, released or lost)")
        await self._check_deadline("The session lock's lease ran out; nothing was written")
        # On an exception the lock stays ours to release (the caller's `release`).
        written = await self._store.write_if_locked(
            self._key, token, value, ttl, user_id=user_id, replace_only=replace_only
        )
        self._token = None
        self._end_turn()
        if written is None:
            raise LockLost("The session lock's lease ran out; nothing was written")
        return written

    async def _check_deadline(self, message: str) -> None:
        """Raise `LockLost(message)` if the lease ran out on the library clock."""
        if now() < self._deadline:
            return
        # Give back our own (expired) entry so the next holder need not wait for the
        # store to notice; `unlock` touches only this token's lock, never a successor's.
        with contextlib.suppress(Exception):
            await self.release()
        raise LockLost(message)

    def _end_turn(self) -> None:
        turn, self._turn = self._turn, None
        if turn is not None:
            turn.end()
