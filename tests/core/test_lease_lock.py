"""LeaseLock on an in-memory LeaseStore whose clock the tests drive (no sleeps).

The cross-process behaviour (two OS processes, a real shared store) is proven by the
conformance suite against the SQLite fixture (tests/core/test_sqlite_fixture.py).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from sanic_cookies import LeaseLock, LeaseStore, LockLost, LockTimeout, StoredSession
from sanic_cookies import _lease as lease_module
from sanic_cookies._turns import KeyTurns
from sanic_cookies.clock import ManualClock, use_clock


class ClockStore:
    """The four primitives over dicts, atomic by construction (no await inside)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.data: dict[str, StoredSession] = {}
        self.locks: dict[str, tuple[str, float]] = {}
        self.calls: Counter[str] = Counter()
        self.refused = asyncio.Event()  # set when a try_lock finds the lock taken

    def _holds(self, key: str, token: str) -> bool:
        held = self.locks.get(key)
        return held is not None and held[0] == token and held[1] > self.now

    async def load(self, key: str) -> StoredSession | None:
        self.calls["load"] += 1
        stored = self.data.get(key)
        return stored if stored is not None and stored.expires_at > self.now else None

    async def try_lock(self, key: str, token: str, lease: float) -> bool:
        self.calls["try_lock"] += 1
        held = self.locks.get(key)
        if held is not None and held[1] > self.now:
            self.refused.set()
            return False
        self.locks[key] = (token, self.now + lease)
        return True

    async def write_if_locked(
        self,
        key: str,
        token: str,
        value: bytes | None,
        ttl: float,
        *,
        user_id: str | None = None,
        replace_only: bool = False,
    ) -> bool | None:
        self.calls["write_if_locked"] += 1
        if not self._holds(key, token):
            return None
        del self.locks[key]
        if value is None:
            self.data.pop(key, None)
            return True
        if replace_only and key not in self.data:
            return False
        self.data[key] = StoredSession(value, self.now + ttl)
        return True

    async def extend_lock(self, key: str, token: str, lease: float) -> bool:
        self.calls["extend_lock"] += 1
        if not self._holds(key, token):
            return False
        self.locks[key] = (token, self.now + lease)
        return True

    async def unlock(self, key: str, token: str) -> None:
        self.calls["unlock"] += 1
        if self.locks.get(key, ("", 0.0))[0] == token:
            del self.locks[key]


KEY = "ab" * 32


@pytest.fixture
def store() -> ClockStore:
    return ClockStore()


@pytest.fixture
def registry() -> dict[str, Any]:
    return {}


def lock(store: LeaseStore, registry: dict[str, Any], **kw: float) -> LeaseLock:
    timeout, lease = kw.get("timeout", 1.0), kw.get("lease", 10.0)
    return LeaseLock(store, registry, KEY, timeout=timeout, lease=lease)


async def test_acquire_loads_and_save_writes_and_frees(
    store: ClockStore, registry: dict[str, Any]
) -> None:
    store.data[KEY] = StoredSession(b"1", store.now + 60)
    first = lock(store, registry)
    assert (await first.acquire()) == StoredSession(b"1", store.now + 60)
    assert first.held
    assert await first.save_and_release(b"2", 60) is True
    assert not first.held and KEY not in store.locks
    assert store.data[KEY].value == b"2"


async def test_release_after_a_save_is_free(store: ClockStore, registry: dict[str, Any]) -> None:
    # The core calls release() after every save: it must not cost a round trip.
    held = lock(store, registry)
    await held.acquire()
    await held.save_and_release(b"x", 60)
    await held.release()
    await held.release()
    assert store.calls["unlock"] == 0


async def test_a_lock_is_single_use(store: ClockStore, registry: dict[str, Any]) -> None:
    once = lock(store, registry)
    await once.acquire()
    await once.release()
    with pytest.raises(RuntimeError, match="single-use"):
        await once.acquire()


async def test_acquire_times_out(store: ClockStore, registry: dict[str, Any]) -> None:
    holder = lock(store, registry)
    await holder.acquire()
    with pytest.raises(LockTimeout):
        await lock(store, registry, timeout=0.05).acquire()
    assert KeyTurns(registry).waiting(KEY) == 0, "a waiter that gave up leaves the queue"
    await holder.release()
    assert registry == {}, "nothing is left behind"


async def test_another_process_times_out_too(store: ClockStore, registry: dict[str, Any]) -> None:
    await lock(store, registry).acquire()
    elsewhere: dict[str, Any] = {}  # another process: its own turns, the same store
    with pytest.raises(LockTimeout):
        await lock(store, elsewhere, timeout=0.05).acquire()
    assert elsewhere == {}, "a waiter that gave up leaves nothing behind"


