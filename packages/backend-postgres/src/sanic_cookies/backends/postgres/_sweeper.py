"""Deleting expired rows: a background task per worker, and a one-shot for cron.

Every worker runs the task, but each sweep first tries a transaction-scoped
advisory lock on a constant id (``pg_try_advisory_xact_lock``, never waiting):
one worker deletes while the others skip that round. Expired rows are never
*served* in the meantime (every read filters on ``expires``); sweeping only
reclaims space.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._store import PostgresStore

__all__ = ["Sweeper", "cleanup"]

logger = logging.getLogger("sanic_cookies.postgres")


class Sweeper:
    """Runs `PostgresStore.sweep` every `interval` seconds while the backend is open.

    Args:
        store: The backend to sweep.
        interval: Seconds between sweeps; None disables the task (rely on
            ``cleanup`` from cron, or on another deployment's sweeper).
    """

    def __init__(self, store: PostgresStore, interval: float | None) -> None:
        self.store = store
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the task in the running loop (no-op if disabled or running)."""
        if self.interval is None or self._task is not None:
            return
        self._task = asyncio.get_running_loop().create_task(
            self._run(self.interval), name=f"sanic-cookies sweeper for {self.store.queries.table}"
        )

    async def stop(self) -> None:
        """Cancel the task and wait for it to end."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self, interval: float) -> None:
        # Workers start together; a random first delay spreads their sweeps apart.
        await asyncio.sleep(random.uniform(0, interval))
        failing = False
        while True:
            try:
                deleted = await self.store.sweep()
            except Exception as exc:
                if not failing:  # one line per outage, not one per interval
                    logger.warning(
                        "%s: sweeping expired sessions failed (%s: %s); retrying every %ss",
                        self.store.label,
                        type(exc).__name__,
                        exc,
                        interval,
                    )
                failing = True
            else:
                if failing:
                    logger.info("%s: sweeping expired sessions works again", self.store.label)
                failing = False
                if deleted:
                    logger.debug("%s: swept %d expired sessions", self.store.label, deleted)
            await asyncio.sleep(interval)


async def cleanup(url: str, **options: Any) -> int:
    """Delete every expired session in the table behind `url`; return how many.

    For cron jobs and scripts (``python -m sanic_cookies cleanup`` does the
    same through the backend's `cleanup` method)::

        asyncio.run(cleanup("postgresql://app@db/app", table="sessions"))

    Args:
        url: A ``postgresql://``, ``postgres://`` or ``postgresql+asyncpg://`` URL.
        **options: The backend's options (``table``, ``schema``, ...).
    """
    from sanic_cookies import backend_from_url, redact_url

    from ._store import PostgresStore

    backend = backend_from_url(url, **{"sweep_interval": None, **options})
    if not isinstance(backend, PostgresStore):
        raise TypeError(f"{redact_url(url)!r} does not select a PostgreSQL session backend")
    await backend.open()
    try:
        return await backend.cleanup()
    finally:
        await backend.close()
