"""Deliberately wrong backends: the SQLite fixture with the bugs of issue 16.

`SQLiteWithLocalLock`: `LocalLock` on a store every worker shares passes every
single-process test and loses updates between workers; the cross-process tests of the
conformance suite must reject it. It lives in a module of its own (not a test module)
so that the suite's second process can import it. The other two are the bugs that
escaped the suite before it tested for them.
"""

from __future__ import annotations

import time
from typing import Any

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
