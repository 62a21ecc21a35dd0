"""Fixtures of the cookie backend's tests."""

from __future__ import annotations

import pytest
from cookie_support import Clock


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """A clock the test can move forward (`Clock.advance`)."""
    return Clock(monkeypatch)
