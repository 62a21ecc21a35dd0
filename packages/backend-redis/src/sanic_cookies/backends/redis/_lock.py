"""`RedisLock`: a session lock shared by every process that uses the same Redis.

One holder at a time per session key, identified by a random token stored in
the lock key with a lease (``PX``). Only the holder releases it
(compare-and-delete), and its final save or delete is fenced: the script checks
the token and writes in the same atomic step, so a holder whose lease ran out
(and whose lock someone else may have taken) writes nothing and gets
`LockLost`.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
import time
from typing import TYPE_CHECKING, Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sanic_cookies import LockLost, LockTimeout, SessionLock, StoredSession, Turn, clock

from ._client import ms

if TYPE_CHECKING:
    from ._lock_store import LockStore

__all__ = ["RedisLock"]

# Waiting for a busy lock: retry after a jittered delay that doubles from the
# first to the last value (seconds). Short, because a session's critical
# section is usually a couple of milliseconds; jittered, so the waiters of a
# released lock do not all retry at once. With the pub/sub wake-up working, a
# release wakes the waiter anyway: polling is the fallback, and slower.
_FIRST_DELAY = 0.004
_MAX_DELAY = 0.1
_MAX_DELAY_SUBSCRIBED = 0.5

_IDLE, _HELD, _DONE = 0, 1, 2

# How long a voided token stays void (ms; at least the lease): an acquire Redis runs
# later than that, after a longer stall, takes the lock until its lease ends.
_VOID_KEEP_MS = 60_000
# The longest pause between two tries of a void that Redis did not answer (seconds).
_MAX_VOID_DELAY = 0.5
# What "Redis did not answer" looks like (redis-py's errors, and the loop's own).
_NO_ANSWER = (RedisConnectionError, RedisTimeoutError, OSError, TimeoutError)


class RedisLock(SessionLock):
    """The lock of one session key in Redis, from `RedisBackend.lock`.

    Each instance is one would-be holder with its own random token; it can be
    acquired once. Costs: `acquire` is one round trip per attempt (taking the
    lock and loading the value in one script), `save_and_release` and
    `delete_and_release` one each (a login change costs one or two more, for
    the user index), `release` and `extend` one.

    Args:
        store: What the lock may use of its backend (built by `RedisBackend.lock`).
        key: The session key to lock.
        timeout: Seconds `acquire` waits for a busy lock before `LockTimeout`.
        lease: Seconds the lock outlives a holder that stopped without releasing.
    """

    def __init__(self, store: LockStore, key: str, *, timeout: float, lease: float) -> None:
        self._store = store
        self._key = key
        self._timeout = timeout
        self._lease_ms = ms(lease)
        self._token = secrets.token_hex(16)
        self._state = _IDLE
        # What acquire saw of the stored session: its user and how long (ms, from
        # `_seen_at`) its user-index entry is still guaranteed; used to skip the
        # index round trip when it cannot be needed.
        self._owner: str | None = None
        self._index_left_ms = -1
        self._seen_at = 0.0
        self._turn: Turn | None = None

    @property
    def held(self) -> bool:
        """True between a successful `acquire` and the release (as far as this holder knows)."""
        return self._state == _HELD

    async def acquire(self) -> StoredSession | None:
        """Take the lock and load the session, in one round trip per attempt.

        Tasks of this process that want the same session queue in order
        (`KeyTurns`); only the first of them tries Redis. While another process
        holds the lock, it waits for the release's pub/sub message (see
        `_wakeup`), polling with a jittered backoff only as a fallback.

        Returns:
            The stored session, or None if there is none.

        Raises:
            LockTimeout: The lock stayed busy for `timeout` seconds.
            RuntimeError: This lock object was already used.
        """
        if self._state != _IDLE:
            raise RuntimeError("A RedisLock can be acquired once; ask the backend for a new one.")
        store = self._store
        keys = store.lock_keys(self._key, self._token)
        deadline = clock.monotonic() + self._timeout  # the library's timeout: its clock
        try:
            turn = await store.take_turn(
                self._key, within=self._timeout, hold=self._lease_ms / 1000
            )
        except TimeoutError:
            raise self._timed_out() from None
        try:
            reply = await self._try(keys)
            if reply is None:
                reply = await self._wait(keys, deadline)
        except LockTimeout:
            turn.end()
            raise
        except Exception as exc:
            turn.fail(exc)  # Redis failed: the waiters behind answer now, not one by one
            raise
        except BaseException:
            turn.end()
            raise
        self._turn = turn
        self._state = _HELD
        if len(reply) > 2:
            # Real time, not the library's clock: it measures a TTL Redis keeps.
            self._seen_at = time.monotonic()
            self._owner = reply[2].decode()
            self._index_left_ms = int(reply[3])
        if not reply:
            return None
        return StoredSession(bytes(reply[0]), store.expires_at(int(reply[1])))

    async def _try(self, keys: list[str]) -> list[Any] | None:
        """One attempt: the ACQUIRE reply if the lock is ours now, None if it is busy."""
        store = self._store
        try:
            reply = await store.acquire(keys, self._token, self._lease_ms)
        except BaseException:
            # The script may have run before the error (a lost reply), or may run
            # later (a stalled Redis runs what it had queued once it resumes, in any
            # order across connections): free the lock if it ran, and void the token
            # if not yet, in the background, rather than leave it until the lease ends.
            # Its token is spent: this lock cannot be acquired again (the void would
            # undo it).
            self._state = _DONE
            store.spawn(self._void_quietly())
            raise
        return reply if isinstance(reply, list) else None  # else: the holder's pttl

    async def _wait(self, keys: list[str], deadline: float) -> list[Any]:
        """Try again at each release of the lock (or poll), until it is ours or time is up."""
        channel = keys[1].encode()
        delay = _FIRST_DELAY
        async with self._store.watching(channel) as released:
            while True:
                left = deadline - clock.monotonic()
                if left <= 0:
                    raise self._timed_out()
                pause = min(left, delay * random.uniform(0.5, 1.5))
                if released is None:
                    await asyncio.sleep(pause)
                    delay = min(delay * 2, _MAX_DELAY)
                else:
                    # Set at once when the subscription is confirmed (a release before
                    # it went unheard: try again), then by each release.
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(pause):
                            await released.wait()
                    released.clear()
                    delay = min(delay * 2, _MAX_DELAY_SUBSCRIBED)
                reply = await self._try(keys)
                if reply is not None:
                    return reply

    def _timed_out(self) -> LockTimeout:
        return LockTimeout(
            f"Session lock on {self._store.label} not acquired within {self._timeout}s"
        )

    async def save_and_release(
        self,
        value: bytes,
        ttl: float,
        *,
        user_id: str | None = None,
        replace_only: bool = False,
    ) -> bool:
        """Write `value` and release the lock, in one fenced script.

        Returns:
            False if `replace_only` is set and the session no longer exists
            (nothing written, lock released); True otherwise.

        Raises:
            LockLost: The lease ran out (someone else may hold the lock now);
                nothing was written.
        """
        self._require_held()
        ttl_ms = ms(ttl)
        index_first = user_id is not None and (
            self._owner != user_id or self._index_left() < ttl_ms + self._store.index_safety_ms
        )
        try:
            saved = await self._store.save(
                self._key,
                value,
                ttl_ms,
                user_id=user_id,
                replace_only=replace_only,
                token=self._token,
                index_first=index_first,
            )
        except LockLost:
            self._done()
            raise
        self._done()
        return saved

    async def delete_and_release(self) -> None:
        """Delete the session (and its user-index entry) and release, in one fenced script.

        Raises:
            LockLost: The lease ran out; nothing was deleted.
        """
        self._require_held()
        try:
            await self._store.delete(self._key, token=self._token)
        except LockLost:
            self._done()
            raise
        self._done()

    async def release(self) -> None:
        """Release without writing (compare-and-delete). Idempotent.

        A lock that was never acquired, already released, or whose lease ran
        out (and maybe was taken by another holder) is left alone.
        """
        if self._state != _HELD:
            return
        try:
            await self._store.release(self._key, self._token)
        except BaseException:
            self._end_turn()  # the lease frees the store's lock; let this process go on
            raise
        self._done()

    async def extend(self, lease: float) -> None:
        """Make the lease end `lease` seconds from now.

        Raises:
            LockLost: The lease had already run out.
        """
        self._require_held()
        store = self._store
        extended = await store.extend(self._key, self._token, ms(lease))
        if not extended:
            self._done()
            raise LockLost(f"Session lock on {store.label} expired before it was extended")
        if self._turn is not None:
            self._turn.extend(lease)

    def _done(self) -> None:
        """Spent: the next task of this process waiting for this session goes on."""
        self._state = _DONE
        self._end_turn()

    def _end_turn(self) -> None:
        turn, self._turn = self._turn, None
        if turn is not None:
            turn.end()

    def _require_held(self) -> None:
        if self._state != _HELD:
            raise LockLost(f"Session lock on {self._store.label} is not held")

    def _index_left(self) -> float:
        if self._index_left_ms < 0:
            return -1.0
        return self._index_left_ms - (time.monotonic() - self._seen_at) * 1000

    async def _void_quietly(self) -> None:
        """Void this lock's token, retrying while Redis does not answer.

        While Redis is stalled, the void cannot reach it (a new connection's
        handshake waits too); once it resumes, the acquire it had queued runs
        first and the void, retried, frees what it took. Retried for as long as
        the void mark is kept (`_VOID_KEEP_MS`, or the lease if longer): a stall
        longer than that can still leave the lock until its lease ends. An
        error reply is an answer: not retried.
        """
        keep_ms = max(self._lease_ms, _VOID_KEEP_MS)
        give_up = clock.monotonic() + keep_ms / 1000
        delay = _FIRST_DELAY
        while True:
            try:
                await self._store.void(self._key, self._token, keep_ms)
                return
            except _NO_ANSWER:
                if clock.monotonic() + delay >= give_up:
                    return
            except Exception:
                return  # an error reply (or a closed backend): nothing to wait for
            await asyncio.sleep(delay)
            delay = min(delay * 2, _MAX_VOID_DELAY)
