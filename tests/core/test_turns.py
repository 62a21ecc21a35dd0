"""KeyTurns: first-come-first-served turns per key among the tasks of one process."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from sanic_cookies._turns import KeyTurns, Turn


async def queued(turns: KeyTurns, key: str, n: int) -> None:
    """Let the loop run until `n` tasks wait for `key`."""
    for _ in range(1000):
        if turns.waiting(key) >= n:
            return
        await asyncio.sleep(0)
    raise AssertionError(f"{turns.waiting(key)} waiters, expected {n}")


async def test_turns_come_in_order_and_leave_nothing_behind() -> None:
    registry: dict[str, object] = {}
    turns = KeyTurns(registry)
    first = await turns.take("k", within=10)
    order: list[int] = []

    async def take(k: int) -> None:
        turn = await turns.take("k", within=10)
        order.append(k)
        turn.end()

    tasks = []
    for k in range(5):
        tasks.append(asyncio.create_task(take(k)))
        await queued(turns, "k", k + 1)
    other = await turns.take("other key", within=0)  # keys do not wait for each other
    other.end()
    first.end()
    first.end()  # idempotent: hands over once
    await asyncio.wait_for(asyncio.gather(*tasks), 10)
    assert order == [0, 1, 2, 3, 4]
    assert registry == {}


async def test_a_waiter_that_times_out_leaves_the_queue() -> None:
    turns = KeyTurns()
    holder = await turns.take("k", within=10)
    with pytest.raises(TimeoutError):
        await turns.take("k", within=0.01)
    assert turns.waiting("k") == 0
    holder.end()
    (await turns.take("k", within=0)).end()


async def test_a_turn_handed_to_a_cancelled_waiter_goes_to_the_next() -> None:
    turns = KeyTurns()
    holder = await turns.take("k", within=10)
    got: list[Turn] = []

    async def take() -> None:
        got.append(await turns.take("k", within=10))

    doomed = asyncio.create_task(take())
    await queued(turns, "k", 1)
    patient = asyncio.create_task(take())
    await queued(turns, "k", 2)
    holder.end()  # hands the turn to `doomed`, which has not run since ...
    doomed.cancel()  # ... and is cancelled before it could
    with pytest.raises(asyncio.CancelledError):
        await doomed
    await asyncio.wait_for(patient, 10)
    assert len(got) == 1 and got[0].active
    got[0].end()
    assert turns.waiting("k") == 0


async def test_a_forgotten_turn_ends_by_itself_after_its_hold_time() -> None:
    turns = KeyTurns()
    forgotten = await turns.take("k", within=10, hold=0.0)  # a holder that never ends it
    nxt = await asyncio.wait_for(turns.take("k", within=10), 10)
    assert not forgotten.active and nxt.active
    nxt.extend(0.0)
    await asyncio.wait_for(turns.take("k", within=10), 10)


async def test_a_failed_turn_fails_its_waiters_at_once_and_later_tasks_try_afresh() -> None:
    turns = KeyTurns()
    holder = await turns.take("k", within=10)
    waiters = [asyncio.create_task(turns.take("k", within=10)) for _ in range(3)]
    await queued(turns, "k", 3)
    holder.fail(ConnectionError("store down"))
    for waiter in waiters:
        with pytest.raises(ConnectionError, match="store down"):
            await asyncio.wait_for(waiter, 10)
    assert turns.waiting("k") == 0
    (await turns.take("k", within=0)).end()


async def test_a_turn_sets_its_timer_only_once_someone_waits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # An event-loop timer costs about 20k instructions to set and cancel: a turn that
    # nobody waits for (most of them) needs none; one with a waiter behind it does.
    loop = asyncio.get_running_loop()
    timers: list[object] = []  # the turns whose timer was set
    call_at = loop.call_at

    def counted(when: float, callback: Any, *args: object, **kwargs: object) -> Any:
        if getattr(callback, "__func__", None) is Turn.end:
            timers.append(callback.__self__)
        return call_at(when, callback, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(loop, "call_at", counted)
    turns = KeyTurns()
    for _ in range(3):
        turn = await turns.take("k", within=10, hold=30.0)
        turn.extend(60.0)
        turn.end()
    assert timers == []

    holder = await turns.take("k", within=10, hold=0.01)
    waiter = asyncio.create_task(turns.take("k", within=10))
    await queued(turns, "k", 1)
    assert timers == [holder]  # set when the waiter came: it ends the forgotten turn
    nxt = await asyncio.wait_for(waiter, 10)  # handed over by that timer
    assert not holder.active and nxt.active
    nxt.end()
    assert turns.waiting("k") == 0


async def test_a_turn_past_its_hold_time_with_nobody_waiting_is_taken_at_once() -> None:
    registry: dict[str, object] = {}
    turns = KeyTurns(registry)
    forgotten = await turns.take("k", within=10, hold=0.0)
    assert not forgotten.active  # its hold time is over, though nothing ended it yet
    nxt = await turns.take("k", within=0)  # no wait: within=0 would time out
    assert nxt.active
    forgotten.end()  # a late end of the old turn does not end the new one
    assert nxt.active
    nxt.end()
    assert registry == {}


async def test_a_forgotten_turn_whose_key_is_never_asked_again_leaves_no_entry() -> None:
    # Session keys are random: a turn forgotten on one (a third-party lock that misses
    # an `end`) may never be asked for again. Its hold time (0 here) is over.
    registry: dict[str, object] = {}
    turns = KeyTurns(registry)
    await turns.take("forgotten", within=10, hold=0.0)
    for _ in range(10):
        await asyncio.sleep(0)  # loop iterations, not time: a due timer runs in these
    (await turns.take("another key", within=0)).end()  # a new key looks at the oldest
    assert registry == {}
    kept = await turns.take("held", within=10, hold=60.0)  # within its hold time: kept
    (await turns.take("a third key", within=0)).end()
    assert list(registry) == ["held"] and kept.active
    kept.end()
