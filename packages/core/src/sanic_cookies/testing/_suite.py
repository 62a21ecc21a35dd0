"""The tests every server-side backend must pass (see `sanic_cookies.testing`)."""

from __future__ import annotations

import asyncio
import inspect
import secrets
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import Any, ClassVar

import pytest
import pytest_asyncio

from sanic_cookies._backend import Backend, SessionLock, StoredSession
from sanic_cookies._discovery import backend_from_url
from sanic_cookies._errors import LockLost, LockTimeout, UnsupportedOperation
from sanic_cookies._ids import new_session_id, store_key
from sanic_cookies.clock import ManualClock, now

from ._clock import wait_until
from ._cross_process import CrossProcessTests
from ._declarations import LEASE_DECLARATION_RULE, DeclarationTests
from ._lapsed import LapsedLeaseTests
from ._opened import opened
from ._values import decode_stored, encode_value

__all__ = ["BackendConformance", "decode_stored", "encode_value"]


def _key() -> str:
    return store_key(new_session_id())


EXPIRY_RULE = (
    "load() never returns a value past its TTL, counted on sanic_cookies.clock.now() or on "
    "the store's own clock"
)
TTL_RULE = (
    "every save sets the TTL it is given (replace_only and a lock's save_and_release too); "
    "else a session in use expires on its first TTL and its user is logged out"
)


