"""`sanic_cookies.testing.FaultyBackend` itself: it fails exactly when and how it is told."""

from __future__ import annotations

import asyncio

import pytest

from sanic_cookies import ConfigurationError
from sanic_cookies.backends.memory import MemoryBackend
from sanic_cookies.testing import OPERATIONS, BackendConformance, FaultyBackend, InjectedFault
from sanic_cookies.testing._faults import BACKEND_OPERATIONS, LOCK_OPERATIONS

KEY = "ab" * 32


def test_every_operation_of_the_contract_can_fail() -> None:
    assert set(OPERATIONS) == set(BACKEND_OPERATIONS) | set(LOCK_OPERATIONS)
    assert {"load", "save", "touch", "delete", "open", "close"} <= set(BACKEND_OPERATIONS)
    assert {"list_user_sessions", "delete_user_sessions"} <= set(BACKEND_OPERATIONS)
    assert set(LOCK_OPERATIONS) == {
        "acquire",
        "save_and_release",
        "delete_and_release",
        "release",
        "extend",
    }


async def test_a_fault_before_the_call_leaves_the_store_untouched() -> None:
    inner = MemoryBackend()
    faulty = FaultyBackend(inner)
    faulty.fail("save")
    with pytest.raises(InjectedFault):
        await faulty.save(KEY, b"v1", 60)
    assert await inner.load(KEY) is None
    assert await faulty.save(KEY, b"v1", 60) is True  # times=1: the next call goes through
    stored = await inner.load(KEY)
    assert stored is not None and stored.value == b"v1"


async def test_a_fault_after_the_call_leaves_what_the_call_did() -> None:
    inner = MemoryBackend()
    faulty = FaultyBackend(inner)
    faulty.fail("save", when="after", exc=TimeoutError("answer lost"))
    with pytest.raises(TimeoutError, match="answer lost"):
        await faulty.save(KEY, b"v1", 60)
    stored = await inner.load(KEY)
    assert stored is not None and stored.value == b"v1"


async def test_times_none_fails_until_disarmed_and_the_context_manager_disarms() -> None:
    faulty = FaultyBackend(MemoryBackend())
    with faulty.fail("load", times=None) as fault:
        for _ in range(3):
            with pytest.raises(InjectedFault):
                await faulty.load(KEY)
    assert fault.fired == 3
    assert await faulty.load(KEY) is None
    assert faulty.calls["load"] == 4


async def test_faults_hit_only_their_operation_and_clear_disarms_all() -> None:
    faulty = FaultyBackend(MemoryBackend())
    faulty.fail("delete", times=None)
    faulty.fail("touch", times=None)
    assert await faulty.save(KEY, b"v", 60)
    with pytest.raises(InjectedFault):
        await faulty.delete(KEY)
    faulty.clear()
    await faulty.delete(KEY)
    assert await faulty.touch(KEY, 60) is False


async def test_lock_operations_fail_and_release_after_a_lost_answer_still_frees() -> None:
    inner = MemoryBackend()
    faulty = FaultyBackend(inner)
    lock = faulty.lock(KEY, timeout=0.5, lease=10)
    faulty.fail("acquire", when="after")
    with pytest.raises(InjectedFault):
        await lock.acquire()
    # The inner lock was granted: only a release gives it back.
    faulty.fail("release", when="after")
    with pytest.raises(InjectedFault):
        await lock.release()
    other = inner.lock(KEY, timeout=0.5, lease=10)
    await other.acquire()  # free again
    await other.release()
    for op in ("save_and_release", "delete_and_release", "extend"):
        lock = faulty.lock(KEY, timeout=0.5, lease=10)
        await lock.acquire()
        faulty.fail(op)
        with pytest.raises(InjectedFault):
            if op == "save_and_release":
                await lock.save_and_release(b"v", 60)
            elif op == "delete_and_release":
                await lock.delete_and_release()
            else:
                await lock.extend(10)
        await lock.release()
    assert faulty.calls["acquire"] == 4


async def test_delay_slows_a_call_down_and_then_lets_it_through() -> None:
    faulty = FaultyBackend(MemoryBackend())
    faulty.delay("save", 5.0)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await faulty.save(KEY, b"v", 60)
    assert await faulty.save(KEY, b"v", 60) is True  # the delay was used up


async def test_open_and_close_can_fail() -> None:
    faulty = FaultyBackend(MemoryBackend())
    faulty.fail("open")
    faulty.fail("close")
    with pytest.raises(InjectedFault):
        await faulty.open()
    await faulty.open()
    with pytest.raises(InjectedFault):
        await faulty.close()
    await faulty.close()


def test_bad_arguments_are_refused() -> None:
    faulty = FaultyBackend(MemoryBackend())
    with pytest.raises(ValueError, match="Unknown operation"):
        faulty.fail("lod")
    with pytest.raises(ValueError, match="times"):
        faulty.fail("load", times=0)
    with pytest.raises(ValueError, match="when"):
        faulty.fail("load", when="during")  # type: ignore[arg-type]


def test_it_mirrors_the_inner_backend() -> None:
    inner = MemoryBackend()
    faulty = FaultyBackend(inner)
    assert faulty.label == "memory"
    assert faulty.supports_user_index is True
    assert faulty.per_process is True
    assert FaultyBackend(inner, name="flaky").label == "flaky"
    assert isinstance(FaultyBackend.from_url("faulty+memory://").inner, MemoryBackend)


def test_client_side_backends_are_refused() -> None:
    from sanic_cookies import ClientSideBackend

    class Cookies(ClientSideBackend):
        @classmethod
        def from_url(cls, url: str, **options: object) -> Cookies:
            return cls()

        async def decode_cookie(self, token: str) -> None:
            return None

        async def encode_cookie(self, value: bytes, ttl: float) -> str:
            return ""

    with pytest.raises(ConfigurationError):
        FaultyBackend(Cookies())


class TestFaultyBackendUnarmedKeepsTheContract(BackendConformance):
    """With nothing armed, a FaultyBackend is its inner backend."""

    lock_has_lease = False

    async def make_backend(self) -> FaultyBackend:
        return FaultyBackend(MemoryBackend(sweep_interval=0.1))
