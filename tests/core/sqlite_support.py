"""A deliberately wrong backend: the SQLite fixture's shared file with an in-process lock.

This is the bug of issue 16: `LocalLock` on a store every worker shares passes every
single-process test and loses updates between workers. The cross-process tests of the
conformance suite must reject it. It lives in a module of its own (not a test module)
so that the suite's second process can import it.
"""

from __future__ import annotations

from typing import Any

from sanic_cookies_sqlite import SQLiteBackend

from sanic_cookies import LocalLock, SessionLock


class SQLiteWithLocalLock(SQLiteBackend):
    """SQLiteBackend whose lock excludes only the tasks of one process."""

    def __init__(self, path: str, **options: Any) -> None:
        super().__init__(path, **options)
        self._local_locks: dict[str, Any] = {}

    def lock(self, key: str, *, timeout: float, lease: float) -> SessionLock:
        return LocalLock(self, self._local_locks, key, timeout=timeout)
