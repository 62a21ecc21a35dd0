"""Fixtures of the cookie backend's tests."""

from __future__ import annotations

import pytest

from sanic_cookies.clock import ManualClock


@pytest.fixture
def clock(manual_clock: ManualClock) -> ManualClock:
    """The library's clock, which the test moves forward (`ManualClock.advance`)."""
    return manual_clock
