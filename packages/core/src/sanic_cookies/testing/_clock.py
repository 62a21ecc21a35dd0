"""The ``manual_clock`` fixture: move the library's clock instead of sleeping."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sanic_cookies.clock import ManualClock, use_clock

__all__ = ["manual_clock"]


@pytest.fixture
def manual_clock() -> Iterator[ManualClock]:
    """The library's clock, standing still for the test until it calls ``advance``.

    Every expiry, refresh interval and retry interval the library decides runs on
    it (see `sanic_cookies.clock`); the real clock is back after the test.
    """
    with use_clock(ManualClock()) as clock:
        yield clock
