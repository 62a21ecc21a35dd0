"""Time in tests: the ``manual_clock`` fixture, and `wait_until` for time a server keeps."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator

import pytest

from sanic_cookies.clock import ManualClock, use_clock

__all__ = ["manual_clock", "wait_until"]


@pytest.fixture
def manual_clock() -> Iterator[ManualClock]:
    """The library's clock, standing still for the test until it calls ``advance``.

    Every expiry, refresh interval and retry interval the library decides runs on
    it (see `sanic_cookies.clock`); the real clock is back after the test.
    """
    with use_clock(ManualClock()) as clock:
        yield clock


async def wait_until(
    condition: Callable[[], Awaitable[bool]], within: float, interval: float = 0.02
) -> bool:
    """Poll `condition` until it holds (True) or `within` seconds pass (False).

    For time a server keeps (a Redis or PostgreSQL TTL, a lock's lease), which no
    clock of the library can move: wait for what the test needs to see, with a
    generous bound, rather than sleep for a fixed time. Real time, on purpose.
    """
    deadline = time.monotonic() + within
    while True:
        if await condition():
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(interval)
