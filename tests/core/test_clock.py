"""sanic_cookies.clock: one clock for the whole library, replaceable in tests."""

from __future__ import annotations

import time

import pytest

from sanic_cookies import clock
from sanic_cookies.backends.memory import MemoryBackend
from sanic_cookies.clock import ManualClock, SystemClock, get_clock, monotonic, now, use_clock


def test_the_default_clock_is_the_real_one() -> None:
    assert isinstance(get_clock(), SystemClock)
    assert abs(now() - time.time()) < 5
    before = time.monotonic()
    assert before <= monotonic() <= time.monotonic()


def test_a_manual_clock_stands_still_until_advanced() -> None:
    manual = ManualClock(start=1000.0)
    with use_clock(manual) as inside:
        assert inside is manual and get_clock() is manual
        assert now() == 1000.0
        mono = monotonic()
        manual.advance(60)
        assert now() == 1060.0
        # Monotonic time moved by the advance too (and keeps running in real time).
        assert monotonic() >= mono + 60
    assert isinstance(get_clock(), SystemClock)


def test_a_manual_clock_does_not_go_back() -> None:
    with pytest.raises(ValueError, match="only moves forward"):
        ManualClock().advance(-1)


def test_the_previous_clock_comes_back_however_the_block_ends() -> None:
    outer = ManualClock(start=5.0)
    with use_clock(outer):
        with pytest.raises(RuntimeError), use_clock(ManualClock(start=9.0)):
            assert now() == 9.0
            raise RuntimeError("boom")
        assert get_clock() is outer and now() == 5.0
    assert isinstance(get_clock(), SystemClock)


def test_any_object_with_now_and_monotonic_is_a_clock() -> None:
    class Fixed:
        def now(self) -> float:
            return 42.0

        def monotonic(self) -> float:
            return 7.0

    with use_clock(Fixed()):
        assert (clock.now(), clock.monotonic()) == (42.0, 7.0)


async def test_the_library_reads_it(manual_clock: ManualClock) -> None:
    backend = MemoryBackend()
    key = "ab" * 32
    await backend.save(key, b"{}", 10)
    stored = await backend.load(key)
    assert stored is not None and stored.expires_at == manual_clock.now() + 10
    manual_clock.advance(10)
    assert await backend.load(key) is None
