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
longer than it blocks the others. Its timer is set only once another task
waits behind it: an event-loop timer costs about 20k instructions to set and
cancel on asyncio's own loop (2.6k on uvloop), and most turns are ended long
before their hold time by a holder nobody waited for. A task that asks for a
key whose turn has outlived its hold time, with nobody waiting, takes it at once;
and each new key first ends the oldest key's turn if it is such a forgotten one.
"""

from __future__ import annotations

import asyncio
import collections
import math
from typing import Any

__all__ = ["KeyTurns", "Turn"]


class _Queue:
    """The turn of one key: whether it is taken (and by which `Turn`), who waits (in order)."""

    __slots__ = ("holder", "taken", "waiters")

    def __init__(self) -> None:
        self.taken = False
        # The current turn, once its task has it (None while a hand-over is under way).
        self.holder: Turn | None = None
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
        loop = asyncio.get_running_loop()
        queue = self._queue(key, loop)
        if not queue.taken and not queue.waiters:
            queue.taken = True
            return Turn(self._queues, key, queue, hold)
        waiter: asyncio.Future[None] = loop.create_future()
        queue.waiters.append(waiter)
        if queue.holder is not None:
            queue.holder.watch()  # someone waits now: the holder's hold time must be kept
        try:
            async with asyncio.timeout(within):
                await waiter
        except BaseException:
            if not waiter.done() or waiter.cancelled():
                if waiter in queue.waiters:
                    queue.waiters.remove(waiter)
                _forget_if_idle(self._queues, key, queue)
            elif waiter.exception() is None:
                # Handed the turn just as the wait was given up: pass it on.
                _hand_over(self._queues, key, queue)
            # else: the turn before failed (`Turn.fail`), and so does this wait.
            raise
        return Turn(self._queues, key, queue, hold)

    def _queue(self, key: str, loop: asyncio.AbstractEventLoop) -> _Queue:
        """The queue of `key`, made if missing; a turn past its hold time ended first."""
        queue = self._queues.get(key)
        if queue is not None and _end_if_overdue(queue, loop):
            queue = self._queues.get(key)
        if queue is None:
            # A forgotten turn nobody waits for has no timer, and its key (a random
            # session's) may never be asked for again: one look at the oldest key per
            # new key sheds them as fast as keys come.
            oldest = next(iter(self._queues.values()), None)
            if oldest is not None:
                _end_if_overdue(oldest, loop)
            queue = self._queues[key] = _Queue()
        return queue


def _end_if_overdue(queue: _Queue, loop: asyncio.AbstractEventLoop) -> bool:
    """End `queue`'s turn if its hold time has passed (its timer, if any, would have)."""
    holder = queue.holder
    if holder is not None and holder.overdue(loop):
        holder.end()
        return True
    return False


def _hand_over(queues: dict[str, _Queue], key: str, queue: _Queue) -> None:
    """End the current turn of `key`: give it to the first live waiter, or free it."""
    queue.holder = None
    while queue.waiters:
        waiter = queue.waiters.popleft()
        if not waiter.done():
            waiter.set_result(None)  # the turn stays taken: it is the waiter's now
            return
    queue.taken = False
    _forget_if_idle(queues, key, queue)


def _fail_all(queues: dict[str, _Queue], key: str, queue: _Queue, error: BaseException) -> None:
    """End the current turn of `key` and make every waiting task raise `error`."""
    waiters = list(queue.waiters)
    queue.waiters.clear()
    queue.taken = False
    queue.holder = None
    _forget_if_idle(queues, key, queue)
    for waiter in waiters:
        if not waiter.done():
            waiter.set_exception(error)


def _forget_if_idle(queues: dict[str, _Queue], key: str, queue: _Queue) -> None:
    if not queue.taken and not queue.waiters and queues.get(key) is queue:
        del queues[key]


class Turn:
    """One task's turn for one key, from `KeyTurns.take`. End it with `end` (idempotent)."""

    __slots__ = ("_deadline", "_key", "_loop", "_queue", "_queues", "_timer")

    def __init__(self, queues: dict[str, _Queue], key: str, queue: _Queue, hold: float) -> None:
        # The registry of the `KeyTurns` that gave the turn; None once it ended.
        self._queues: dict[str, _Queue] | None = queues
        self._key = key
        self._queue = queue
        self._loop = asyncio.get_running_loop()
        # When the hold time ends (event-loop time); the timer that ends the turn then is
        # set only while a task waits behind it (`watch`).
        self._deadline = math.inf
        self._timer: asyncio.TimerHandle | None = None
        queue.holder = self
        self.extend(hold)

    @property
    def active(self) -> bool:
        """True until the turn ended (by `end` or at the end of its hold time)."""
        return self._queues is not None and not self.overdue(self._loop)

    def overdue(self, loop: asyncio.AbstractEventLoop) -> bool:
        """Whether the hold time has passed (`loop`: the running loop, for its clock)."""
        return self._deadline != math.inf and loop.time() >= self._deadline

    def extend(self, hold: float) -> None:
        """Make the turn end by itself `hold` seconds from now (never, if infinite)."""
        if self._queues is None:
            return
        self._deadline = self._loop.time() + max(hold, 0.0) if math.isfinite(hold) else math.inf
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._queue.waiters:
            self.watch()

    def watch(self) -> None:
        """Set the timer that ends the turn at the end of its hold time (a task waits)."""
        if self._timer is None and self._queues is not None and self._deadline != math.inf:
            self._timer = self._loop.call_at(self._deadline, self.end)

    def end(self) -> None:
        """Give the turn to the next waiting task of this process. Idempotent."""
        queues = self._stop()
        if queues is not None:
            _hand_over(queues, self._key, self._queue)

    def fail(self, error: BaseException) -> None:
        """End the turn and make the tasks waiting for it raise `error` (the store failed).

        A store that does not answer would otherwise fail the waiters one at a
        time, each after its own timeout; this way they all answer at once, as
        they would have without the queue. Tasks that come later try afresh.
        """
        queues = self._stop()
        if queues is not None:
            _fail_all(queues, self._key, self._queue, error)

    def _stop(self) -> dict[str, _Queue] | None:
        queues, self._queues = self._queues, None
        if queues is not None and self._queue.holder is self:
            self._queue.holder = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        return queues
