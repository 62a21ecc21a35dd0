"""The lock tests of `BackendConformance` for a lease that ran out with nobody taking it.

"Taken by another holder" is the easy case: the other holder's token replaced ours.
Here the lock entry still carries the late holder's token, only expired, so a store
that checks the token but not the expiry lets the late holder extend and write (a
handler that outlived its lease writes over a session a request after it may have
changed). Time moves on the library's clock (``manual_clock``) for a store that
keeps time with it; for one that keeps its own (a server's), the test then waits, at
most `wait_limit`, for a marker value saved with the lease as its TTL right after the
acquire to be gone: the lock's lease is over by then too.
"""

from __future__ import annotations

from typing import ClassVar

import pytest

from sanic_cookies._backend import Backend
from sanic_cookies._errors import LockLost, LockTimeout
from sanic_cookies.clock import ManualClock

from ._clock import wait_until
from ._values import decode_stored, encode_value, new_key

__all__ = ["LapsedLeaseTests", "wait_out_the_lease"]

_LEASE = 0.5

EXTEND_RULE = (
    "rule: SessionLock.extend raises LockLost once the lease has run out, whether or not "
    "another holder has taken the lock since"
)
FENCE_RULE = (
    "rule: save_and_release raises LockLost and writes nothing once the lease has run out, "
    "whether or not another holder has taken the lock since (fencing checks the expiry, "
    "not just the token)"
)
REFUSED_SAVE_RULE = (
    "rule: when a replace_only save_and_release returns False the lock is released all the "
    "same (else the session's next request waits for the lease, then fails with a 503)"
)
CHEAP_RELEASE_RULE = (
    "rule: release() on a spent lock is a local check, no round trip to the store (the core "
    "calls it after every save_and_release and delete_and_release)"
)


async def wait_out_the_lease(
    backend: Backend, clock: ManualClock, lease: float, resolution: float, limit: float
) -> None:
    """Return once a lock acquired just before this call has expired on the store's clock.

    A marker saved with twice the lease's TTL is waited out: a store that ends leases on
    its own clock (PostgreSQL's idle-in-transaction timeout) may act late on a busy
    machine, and a marker of the lease's TTL alone could expire first.
    """
    marker = new_key()
    await backend.save(marker, encode_value(0), 2 * lease)
    clock.advance(2 * lease + resolution)

    async def gone() -> bool:
        return await backend.load(marker) is None

    if not await wait_until(gone, limit + resolution):
        pytest.fail(f"A value saved with a {lease:g}s TTL was still there {limit:g}s later")


class LapsedLeaseTests:
    """Mixed into `BackendConformance`."""

    lock_has_lease: ClassVar[bool]
    ttl_resolution: ClassVar[float]
    wait_limit: ClassVar[float]

    async def test_extend_after_the_lease_ran_out_unclaimed_raises_lock_lost(
        self, backend: Backend, manual_clock: ManualClock
    ) -> None:
        if not self.lock_has_lease:
            pytest.skip(f"{type(backend).__name__} declares an in-process lock without lease")
        key = new_key()
        stale = backend.lock(key, timeout=1, lease=_LEASE)
        await stale.acquire()
        # Nobody takes it.
        await wait_out_the_lease(
            backend, manual_clock, _LEASE, self.ttl_resolution, self.wait_limit
        )
        try:
            await stale.extend(10)
        except LockLost:
            pass
        else:
            await stale.release()
            pytest.fail(
                f"extend() {_LEASE:g}s+ after a {_LEASE:g}s lease ran out (nobody else took the "
                f"lock) returned instead of raising LockLost ({EXTEND_RULE})"
            )
        await stale.release()  # idempotent, harmless
        fresh = backend.lock(key, timeout=self.wait_limit, lease=10)
        await fresh.acquire()
        await fresh.release()

    async def test_save_after_the_lease_ran_out_unclaimed_writes_nothing(
        self, backend: Backend, manual_clock: ManualClock
    ) -> None:
        if not self.lock_has_lease:
            pytest.skip(f"{type(backend).__name__} declares an in-process lock without lease")
        key = new_key()
        await backend.save(key, encode_value(1), 60)
        stale = backend.lock(key, timeout=1, lease=_LEASE)
        await stale.acquire()
        # Nobody takes it.
        await wait_out_the_lease(
            backend, manual_clock, _LEASE, self.ttl_resolution, self.wait_limit
        )
        try:
            result = await stale.save_and_release(encode_value(99), 60)
        except LockLost:
            result = None
        finally:
            await stale.release()
        stored = decode_stored(await backend.load(key))
        if result is not None or stored != 1:
            pytest.fail(
                f"save_and_release() after its {_LEASE:g}s lease ran out (nobody else took the "
                f"lock) returned {result!r} and the store holds {stored} ({FENCE_RULE})"
            )

    async def test_a_refused_replace_only_save_releases_the_lock(self, backend: Backend) -> None:
        key = new_key()  # never saved, or deleted by a logout meanwhile
        lock = backend.lock(key, timeout=2, lease=30)
        assert await lock.acquire() is None
        try:
            assert await lock.save_and_release(encode_value(1), 60, replace_only=True) is False
        finally:
            await lock.release()
        assert await backend.load(key) is None
        again = backend.lock(key, timeout=1, lease=30)
        try:
            await again.acquire()
        except LockTimeout:
            pytest.fail(
                "The lock of a key whose replace_only save_and_release returned False was "
                f"still held a second later, by nobody ({REFUSED_SAVE_RULE})"
            )
        await again.release()

    async def test_release_of_a_spent_lock_needs_no_store(self, backend: Backend) -> None:
        lock = backend.lock(new_key(), timeout=2, lease=30)
        await lock.acquire()
        assert await lock.save_and_release(encode_value(1), 60) is True
        await backend.close()  # a release that asks the store now fails
        try:
            await lock.release()
        except Exception as exc:
            pytest.fail(
                f"release() after save_and_release() raised {type(exc).__name__}: {exc} once "
                f"the backend was closed: it reached for the store ({CHEAP_RELEASE_RULE})"
            )
        finally:
            await backend.open()  # for the fixture's close
