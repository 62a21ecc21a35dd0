"""`StoreCalls`: the one wrapper every store call of the core goes through.

It counts the call (`BackendMetrics`), shows it to the telemetry observer
(`StoreObserver`), and turns a failure into one log line and an error that is safe
to send (a 503 that names neither the store nor the cause). The session, the auth
layer and `MultiBackend` (for its primary) all use it, so a store call is counted
and reported the same way wherever it is made.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from ._errors import (
    BackendError,
    BackendUnavailable,
    LockTimeout,
    SanicCookiesError,
    UnsupportedOperation,
    for_client,
)
from ._metrics import BackendMetrics, StoreObserver

__all__ = ["StoreCaller", "StoreCalls"]

logger = logging.getLogger("sanic_cookies")


class StoreCaller(Protocol):
    """Who makes a store call: named in the log line, told when the store failed."""

    def store_subject(self) -> str:
        """How the log names the caller, e.g. ``session 3f2a…`` (worked out on failure only)."""
        ...

    def store_failed(self) -> None:
        """The store failed (not a usage error): the caller must not touch it again."""
        ...


class _Anonymous:
    """A caller with a fixed name that keeps no state."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def store_subject(self) -> str:
        return self._name

    def store_failed(self) -> None:
        return None


class StoreCalls:
    """Meters, observes, maps errors and logs the store calls made to one backend.

    Args:
        label: The backend's label (for the observer and the log).
        meter: Where to count the calls; None when the backend counts them itself
            (`MultiBackend` counts per member).
        observer: The telemetry observer, if any.
        translate: Map failures to client-safe errors and log them (False: count
            only and let the error through, for a backend that wraps another).
    """

    __slots__ = ("label", "meter", "observer", "translate")

    def __init__(
        self,
        label: str,
        meter: BackendMetrics | None = None,
        observer: StoreObserver | None = None,
        *,
        translate: bool = True,
    ) -> None:
        self.label = label
        self.meter = meter
        self.observer = observer
        self.translate = translate

    @staticmethod
    def caller(name: str) -> StoreCaller:
        """A `StoreCaller` that is named `name` and keeps no state (e.g. ``auth session``)."""
        return _Anonymous(name)

    async def call(self, operation: str, awaitable: Awaitable[Any], who: StoreCaller) -> Any:
        """Await one store call (`operation`: ``load``, ``save``, ``lock``, ...)."""
        meter = self.meter
        if self.observer is not None:
            awaitable = self.observer.observe(operation, self.label, awaitable)
        if meter is not None:
            meter.operations += 1
            if operation == "lock":
                meter.lock_waits += 1
        try:
            return await awaitable
        except Exception as exc:
            error = self.failure(operation, exc, who)
            if error is exc:
                raise
            raise error from exc

    def call_now(self, operation: str, call: Callable[[], Any], who: StoreCaller) -> Any:
        """`call` for a store call that needs no I/O (`Backend.load_now`)."""
        if self.meter is not None:
            self.meter.operations += 1
        try:
            return call()
        except Exception as exc:
            error = self.failure(operation, exc, who)
            if error is exc:
                raise
            raise error from exc

    def failure(self, operation: str, exc: Exception, who: StoreCaller) -> Exception:
        """Count and log a failed call; return what to raise (`exc` itself, or a 503)."""
        self._count_failure(exc)
        if not self.translate or (
            isinstance(exc, SanicCookiesError) and not isinstance(exc, BackendError)
        ):
            return exc  # a usage error (too large, unsupported): the caller's to see
        who.store_failed()
        backend_error = isinstance(exc, BackendError)  # lock timeout, lock lost: a 503 already
        (logger.warning if backend_error else logger.error)(
            "%s: %s on backend %s failed: %s: %s",
            who.store_subject(),
            operation,
            self.label,
            type(exc).__name__,
            exc,
        )
        if isinstance(exc, BackendError):
            return for_client(exc)  # the detail is logged, not sent
        return BackendUnavailable()  # says neither which store nor why

    def _count_failure(self, exc: Exception) -> None:
        meter = self.meter
        if meter is None or isinstance(exc, UnsupportedOperation):
            return  # a capability the backend lacks is not a failure
        if isinstance(exc, LockTimeout):
            meter.lock_timeouts += 1
        else:
            meter.failures += 1
