"""The cross-process tests of `BackendConformance`: a second OS process, the same store.

A backend that does not declare ``per_process = True`` says its store is shared
by every worker process, so its lock must work between processes: exclude,
free itself when a holder process dies, and refuse the write of a holder whose
lease ran out. An in-process lock passes every single-process test and loses
updates between workers; these tests catch it, against the real store.

Waits are on conditions, never fixed sleeps: a lease on a real server runs on
the server's clock, so the tests use short leases and let `acquire` poll until
its (bounded) timeout.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import pytest

from sanic_cookies._backend import Backend
from sanic_cookies._errors import LockTimeout
from sanic_cookies._ids import new_session_id, store_key

from ._processes import CROSS_PROCESS_RULE, Peer, PeerError
from ._values import decode_stored, encode_value

__all__ = ["CrossProcessTests"]

# A lease short enough to wait out, long enough for a busy machine to act within it
# (the kill and pause tests do not depend on acting within it).
_SHORT_LEASE = 1.0
# How long past a lease the store may take to free the lock (timer granularity,
# a busy server, polling): a bound on the wait, not a wait.
_LEASE_SLACK = 15.0


def _key() -> str:
    return store_key(new_session_id())


class CrossProcessTests:
    """Mixed into `BackendConformance`; see `backend_url` there."""

    ttl_resolution: ClassVar[float]

    def backend_url(self) -> str:
        raise NotImplementedError

    def backend_options(self) -> dict[str, Any]:
        raise NotImplementedError

    async def _peer(self, backend: Backend) -> Peer:
        if backend.per_process:
            pytest.skip(f"{backend.label} declares per_process = True: no other process shares it")
        try:
            url = self.backend_url()
        except NotImplementedError:
            pytest.fail(
                f"{backend.label} does not declare per_process = True, so {CROSS_PROCESS_RULE}. "
                "To prove it the suite opens the same store from a second process: implement "
                "backend_url() (and backend_options()) in your BackendConformance subclass, "
                "returning what make_backend() builds the backend from."
            )
        return Peer(type(backend), url, self.backend_options())

    async def _holder_sees(self, peer: Peer, key: str, lease: float, n: int) -> None:
        reply = await peer.call("acquire", key=key, timeout=10, lease=lease)
        if reply["n"] != n:
            pytest.fail(
                f"The second process, opened from the same backend_url(), read {reply['n']!r} "
                f"where this process saved {n}: it does not share the store, so "
                f"{CROSS_PROCESS_RULE} cannot even be tested (does backend_url() name the "
                "store make_backend() uses?)"
            )

    async def test_cross_process_lock_excludes(self, backend: Backend) -> None:
        key = _key()
        await backend.save(key, encode_value(1), 60)
        async with await self._peer(backend) as peer:
            await self._holder_sees(peer, key, lease=30, n=1)
            mine = backend.lock(key, timeout=0.5, lease=10)
            try:
                await mine.acquire()
            except LockTimeout:
                pass
            else:
                await mine.release()
                pytest.fail(
                    f"This process acquired the lock of a key another process holds: "
                    f"{backend.label}'s lock excludes only within one process, which breaks "
                    f"{CROSS_PROCESS_RULE} (updates from two workers would be lost)"
                )
            assert (await peer.call("save_and_release", n=2, ttl=60))["result"] is True
            # Freed by the other process: this one takes it, and sees the other's write.
            mine = backend.lock(key, timeout=10, lease=10)
            assert decode_stored(await mine.acquire()) == 2
            try:
                # ... and the other way round: the other process must wait for this one.
                try:
                    await peer.call("acquire", key=key, timeout=0.5, lease=10)
                except PeerError as exc:
                    assert exc.name == "LockTimeout", str(exc)
                else:
                    pytest.fail(
                        "Another process acquired the lock of a key this process holds, "
                        f"which breaks {CROSS_PROCESS_RULE}"
                    )
                assert await mine.save_and_release(encode_value(3), 60) is True
            finally:
                await mine.release()

    async def test_cross_process_increments_lose_nothing(self, backend: Backend) -> None:
        key, each = _key(), 20
        await backend.save(key, encode_value(0), 60)

        async def increment() -> None:
            lock = backend.lock(key, timeout=60, lease=30)
            n = decode_stored(await lock.acquire()) or 0
            try:
                await asyncio.sleep(0)  # let the other increments of this process interleave
                await lock.save_and_release(encode_value(n + 1), 60)
            finally:
                await lock.release()

        async with await self._peer(backend) as peer:
            await peer.send("increment", key=key, times=each)  # runs while this process does
            await asyncio.gather(*(increment() for _ in range(each)))
            await peer.reply("increment")
        total = decode_stored(await backend.load(key))
        if total != 2 * each:
            pytest.fail(
                f"Two processes each made {each} locked increments of one key and the store "
                f"holds {total}: {2 * each - (total or 0)} were lost, which breaks "
                f"{CROSS_PROCESS_RULE}"
            )

    async def test_cross_process_lease_frees_a_killed_holder(self, backend: Backend) -> None:
        key = _key()
        await backend.save(key, encode_value(1), 60)
        async with await self._peer(backend) as peer:
            await self._holder_sees(peer, key, lease=_SHORT_LEASE, n=1)
            await peer.kill()  # SIGKILL while holding: no release, no goodbye
        wait = _SHORT_LEASE + self.ttl_resolution + _LEASE_SLACK
        alive = backend.lock(key, timeout=wait, lease=10)
        try:
            stored = await alive.acquire()  # polls until the lease runs out on the store
        except LockTimeout:
            pytest.fail(
                f"The lock of a holder process killed (SIGKILL) mid-hold was still held "
                f"{wait:g}s later, past its {_SHORT_LEASE:g}s lease, which breaks "
                f"{CROSS_PROCESS_RULE} (a crashed worker must not lock a session for good)"
            )
        try:
            assert decode_stored(stored) == 1
            assert await alive.save_and_release(encode_value(2), 60) is True
        finally:
            await alive.release()

    async def test_cross_process_fencing_refuses_a_paused_holder(self, backend: Backend) -> None:
        key = _key()
        await backend.save(key, encode_value(1), 60)
        async with await self._peer(backend) as peer:
            await self._holder_sees(peer, key, lease=_SHORT_LEASE, n=1)
            peer.pause()  # SIGSTOP: the holder stops dead past its lease, still "holding"
            try:
                wait = _SHORT_LEASE + self.ttl_resolution + _LEASE_SLACK
                mine = backend.lock(key, timeout=wait, lease=10)
                try:
                    await mine.acquire()
                except LockTimeout:
                    pytest.fail(
                        f"The lock of a paused holder process was still held {wait:g}s later, "
                        f"past its {_SHORT_LEASE:g}s lease, which breaks {CROSS_PROCESS_RULE}"
                    )
                try:
                    assert await mine.save_and_release(encode_value(2), 60) is True
                finally:
                    await mine.release()
            finally:
                peer.resume()  # SIGCONT: it wakes up and finishes its request
            try:
                late = await peer.call("save_and_release", n=99, ttl=60)
            except PeerError as exc:
                refused = exc.name == "LockLost"
                detail = str(exc)
            else:
                refused = late["result"] is False
                detail = f"returned {late['result']!r}"
            await peer.call("release")
        stored = decode_stored(await backend.load(key))
        if stored != 2 or not refused:
            pytest.fail(
                f"A holder process paused past its lease, whose lock another process then "
                f"took and saved 2 under, woke up and saved 99: it {detail} and the store "
                f"holds {stored}. Its save_and_release must raise LockLost and write nothing "
                f"(fencing), by {CROSS_PROCESS_RULE}"
            )
