"""Per-backend counters an application can read and export (`Session.metrics`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable
from typing import Protocol, TypeVar

from ._errors import LockTimeout, UnsupportedOperation

__all__ = ["BackendMetrics", "StoreObserver", "metered"]

T = TypeVar("T")


@dataclasses.dataclass(slots=True)
class BackendMetrics:
    """Running totals for one backend, since the process started.

    Read them from ``session.metrics`` (a dict by backend label) and export
    them to a metrics system as counters::

        for label, m in request.app.ctx.exts.session.metrics.items():
            gauge("session_backend_failures", m.failures, backend=label)

    Attributes:
        operations: Calls made to the backend (loads, saves, deletes, touches,
            lock acquisitions and fenced saves, index queries).
        failures: Calls that raised or timed out (a lock timeout is not a failure).
        lock_waits: Lock acquisitions attempted.
        lock_timeouts: Lock acquisitions that gave up after the lock timeout.
        skipped: Writes not sent to a secondary backend because it failed
            moments ago (it is retried after its back-off; always 0 for a primary).
    """

    operations: int = 0
    failures: int = 0
    lock_waits: int = 0
    lock_timeouts: int = 0
    skipped: int = 0

    def copy(self) -> BackendMetrics:
        """A snapshot that later operations do not change."""
        return dataclasses.replace(self)


async def metered(metrics: BackendMetrics, operation: str, awaitable: Awaitable[T]) -> T:
    """Await one backend call and count it in `metrics`.

    `operation` ``"lock"`` is a lock acquisition (it also counts a lock wait).
    A capability the backend lacks (`UnsupportedOperation`) is not a failure.
    """
    metrics.operations += 1
    if operation == "lock":
        metrics.lock_waits += 1
    try:
        return await awaitable
    except LockTimeout:
        metrics.lock_timeouts += 1
        raise
    except UnsupportedOperation:
        raise
    except Exception:
        metrics.failures += 1
        raise


class StoreObserver(Protocol):
    """Sees every store call a `Session` makes, for tracing or timing (`Session.observe_store`).

    ``sanic_cookies.otel.OpenTelemetry`` is one; none is installed by default.
    An observer is given names only: the operation and the backend's label,
    never a session id, store key, user id or session data.
    """

    def observe(self, operation: str, backend: str, call: Awaitable[T]) -> Awaitable[T]:
        """Return an awaitable that awaits `call` (exactly once) and gives its result.

        Args:
            operation: What the call does: ``load``, ``save``, ``lock``, ``delete``,
                ``touch``, ``extend``, ``revoke``, ``list_user_sessions``,
                ``delete_user_sessions``.
            backend: The backend's label (`BackendMetrics` are keyed by it too).
            call: The store call; its exceptions must propagate unchanged.
        """
        ...