async def test_a_same_process_release_hands_the_turn_to_a_waiter_at_once(
    store: ClockStore, registry: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Polls an hour apart: only the hand-over can let the waiters in within the test.
    monkeypatch.setattr(lease_module, "_FIRST_POLL", 3600.0)
    monkeypatch.setattr(lease_module, "_LAST_POLL", 3600.0)
    turns = KeyTurns(registry)
    holder = lock(store, registry)
    await holder.acquire()
    waiters = [lock(store, registry, timeout=7200) for _ in range(3)]
    order: list[int] = []

    async def wait(k: int) -> None:
        await waiters[k].acquire()
        order.append(k)
        await waiters[k].save_and_release(str(k).encode(), 60)

    tasks = []
    for k in range(3):
        tasks.append(asyncio.create_task(wait(k)))
        for _ in range(1000):  # let it queue (in this order)
            if turns.waiting(KEY) == k + 1:
                break
            await asyncio.sleep(0)
        assert turns.waiting(KEY) == k + 1
    assert store.calls["try_lock"] == 1, "queued waiters do not poll the store"
    await holder.save_and_release(b"v", 60)
    await asyncio.wait_for(asyncio.gather(*tasks), 10)
    assert order == [0, 1, 2], "first come, first served"
    assert store.calls["try_lock"] == 4, "one try each"
    assert registry == {}


async def test_extend_after_the_lease_ran_out_raises_even_if_nobody_took_it(
    store: ClockStore, registry: dict[str, Any]
) -> None:
    held = lock(store, registry, lease=5)
    await held.acquire()
    store.now += 3
    await held.extend(5)  # in time: now + 5
    store.now += 5.5
    with pytest.raises(LockLost):
        await held.extend(5)
    with pytest.raises(LockLost):
        await held.save_and_release(b"late", 60)
    assert KEY not in store.data


async def test_a_late_holder_writes_nothing(store: ClockStore, registry: dict[str, Any]) -> None:
    store.data[KEY] = StoredSession(b"1", store.now + 600)
    late = lock(store, registry, lease=5)
    await late.acquire()
    store.now += 6
    other = lock(store, {})  # another process (in this one it would queue behind `late`)
    await other.acquire()
    assert await other.save_and_release(b"2", 600) is True
    with pytest.raises(LockLost):
        await late.save_and_release(b"99", 600)
    with pytest.raises(LockLost):
        await late.delete_and_release()
    await late.release()  # idempotent, harmless
    assert store.data[KEY].value == b"2"


async def test_a_refused_replace_only_save_releases_the_lock(
    store: ClockStore, registry: dict[str, Any]
) -> None:
    held = lock(store, registry)
    await held.acquire()
    assert await held.save_and_release(b"x", 60, replace_only=True) is False
    assert KEY not in store.data and KEY not in store.locks
    next_holder = lock(store, registry, timeout=0)
    assert await next_holder.acquire() is None  # free at once


async def test_a_failed_load_releases_the_lock(
    store: ClockStore, registry: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(key: str) -> StoredSession | None:
        raise ConnectionError("store down")

    monkeypatch.setattr(store, "load", broken)
    with pytest.raises(ConnectionError):
        await lock(store, registry).acquire()
    assert KEY not in store.locks


async def test_delete_and_release(store: ClockStore, registry: dict[str, Any]) -> None:
    store.data[KEY] = StoredSession(b"1", store.now + 60)
    held = lock(store, registry)
    await held.acquire()
    await held.delete_and_release()
    assert KEY not in store.data and KEY not in store.locks


class TokenOnlyStore(ClockStore):
    """A store whose fence checks the token but not the expiry (review of issue 16, F1)."""

    def _holds(self, key: str, token: str) -> bool:
        held = self.locks.get(key)
        return held is not None and held[0] == token


@pytest.fixture
def library_clock() -> Iterator[ManualClock]:
    """The library's clock (LeaseLock's local deadline runs on it), moved by ``advance``."""
    with use_clock(ManualClock()) as clock:
        yield clock


async def test_the_local_deadline_refuses_a_late_extend_even_if_the_store_would_not(
    registry: dict[str, Any], library_clock: ManualClock
) -> None:
    store = TokenOnlyStore()
    held = lock(store, registry, lease=5)
    await held.acquire()
    library_clock.advance(3)
    await held.extend(5)  # in time: the local deadline moves to now + 5
    library_clock.advance(5.5)
    with pytest.raises(LockLost, match="ran out before extend"):
        await held.extend(5)
    assert store.calls["extend_lock"] == 1, "refused locally, without asking the store"
    assert KEY not in store.locks, "its own expired entry is given back"


async def test_the_local_deadline_refuses_a_late_save(
    registry: dict[str, Any], library_clock: ManualClock
) -> None:
    store = TokenOnlyStore()
    held = lock(store, registry, lease=5)
    await held.acquire()
    library_clock.advance(5)
    with pytest.raises(LockLost, match="nothing was written"):
        await held.save_and_release(b"late", 60)
    assert KEY not in store.data and store.calls["write_if_locked"] == 0
    await held.release()  # idempotent
    assert await lock(store, registry, timeout=0).acquire() is None  # free at once
