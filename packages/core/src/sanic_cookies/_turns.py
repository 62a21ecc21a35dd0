"""`KeyTurns`: the tasks of one process that want the same session lock queue in order.

Without it, every request of a busy page that waits for one session's lock
polls the store on its own, and whoever polls right after a release wins: a
request can keep losing that race for seconds. With it, the tasks of one
process take turns per key, first come first served, and only the task whose
turn it is talks to the store; the others wait on a local future that the
previous turn hands over when it ends. (Across processes, the store's lock
decides; a backend can wake the head of another process's queue when the lock
is released, see the Redis backend's pub/sub wake-up.)

A turn is an optimisation, never the exclusion itself: the store's lock is.
So a turn also ends by itself once its hold time (the lock's lease) has
passed, so that a holder that forgot to release never blocks this process
longer than it blocks the others.
"""

from __future__ import annotations

import asyncio
import collections
import math
from typing import Any

__all__ = ["KeyTurns", "Turn"]


class _Queue:
    """The turn of one key: whether it is taken, and who waits for it (in order)."""

    __slots__ = ("taken", "waiters")

    def __init__(self) -> None:
        self.taken = False
        self.waiters: collections.deque[asyncio.Future[None]] = collections.deque()


class KeyTurns:
    """First-come-first-served turns per key for the tasks of one event loop.

    One per backend instance (the registry may be a dict the backend already
    keeps, such as the one `LeaseLock` is given)::

        turn = await turns.take(key, within=5.0, hold=lease)
        try:
            ...  # contend for the store's lock, use it, release it
        finally:
            turn.end()

    Args:
        registry: Where the queues live, one entry per key with a taker or waiter
            (emptied as they leave). A fresh dict if omitted.
    """

    __slots__ = ("_queues",)

    def __init__(self, registry: dict[str, Any] | None = None) -> None:
        self._queues: dict[str, _Queue] = {} if registry is None else registry

    def waiting(self, key: str) -> int:
        """How many tasks wait for the turn of `key` (not counting the one that has it)."""
        queue = self._queues.get(key)
        return 0 if queue is None else len(queue.waiters)

    async def take(self, key: str, *, within: float, hold: float = math.inf) -> Turn:
        """Wait for the turn of `key`, behind the tasks that asked before.

        Args:
            key: What the turn is for (a session's store key).
            within: Seconds to wait at most.
            hold: Seconds after which the turn ends by itself (the lock's lease).

        Returns:
            The turn; call `Turn.end` when done with the store's lock.

        Raises:
            TimeoutError: The turn did not come `within` seconds.
        """
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = _Queue()
        if not queue.taken and not queue.waiters:
            queue.taken = True
            return Turn(self, key, queue, hold)
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue.waiters.append(waiter)
        try:
            async with asyncio.timeout(within):
                await waiter
        except BaseException:
            if not waiter.done() or waiter.cancelled():
                if waiter in queue.waiters:
                    queue.waiters.remove(waiter)
                self._forget_if_idle(key, queue)
            elif waiter.exception() is None:
                # Handed the turn just as the wait was given up: pass it on.
                self._hand_over(key, queue)
            # else: the turn before failed (`Turn.fail`), and so does this wait.
            raise
        return Turn(self, key, queue, hold)

    def _hand_over(self, key: str, queue: _Queue) -> None:
        """End the current turn of `key`: give it to the first live waiter, or free it."""
        while queue.waiters:
            waiter = queue.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the turn stays taken: it is the waiter's now
                return
        queue.taken = False
        self._forget_if_idle(key, queue)

    def _fail_all(self, key: str, queue: _Queue, error: BaseException) -> None:
        """End the current turn of `key` and make every waiting task raise `error`."""
        waiters = list(queue.waiters)
        queue.waiters.clear()
        queue.taken = False
        self._forget_if_idle(key, queue)
        for waiter in waiters:
            if not waiter.done():
                waiter.set_exception(error)

    def _forget_if_idle(self, key: str, queue: _Queue) -> None:
        if not queue.taken and not queue.waiters and self._queues.get(key) is queue:
            del self._queues[key]


class Turn:
    """One task's turn for one key, from `KeyTurns.take`. End it with `end` (idempotent)."""

    __slots__ = ("_key", "_queue", "_timer", "_turns")

    def __init__(self, turns: KeyTurns, key: str, queue: _Queue, hold: float) -> None:
        self._turns: KeyTurns | None = turns
        self._key = key
        self._queue = queue
        self._timer: asyncio.TimerHandle | None = None
        self.extend(hold)

    @property
    def active(self) -> bool:
        """True until the turn ended (by `end` or at the end of its hold time)."""
        return self._turns is not None

    def extend(self, hold: float) -> None:
        """Make the turn end by itself `hold` seconds from now (never, if infinite)."""
        if self._turns is None:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if math.isfinite(hold):
            self._timer = asyncio.get_running_loop().call_later(max(hold, 0.0), self.end)

    def end(self) -> None:
        """Give the turn to the next waiting task of this process. Idempotent."""
        turns = self._stop()
        if turns is not None:
            turns._hand_over(self._key, self._queue)

    def fail(self, error: BaseException) -> None:
        """End the turn and make the tasks waiting for it raise `error` (the store failed).

        A store that does not answer would otherwise fail the waiters one at a
        time, each after its own timeout; this way they all answer at once, as
        they would have without the queue. Tasks that come later try afresh.
        """
        turns = self._stop()
        if turns is not None:
            turns._fail_all(self._key, self._queue, error)

    def _stop(self) -> KeyTurns | None:
        turns, self._turns = self._turns, None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        return turns