@pytest.mark.asyncio
class BackendConformance(CrossProcessTests, LapsedLeaseTests, DeclarationTests):
    """The contract of `sanic_cookies.Backend`, as tests.

    Subclass it (as ``Test<Something>``) and implement `backend_url` (and
    `backend_options` if the backend takes keyword options): the suite builds
    each test's backend from them, with `sanic_cookies.backend_from_url`, in
    this process and, for the cross-process tests, in a second OS process that
    must reach the same store. Override `make_backend` only to build the
    backend some other way (a per-process backend may implement it alone);
    it may be a plain ``def`` or an ``async def``.
    Declare what the backend lacks with the class attributes below; the tests
    of a capability the backend declares missing check that it says so
    (`UnsupportedOperation`) instead of running.

    No test sleeps: the expiry tests move the library's clock (``manual_clock``),
    which is all a store that expires on `sanic_cookies.clock.now` needs; for a
    store that keeps time on its server they then wait, for at most `wait_limit`
    seconds, until the server has dropped what should go.

    Unless the backend declares ``per_process = True``, the cross-process tests
    prove the lock between two processes: mutual exclusion, a lease that frees
    the lock of a holder killed with SIGKILL, and fencing of a holder paused
    (SIGSTOP) past its lease. A per-process lock fails them, naming the
    cross-process rule.

    Every failure of a rule the backend breaks names the rule (``rule: ...``).

    Attributes:
        lock_has_lease: The lock frees itself when its holder stops renewing it
            (False only for the in-process lock of a ``per_process = True``
            backend, which dies with its holder; the suite fails it otherwise).
        ttl_resolution: Seconds of slack the store's expiry may take (a store
            that expires lazily or in whole seconds needs more).
        wait_limit: The most seconds a test waits for a server to expire a
            value or a lease (a bound for busy machines, not an expected time).
    """

    lock_has_lease: ClassVar[bool] = True
    ttl_resolution: ClassVar[float] = 0.2
    wait_limit: ClassVar[float] = 30.0

    async def _gone(self, backend: Backend, key: str) -> bool:
        """Wait until `key` has expired; fail naming the rule if it is still there after
        `wait_limit` (True otherwise, so ``assert await self._gone(...)`` reads well)."""

        async def missing() -> bool:
            return await backend.load(key) is None

        if not await wait_until(missing, self.wait_limit + self.ttl_resolution):
            pytest.fail(
                f"A value was still loaded {self.wait_limit:g}s after its TTL ran out on the "
                f"library clock (rule: {EXPIRY_RULE})"
            )
        return True

    def backend_url(self) -> str:
        """The URL of the store this test uses; keys no other test run shares.

        Called once or more per test, on the test's own instance of the class:
        return the same URL each time within a test (a per-test file or key
        prefix set by an autouse fixture, say).
        """
        raise NotImplementedError(
            "Implement backend_url() (or make_backend()) in your BackendConformance subclass"
        )

    def backend_options(self) -> dict[str, Any]:
        """Keyword options for ``from_url`` with `backend_url` (JSON values). Default: none."""
        return {}

    async def make_backend(self) -> Backend:
        """Return a fresh, unopened backend; by default built from `backend_url`.

        An override may be ``async def`` or a plain ``def``.
        """
        return backend_from_url(self.backend_url(), **self.backend_options())

    async def new_backend(self) -> Backend:
        """`make_backend`'s backend (awaited if it is awaitable), unopened."""
        made: Backend | Awaitable[Backend] = self.make_backend()
        if inspect.isawaitable(made):
            made = await made
        if not isinstance(made, Backend):
            pytest.fail(f"make_backend() must return a sanic_cookies.Backend, got {made!r}")
        return made

    @asynccontextmanager
    async def opened_backend(self) -> AsyncIterator[Backend]:
        """A new backend from `make_backend`, opened for the block (for your own tests too)."""
        async with opened(await self.new_backend()) as backend:
            yield backend

    @pytest_asyncio.fixture
    async def backend(self) -> AsyncIterator[Backend]:
        async with self.opened_backend() as backend:
            yield backend

    # -- load / save / delete -------------------------------------------------

    async def test_load_missing_is_none(self, backend: Backend) -> None:
        assert await backend.load(_key()) is None

    async def test_save_then_load_round_trips(self, backend: Backend) -> None:
        key = _key()
        assert await backend.save(key, encode_value(1), 60) is True
        stored = await backend.load(key)
        assert stored is not None
        assert stored.value == encode_value(1)

    async def test_cleanup_keeps_live_values(self, backend: Backend) -> None:
        key = _key()
        await backend.save(key, encode_value(1), 60)
        removed = await backend.cleanup()
        assert removed is None or (isinstance(removed, int) and removed >= 0), removed
        assert decode_stored(await backend.load(key)) == 1

    async def test_load_reports_expiry_time(self, backend: Backend) -> None:
        key = _key()
        before = now()
        await backend.save(key, encode_value(1), 100)
        stored = await backend.load(key)
        assert stored is not None
        assert before + 100 - 2 <= stored.expires_at <= now() + 100 + 2, (
            f"a value saved with a 100 s TTL reported expires_at {stored.expires_at - now():+.1f}s "
            "from now (rule: StoredSession.expires_at is the epoch time the value expires, "
            "on sanic_cookies.clock.now())"
        )

    async def test_expiry_time_is_on_the_library_clock(
        self, backend: Backend, manual_clock: ManualClock
    ) -> None:
        key = _key()
        await backend.save(key, encode_value(1), 100)
        manual_clock.advance(50)
        stored = await backend.load(key)
        assert stored is not None, "a 100 s TTL has 50 s left"
        # Whether the store counts on the library's clock or its server's, the core
        # compares expires_at with `clock.now()`: at most 100 s from the save.
        assert manual_clock.now() < stored.expires_at <= manual_clock.now() + 100 + 2, (
            f"expires_at was {stored.expires_at - manual_clock.now():+.1f}s from the library "
            "clock's now (rule: StoredSession.expires_at is on sanic_cookies.clock.now(), not "
            "on the store's clock or time.time())"
        )

    async def test_binary_values_survive(self, backend: Backend) -> None:
        key = _key()
        value = bytes(range(256)) * 4
        await backend.save(key, value, 60)
        stored = await backend.load(key)
        assert stored is not None and stored.value == value

    async def test_load_now_agrees_with_load_or_is_unsupported(self, backend: Backend) -> None:
        # `loads_now` promises plain access can load this backend on the event loop.
        key, gone = _key(), _key()
        await backend.save(key, encode_value(1), 60)
        if not backend.loads_now:
            with pytest.raises(UnsupportedOperation):
                backend.load_now(key)
            return
        assert backend.load_now(key) == await backend.load(key)
        assert backend.load_now(gone) is None
        await backend.delete(key)
        assert backend.load_now(key) is None

    async def test_save_replaces(self, backend: Backend) -> None:
        key = _key()
        await backend.save(key, encode_value(1), 60)
        await backend.save(key, encode_value(2), 60)
        assert decode_stored(await backend.load(key)) == 2

    async def test_keys_are_independent(self, backend: Backend) -> None:
        a, b = _key(), _key()
        await backend.save(a, encode_value(1), 60)
        await backend.save(b, encode_value(2), 60)
        assert decode_stored(await backend.load(a)) == 1
        assert decode_stored(await backend.load(b)) == 2

    async def test_replace_only_refuses_missing_key(self, backend: Backend) -> None:
        key = _key()
        assert await backend.save(key, encode_value(1), 60, replace_only=True) is False
        assert await backend.load(key) is None

    async def test_replace_only_replaces_existing_key(self, backend: Backend) -> None:
        key = _key()
        await backend.save(key, encode_value(1), 60)
        assert await backend.save(key, encode_value(2), 60, replace_only=True) is True
        assert decode_stored(await backend.load(key)) == 2

    async def test_delete(self, backend: Backend) -> None:
        key = _key()
        await backend.save(key, encode_value(1), 60)
        await backend.delete(key)
        assert await backend.load(key) is None, (
            "a deleted key was still loaded (rule: delete removes the key at once; "
            "a logout is final)"
        )

    async def test_delete_missing_is_not_an_error(self, backend: Backend) -> None:
        await backend.delete(_key())

    # -- expiry ---------------------------------------------------------------

    async def test_value_expires_after_ttl(
        self, backend: Backend, manual_clock: ManualClock
    ) -> None:
        key = _key()
        await backend.save(key, encode_value(1), 0.5)
        assert await backend.load(key) is not None, (
            "A value saved with ttl=0.5 was gone at once (rule: TTLs are float seconds; "
            "a store that counts whole seconds or milliseconds rounds them up, never down)"
        )
        manual_clock.advance(0.5 + self.ttl_resolution)
        assert await self._gone(backend, key)

    async def _expired_key(self, backend: Backend, manual_clock: ManualClock) -> str:
        """A new key whose value was saved with ttl=0.5 and has expired since."""
        key = _key()
        await backend.save(key, encode_value(1), 0.5)
        manual_clock.advance(0.5 + self.ttl_resolution)
        assert await self._gone(backend, key)
        return key

    async def test_expired_value_is_not_replaceable(
        self, backend: Backend, manual_clock: ManualClock
    ) -> None:
        key = await self._expired_key(backend, manual_clock)
        assert await backend.save(key, encode_value(2), 60, replace_only=True) is False

    async def test_touch_extends_ttl_without_rewriting(
        self, backend: Backend, manual_clock: ManualClock
    ) -> None:
        key, twin = _key(), _key()
        await backend.save(key, encode_value(7), 2.0)
        await backend.save(twin, encode_value(7), 2.0)  # saved after key: expires after it
        manual_clock.advance(1.2)
        assert await backend.touch(key, 60) is True
        manual_clock.advance(0.8 + self.ttl_resolution)
        assert await self._gone(backend, twin)  # so the first TTL of key is over too
        assert decode_stored(await backend.load(key)) == 7

    async def test_touch_does_not_revive_an_expired_value(
        self, backend: Backend, manual_clock: ManualClock
    ) -> None:
        key = await self._expired_key(backend, manual_clock)
        touched = await backend.touch(key, 60)
        if touched or await backend.load(key) is not None:
            pytest.fail(
                f"touch() of an expired key returned {touched!r} and the value "
                f"{'came back' if await backend.load(key) is not None else 'stayed gone'} "
                "(rule: touch moves the expiry of a live key only and returns False for an "
                "expired one; an expired session never comes back)"
            )

    async def test_every_save_sets_the_new_ttl(
        self, backend: Backend, manual_clock: ManualClock
    ) -> None:
        plain, replaced, locked, twin = _key(), _key(), _key(), _key()
        # Each key's 60 s write follows its own 2 s save at once, so a slow store's round
        # trips do not eat into the 2 s.
        await backend.save(plain, encode_value(1), 2.0)
        await backend.save(plain, encode_value(2), 60)
        await backend.save(replaced, encode_value(1), 2.0)
        assert await backend.save(replaced, encode_value(2), 60, replace_only=True) is True
        await backend.save(locked, encode_value(1), 2.0)
        lock = backend.lock(locked, timeout=self.wait_limit, lease=self.wait_limit)
        await lock.acquire()
        assert await lock.save_and_release(encode_value(2), 60, replace_only=True) is True
        await backend.save(twin, encode_value(1), 2.0)  # saved last: expires after the others'
        manual_clock.advance(2.0 + self.ttl_resolution)
        assert await self._gone(backend, twin)  # so the 2 s TTLs of the others are over too
        writes = {"save": plain, "save(replace_only=True)": replaced, "save_and_release": locked}
        short = [name for name, key in writes.items() if await backend.load(key) is None]
        if short:
            pytest.fail(
                f"A 60 s TTL given to {', '.join(short)} of a key saved with a 2 s TTL was not "
                f"applied: gone with the 2 s TTL (rule: {TTL_RULE})"
            )

    async def test_touch_missing_key_is_false(self, backend: Backend) -> None:
        key = _key()
        assert await backend.touch(key, 60) is False
        assert await backend.load(key) is None

    # -- locking ----------------------------------------------------------------

    async def test_lock_acquire_loads_the_value(self, backend: Backend) -> None:
        key = _key()
        await backend.save(key, encode_value(3), 60)
        lock = backend.lock(key, timeout=2, lease=5)
        assert decode_stored(await lock.acquire()) == 3
        await lock.release()

    async def test_lock_acquire_of_missing_key_is_none(self, backend: Backend) -> None:
        lock = backend.lock(_key(), timeout=2, lease=5)
        assert await lock.acquire() is None
        await lock.release()

    async def test_lock_excludes_a_second_holder(self, backend: Backend) -> None:
        key = _key()
        first = backend.lock(key, timeout=2, lease=10)
        await first.acquire()
        second = backend.lock(key, timeout=0.3, lease=10)
        with pytest.raises(LockTimeout):
            await second.acquire()
        await first.release()
        third = backend.lock(key, timeout=2, lease=10)
        await third.acquire()
        await third.release()

    async def test_locks_of_different_keys_are_independent(self, backend: Backend) -> None:
        a = backend.lock(_key(), timeout=1, lease=10)
        b = backend.lock(_key(), timeout=1, lease=10)
        await a.acquire()
        await b.acquire()
        await a.release()
        await b.release()

    async def test_release_is_idempotent(self, backend: Backend) -> None:
        lock = backend.lock(_key(), timeout=1, lease=10)
        await lock.acquire()
        await lock.release()
        await lock.release()

    async def test_save_and_release_writes_and_frees(self, backend: Backend) -> None:
        key = _key()
        lock = backend.lock(key, timeout=1, lease=10)
        await lock.acquire()
        assert await lock.save_and_release(encode_value(5), 60) is True
        assert decode_stored(await backend.load(key)) == 5
        again = backend.lock(key, timeout=1, lease=10)
        assert decode_stored(await again.acquire()) == 5
        await again.release()

    async def test_delete_and_release_deletes_and_frees(self, backend: Backend) -> None:
        key = _key()
        await backend.save(key, encode_value(5), 60)
        lock = backend.lock(key, timeout=1, lease=10)
        await lock.acquire()
        await lock.delete_and_release()
        assert await backend.load(key) is None, (
            "a key was still loaded after delete_and_release (rule: delete removes the key "
            "at once; a logout is final)"
        )
        again = backend.lock(key, timeout=1, lease=10)
        assert await again.acquire() is None
        await again.release()

    async def test_save_racing_a_delete_does_not_resurrect(self, backend: Backend) -> None:
        key = _key()
        await backend.save(key, encode_value(1), 60)
        lock = backend.lock(key, timeout=1, lease=10)
        await lock.acquire()
        await backend.delete(key)  # a logout elsewhere, which takes no lock
        assert await lock.save_and_release(encode_value(2), 60, replace_only=True) is False
        assert await backend.load(key) is None

    async def test_concurrent_locked_increments_lose_nothing(self, backend: Backend) -> None:
        key = _key()
        await backend.save(key, encode_value(0), 60)

        async def increment() -> None:
            lock = backend.lock(key, timeout=20, lease=10)
            n = decode_stored(await lock.acquire()) or 0
            await asyncio.sleep(0)
            await lock.save_and_release(encode_value(n + 1), 60)

        await asyncio.gather(*(increment() for _ in range(50)))
        assert decode_stored(await backend.load(key)) == 50

    async def test_concurrent_saves_and_deletes_end_consistent(self, backend: Backend) -> None:
        key = _key()
        await backend.save(key, encode_value(0), 60)

        async def writer(i: int) -> None:
            lock = backend.lock(key, timeout=20, lease=10)
            await lock.acquire()
            await lock.save_and_release(encode_value(i), 60, replace_only=True)

        await asyncio.gather(*(writer(i) for i in range(10)), backend.delete(key))
        final = await backend.load(key)
        # A delete is final: every writer after it was refused; every one before it was deleted.
        assert final is None
        # and the lock is free again
        lock = backend.lock(key, timeout=1, lease=10)
        await lock.acquire()
        await lock.release()

    async def test_lock_lease_expires_when_holder_stops(
        self, backend: Backend, manual_clock: ManualClock
    ) -> None:
        if not self.lock_has_lease:
            pytest.skip(f"{type(backend).__name__} declares an in-process lock without lease")
        key = _key()
        await backend.save(key, encode_value(1), 60)
        dead = backend.lock(key, timeout=1, lease=0.5)
        await dead.acquire()  # and never released: its holder "died"
        manual_clock.advance(0.5 + self.ttl_resolution)
        # Waits (boundedly) for the lease to run out, however the store keeps it.
        alive = backend.lock(key, timeout=self.wait_limit, lease=10)
        assert decode_stored(await self._after_the_lease(alive, backend)) == 1
        await alive.save_and_release(encode_value(2), 60)
        # The dead holder wakes up: its fenced save must not overwrite the newer write.
        with pytest.raises(LockLost):
            await dead.save_and_release(encode_value(99), 60)
        assert decode_stored(await backend.load(key)) == 2
        await dead.release()  # idempotent, harmless

    async def test_extend_keeps_the_lease(
        self, backend: Backend, manual_clock: ManualClock
    ) -> None:
        if not self.lock_has_lease:
            pytest.skip(f"{type(backend).__name__} declares an in-process lock without lease")
        key, twin = _key(), _key()
        lock = backend.lock(key, timeout=1, lease=2)
        await lock.acquire()
        twin_lock = backend.lock(twin, timeout=1, lease=2)  # taken after: its lease ends later
        await twin_lock.acquire()
        manual_clock.advance(1)
        await lock.extend(60)
        manual_clock.advance(1 + self.ttl_resolution)
        # Once the twin's lease has run out (waited for, boundedly), so has the first lease.
        taker = backend.lock(twin, timeout=self.wait_limit, lease=5)
        await taker.acquire()
        await taker.release()
        other = backend.lock(key, timeout=0.3, lease=5)
        with pytest.raises(LockTimeout):
            await other.acquire()
        assert await lock.save_and_release(encode_value(1), 60) is True

    async def test_extend_after_the_lease_ran_out_raises_lock_lost(self, backend: Backend) -> None:
        if not self.lock_has_lease:
            pytest.skip(f"{type(backend).__name__} declares an in-process lock without lease")
        key = _key()
        await backend.save(key, encode_value(1), 60)
        stale = backend.lock(key, timeout=1, lease=0.5)
        await stale.acquire()
        # Taken by another holder once the lease ran out (acquire polls: no sleep).
        other = backend.lock(key, timeout=self.wait_limit, lease=10)
        await self._after_the_lease(other, backend)
        try:
            try:
                await stale.extend(10)
            except LockLost:
                pass
            else:
                pytest.fail(
                    "extend() after the lease ran out returned instead of raising LockLost "
                    "(rule: SessionLock.extend raises LockLost once the lease has run out; "
                    "the holder must learn it lost the lock before it writes)"
                )
            assert await other.save_and_release(encode_value(2), 60) is True
        finally:
            await other.release()
        assert decode_stored(await backend.load(key)) == 2
        await stale.release()  # idempotent, harmless

    async def _after_the_lease(self, lock: SessionLock, backend: Backend) -> StoredSession | None:
        """Acquire `lock` of a key whose holder stopped; fail naming the lease rule."""
        try:
            return await lock.acquire()
        except LockTimeout:
            hint = (
                " An in-process lock (LocalLock) has no lease: it is right only for a backend "
                "that declares per_process = True, whose suite sets lock_has_lease = False."
                if not backend.per_process
                else " If the lock is in-process, set lock_has_lease = False in the suite."
            )
            pytest.fail(
                "The lock of a holder that stopped with a 0.5s lease was still held "
                f"{self.wait_limit:g}s later (rule: a lock has a lease: it frees "
                f"itself once its holder stops renewing it).{hint} ({LEASE_DECLARATION_RULE})"
            )

    # -- the user index ("log out everywhere") --------------------------------------

    async def test_user_index(self, backend: Backend) -> None:
        user = "user-" + secrets.token_hex(4)
        if not backend.supports_user_index:
            for name in ("list_user_sessions", "delete_user_sessions"):
                try:
                    await getattr(backend, name)(user)
                except UnsupportedOperation:
                    continue
                pytest.fail(
                    f"{backend.label} declares supports_user_index = False, but {name}() did not "
                    "raise UnsupportedOperation (rule: a backend without a user index keeps "
                    "Backend's defaults, which raise it; with working index methods, declare "
                    "supports_user_index = True)"
                )
            return
        a, b, c, other = _key(), _key(), _key(), _key()
        for key in (a, b, c):
            await backend.save(key, encode_value(1), 60, user_id=user)
        await backend.save(other, encode_value(1), 60, user_id=user + "-other")
        assert set(await backend.list_user_sessions(user)) == {a, b, c}
        assert await backend.delete_user_sessions(user, keep=c) == 2
        assert await backend.load(a) is None and await backend.load(b) is None
        assert await backend.load(c) is not None
        assert await backend.load(other) is not None
        assert set(await backend.list_user_sessions(user)) == {c}

    async def test_user_index_follows_saves_and_deletes(self, backend: Backend) -> None:
        if not backend.supports_user_index:
            pytest.skip(f"{type(backend).__name__} declares no user index")
        user = "user-" + secrets.token_hex(4)
        a, b = _key(), _key()
        await backend.save(a, encode_value(1), 60, user_id=user)
        await backend.save(b, encode_value(1), 60, user_id=user)
        await backend.delete(a)
        await backend.save(b, encode_value(2), 60, user_id=None)  # logged out, session kept
        assert set(await backend.list_user_sessions(user)) == set()
        assert await backend.delete_user_sessions(user) == 0
        assert decode_stored(await backend.load(b)) == 2

    async def test_a_save_under_another_user_moves_the_key_in_the_index(
        self, backend: Backend
    ) -> None:
        if not backend.supports_user_index:
            pytest.skip(f"{type(backend).__name__} declares no user index")
        first, second = "user-" + secrets.token_hex(4), "user-" + secrets.token_hex(4)
        plain, replaced, locked = _key(), _key(), _key()
        for key in (plain, replaced, locked):
            await backend.save(key, encode_value(1), 60, user_id=first)
        await backend.save(plain, encode_value(2), 60, user_id=second)
        await backend.save(replaced, encode_value(2), 60, user_id=second, replace_only=True)
        lock = backend.lock(locked, timeout=2, lease=10)
        await lock.acquire()
        try:
            await lock.save_and_release(encode_value(2), 60, user_id=second, replace_only=True)
        finally:
            await lock.release()
        keys = {plain, replaced, locked}
        stale = set(await backend.list_user_sessions(first)) & keys
        missing = keys - set(await backend.list_user_sessions(second))
        if stale or missing:
            pytest.fail(
                f"after saving {len(keys)} keys under a new user, {len(stale)} were still listed "
                f"under the previous user and {len(missing)} were not listed under the new one "
                "(rule: save files the key under user_id and removes it from any previous "
                "user's entry, with or without replace_only; else logout_everywhere of the "
                "previous user ends the new user's session)"
            )
        assert await backend.delete_user_sessions(first) == 0
        assert decode_stored(await backend.load(plain)) == 2

    async def test_replace_only_save_without_user_leaves_the_index(self, backend: Backend) -> None:
        if not backend.supports_user_index:
            pytest.skip(f"{type(backend).__name__} declares no user index")
        user = "user-" + secrets.token_hex(4)
        plain, locked = _key(), _key()
        for key in (plain, locked):
            await backend.save(key, encode_value(1), 60, user_id=user)
        # A logout that keeps the session: the core saves it with user_id=None, replace_only.
        assert await backend.save(plain, encode_value(2), 60, replace_only=True) is True
        lock = backend.lock(locked, timeout=2, lease=10)
        await lock.acquire()
        try:
            assert await lock.save_and_release(encode_value(2), 60, replace_only=True) is True
        finally:
            await lock.release()
        left = set(await backend.list_user_sessions(user)) & {plain, locked}
        if left:
            pytest.fail(
                f"{len(left)} session(s) saved with replace_only=True and user_id=None are still "
                "in the user's index (rule: Backend.save with user_id=None removes the key from "
                "the user index, with or without replace_only; else logout_everywhere ends "
                "sessions that were already logged out)"
            )
        assert await backend.delete_user_sessions(user) == 0
        assert decode_stored(await backend.load(plain)) == 2
        assert decode_stored(await backend.load(locked)) == 2

    async def test_user_index_skips_expired_sessions(
        self, backend: Backend, manual_clock: ManualClock
    ) -> None:
        if not backend.supports_user_index:
            pytest.skip(f"{type(backend).__name__} declares no user index")
        user = "user-" + secrets.token_hex(4)
        live, dead = _key(), _key()
        await backend.save(live, encode_value(1), 60, user_id=user)
        await backend.save(dead, encode_value(1), 0.5, user_id=user)
        manual_clock.advance(0.5 + self.ttl_resolution)
        assert await self._gone(backend, dead)
        assert set(await backend.list_user_sessions(user)) == {live}
