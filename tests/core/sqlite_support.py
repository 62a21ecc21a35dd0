"""Deliberately wrong backends: the SQLite fixture with the bugs of issue 16.

`SQLiteWithLocalLock`: `LocalLock` on a store every worker shares passes every
single-process test and loses updates between workers; the cross-process tests of the
conformance suite must reject it. It lives in a module of its own (not a test module)
so that the suite's second process can import it. The others are bugs that escaped
the suite before it tested for them: the two of issue 16, then those an outside
reviewer found (F1-F11 of the review of issue 16), one backend per bug.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar, Self
from urllib.parse import parse_qsl, urlsplit

from sanic_cookies_sqlite import SQLiteBackend

from sanic_cookies import LeaseLock, LocalLock, SessionLock


class SQLiteWithLocalLock(SQLiteBackend):
    """SQLiteBackend whose lock excludes only the tasks of one process."""

    def __init__(self, path: str, **options: Any) -> None:
        super().__init__(path, **options)
        self._local_locks: dict[str, Any] = {}

    def lock(self, key: str, *, timeout: float, lease: float) -> SessionLock:
        return LocalLock(self, self._local_locks, key, timeout=timeout)


class _NoOpExtendLock(LeaseLock):
    async def extend(self, lease: float) -> None:
        """The escaped bug: copied from LocalLock, where there is no lease to extend."""


class SQLiteWithNoOpExtend(SQLiteBackend):
    """Escaped bug 1: extend() after the lease ran out returns instead of raising LockLost."""

    def lock(self, key: str, *, timeout: float, lease: float) -> SessionLock:
        return _NoOpExtendLock(self, {}, key, timeout=timeout, lease=lease)


class SQLiteKeepingTheIndex(SQLiteBackend):
    """Escaped bug 2: a replace_only save leaves the user index as it was."""

    async def save(
        self,
        key: str,
        value: bytes,
        ttl: float,
        *,
        user_id: str | None = None,
        replace_only: bool = False,
    ) -> bool:
        if replace_only:
            sql = "UPDATE sessions SET value = ?, expires = ? WHERE key = ? AND expires > ?"
            now = time.time()
            return self.db.execute(sql, (value, now + ttl, key, now)).rowcount == 1
        return await super().save(key, value, ttl, user_id=user_id)


class _NoLocalDeadline(LeaseLock):
    async def _check_deadline(self, message: str) -> None:
        """Half of the bug: no local guard, so only the store's fence decides."""


class SQLiteFenceWithoutExpiry(SQLiteBackend):
    """F1: the fence checks the token but not the expiry, and the lock keeps no deadline."""

    def lock(self, key: str, *, timeout: float, lease: float) -> SessionLock:
        return _NoLocalDeadline(self, self._waiters, key, timeout=timeout, lease=lease)

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
        with self._transaction() as db:
            sql = "DELETE FROM locks WHERE key = ? AND token = ?"  # the bug: no expiry
            if db.execute(sql, (key, token)).rowcount != 1:
                return None
            if value is None:
                await self.delete(key)
                return True
            return await self.save(key, value, ttl, user_id=user_id, replace_only=replace_only)


class SQLiteKeepingTheLockAfterARefusedSave(SQLiteBackend):
    """F2: a replace_only save that finds no value returns False and keeps the lock."""

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
        with self._transaction() as db:
            sql = "SELECT 1 FROM locks WHERE key = ? AND token = ? AND expires > ?"
            if db.execute(sql, (key, token, time.time())).fetchone() is None:
                return None
            written = True
            if value is None:
                await self.delete(key)
            else:
                written = await self.save(
                    key, value, ttl, user_id=user_id, replace_only=replace_only
                )
            if written:  # the bug: the lock is dropped only when something was written
                db.execute("DELETE FROM locks WHERE key = ? AND token = ?", (key, token))
            return written


class SQLiteWithoutCleanup(SQLiteBackend):
    """F3: the store never drops expired rows, and cleanup() was forgotten."""

    async def cleanup(self) -> int | None:  # type: ignore[override]
        return None


class SQLiteRaisingTypeError(SQLiteBackend):
    """F4: from_url parses by hand; an unknown option reaches __init__ (TypeError)."""

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        parts = urlsplit(url)
        return cls(parts.path, **dict(parse_qsl(parts.query)), **options)


class _ReleaseThatAsks(LeaseLock):
    async def release(self) -> None:
        await super().release()
        await self._store.unlock(self._key, "")  # the bug: a round trip even when spent


class SQLiteWithExpensiveRelease(SQLiteBackend):
    """F5: release() after a save still asks the store."""

    def lock(self, key: str, *, timeout: float, lease: float) -> SessionLock:
        return _ReleaseThatAsks(self, self._waiters, key, timeout=timeout, lease=lease)


class SQLiteClaimingPerProcess(SQLiteBackend):
    """F7: a file every process shares, declared per_process."""

    per_process: ClassVar[bool] = True


class SQLiteFlooringTTL(SQLiteBackend):
    """F10: TTLs rounded down to whole seconds (0.5 s becomes 0: gone at once)."""

    async def save(
        self,
        key: str,
        value: bytes,
        ttl: float,
        *,
        user_id: str | None = None,
        replace_only: bool = False,
    ) -> bool:
        return await super().save(
            key, value, float(int(ttl)), user_id=user_id, replace_only=replace_only
        )


class SQLiteHidingItsIndex(SQLiteBackend):
    """F10: declares no user index while its index methods work."""

    supports_user_index: ClassVar[bool] = False


class SQLiteThatCannotReopen(SQLiteBackend):
    """F11: open() connects only the first time; after close() the backend is dead."""

    async def open(self) -> None:
        if not hasattr(self, "db"):
            await super().open()
