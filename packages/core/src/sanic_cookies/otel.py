"""OpenTelemetry spans and metrics for store calls (``pip install "sanic-cookies[otel]"``).

Off unless configured::

    from sanic_cookies import Session
    from sanic_cookies.otel import instrument

    session = Session(app, backend="redis://127.0.0.1:6379/0")
    instrument(session)  # the global tracer and meter providers, or pass your own

Every store call the session makes becomes one span, ``sanic_cookies <operation>``
(kind CLIENT), and one measurement of each instrument:

* ``sanic_cookies.store.calls`` (counter, ``{call}``),
* ``sanic_cookies.store.duration`` (histogram, seconds).

Their attributes are names only: ``sanic_cookies.operation`` (``load``, ``save``,
``lock``, ...), ``sanic_cookies.backend`` (the backend's label, as in
``Session.metrics``), ``sanic_cookies.outcome`` (``ok``, ``error``,
``lock_timeout``, ``unsupported``, ``cancelled``) and, on a failure,
``error.type`` (the exception's class name). Never a session id, a store key, a
user id, session data or an exception's message (which may quote them).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import Any, TypeVar

from opentelemetry import metrics, trace
from opentelemetry.trace import SpanKind, StatusCode

from ._errors import LockTimeout, UnsupportedOperation
from ._session import Session

__all__ = ["OpenTelemetry", "instrument"]

T = TypeVar("T")

_SCOPE = "sanic_cookies"
_VERSION = "1.0.0"


def _outcome(exc: BaseException) -> str:
    if isinstance(exc, LockTimeout):
        return "lock_timeout"
    if isinstance(exc, UnsupportedOperation):
        return "unsupported"
    if isinstance(exc, asyncio.CancelledError):
        return "cancelled"
    return "error"


class OpenTelemetry:
    """A `StoreObserver` that records store calls as OpenTelemetry spans and metrics.

    Args:
        tracer_provider: Where spans go (default: the global provider).
        meter_provider: Where measurements go (default: the global provider).
    """

    def __init__(self, *, tracer_provider: Any = None, meter_provider: Any = None) -> None:
        self._tracer = trace.get_tracer(_SCOPE, _VERSION, tracer_provider)
        meter = metrics.get_meter(_SCOPE, _VERSION, meter_provider)
        self._calls = meter.create_counter(
            "sanic_cookies.store.calls", unit="{call}", description="Session store calls"
        )
        self._duration = meter.create_histogram(
            "sanic_cookies.store.duration", unit="s", description="Session store call duration"
        )

    def observe(self, operation: str, backend: str, call: Awaitable[T]) -> Awaitable[T]:
        """Trace and time `call` (see the module documentation)."""
        return self._traced(operation, backend, call)

    async def _traced(self, operation: str, backend: str, call: Awaitable[T]) -> T:
        attributes = {"sanic_cookies.operation": operation, "sanic_cookies.backend": backend}
        outcome = "ok"
        started = time.perf_counter()
        # No exception recording: its message may quote a key or a value.
        with self._tracer.start_as_current_span(
            f"sanic_cookies {operation}",
            kind=SpanKind.CLIENT,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                return await call
            except BaseException as exc:
                outcome = _outcome(exc)
                if outcome in ("error", "cancelled"):
                    span.set_attribute("error.type", type(exc).__name__)
                    span.set_status(StatusCode.ERROR)
                raise
            finally:
                span.set_attribute("sanic_cookies.outcome", outcome)
                measured = {**attributes, "sanic_cookies.outcome": outcome}
                self._calls.add(1, measured)
                self._duration.record(time.perf_counter() - started, measured)


def instrument(
    session: Session, *, tracer_provider: Any = None, meter_provider: Any = None
) -> OpenTelemetry:
    """Record `session`'s store calls with OpenTelemetry; call it before the server starts.

    Args:
        session: The `Session` (or `AuthSession`).
        tracer_provider: Where spans go (default: the global provider).
        meter_provider: Where measurements go (default: the global provider).

    Returns:
        The observer now installed (``session.observe_store(None)`` removes it).
    """
    telemetry = OpenTelemetry(tracer_provider=tracer_provider, meter_provider=meter_provider)
    session.observe_store(telemetry)
    return telemetry
