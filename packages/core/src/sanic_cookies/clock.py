"""The one clock the library reads, and a manual clock for tests.

Every time the library itself decides - a session's idle expiry and absolute
lifetime, the refresh interval, the memory backend's TTLs, the cookie
backend's token issue and expiry times, `MultiBackend`'s retry interval, a
lock's acquire timeout - is read through `now` (wall time, epoch seconds) or
`monotonic` (for intervals). Time a server keeps (Redis ``PX``, PostgreSQL
``now()``) runs on that server's clock; backends report it to the core as
"so many seconds from `now`".

Tests replace the clock instead of sleeping::

    from sanic_cookies.clock import ManualClock, use_clock

    with use_clock(ManualClock()) as clock:
        ...                   # log in
        clock.advance(3600)   # an hour later, at once
        ...                   # the session has expired

(the ``sanic_cookies.testing`` pytest plugin offers the same as the
``manual_clock`` fixture).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol, TypeVar

__all__ = ["Clock", "ManualClock", "SystemClock", "get_clock", "monotonic", "now", "use_clock"]


class Clock(Protocol):
    """What the library needs of a clock."""

    def now(self) -> float:
        """Wall time in epoch seconds (shared with other machines, may jump)."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (for intervals only)."""
        ...


class SystemClock:
    """The real clock: `time.time` and `time.monotonic` (the default)."""

    def now(self) -> float:
        """`time.time()`."""
        return time.time()

    def monotonic(self) -> float:
        """`time.monotonic()`."""
        return time.monotonic()


class ManualClock:
    """A clock for tests: wall time stands still until `advance` moves it.

    Monotonic time keeps running (plus every `advance`), so that a wait with a
    timeout - a busy lock, say - still ends however long the test holds the
    wall clock still.

    Args:
        start: The wall time to start at (epoch seconds); default: the real time now.
    """

    def __init__(self, start: float | None = None) -> None:
        self._now = time.time() if start is None else start
        self._offset = 0.0

    def now(self) -> float:
        """The wall time, as last set by `advance`."""
        return self._now

    def monotonic(self) -> float:
        """Real monotonic time plus everything `advance` added."""
        return time.monotonic() + self._offset

    def advance(self, seconds: float) -> None:
        """Move both clocks `seconds` forward, at once.

        Raises:
            ValueError: `seconds` is negative (clocks do not go back here).
        """
        if seconds < 0:
            raise ValueError(f"a ManualClock only moves forward, got {seconds!r} seconds")
        self._now += seconds
        self._offset += seconds


_SYSTEM = SystemClock()
_current: Clock = _SYSTEM
# The hot path reads these two directly: one call, as cheap as `time.time()` behind a function.
_now = time.time
_monotonic = time.monotonic


def now() -> float:
    """The library's wall time in epoch seconds (`time.time()` unless a test replaced it)."""
    return _now()


def monotonic() -> float:
    """The library's monotonic time in seconds (`time.monotonic()` unless replaced)."""
    return _monotonic()


def get_clock() -> Clock:
    """The clock `now` and `monotonic` read."""
    return _current


def _install(clock: Clock) -> None:
    global _current, _now, _monotonic
    _current = clock
    if isinstance(clock, SystemClock):
        _now, _monotonic = time.time, time.monotonic
    else:
        _now, _monotonic = clock.now, clock.monotonic


ClockT = TypeVar("ClockT", bound=Clock)


@contextmanager
def use_clock(clock: ClockT) -> Iterator[ClockT]:
    """Make the whole library read `clock` inside the ``with`` block.

    The previous clock comes back when the block ends, however it ends. The
    clock is process-wide (not per task or per app): use it in tests, where
    one test runs at a time.

    Args:
        clock: Any object with ``now()`` and ``monotonic()`` (see `Clock`).

    Yields:
        `clock`, for ``with use_clock(ManualClock()) as clock:``.
    """
    previous = _current
    _install(clock)
    try:
        yield clock
    finally:
        _install(previous)
