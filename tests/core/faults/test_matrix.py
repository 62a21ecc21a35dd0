"""The fault matrix: every backend operation fails once, through a real Sanic app.

Each case builds an app on one configuration (a single store, or a primary
plus a secondary, with the fault in one of them), makes a session, injects one
fault into one operation, sends the request that reaches that operation, and
then checks the promises:

* the client sees 503 when the primary (or only) store failed, and the normal
  answer when only a secondary did (reads never reach a secondary at all) or
  when the failed call was best effort (`BEST_EFFORT`: logged and counted);
* a faulted response never deletes the client's cookie (nor sets one);
* no stored session is deleted or altered except by a write that succeeded:
  a fault raised before the store call leaves that store as it was, one
  raised after it leaves what the call did, and the other store holds either
  the old state or the request's intended one;
* no lock is left held: the next locked request on the session gets its
  answer (a lock left held would time out after a second: 503);
* the next write works normally and every store holds it (secondaries catch up);
* the failure is counted for the right backend.

Configurations with Redis or PostgreSQL need their distributions and servers
(see conftest.py).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from fault_harness import Rig, build_rig, deletes_cookie, key_of, next_cookie, session_cookie_of

from sanic_cookies.clock import ManualClock, now
from sanic_cookies.testing import wait_until

WRITE, DELETE, NONE = "write", "delete", "none"

#: Operations whose failure the core logs without failing the request: the
#: request's own work is done (a lost release answer; a sliding-expiry touch
#: after a successful read, retried by the next request).
BEST_EFFORT = {"release", "touch"}


@dataclasses.dataclass(frozen=True)
class Scenario:
    """The request that reaches one operation, and what it does when nothing fails."""

    op: str
    path: str
    effect: str  # what the request does to the session: write n=2, delete it, or nothing
    login: bool = False  # the session belongs to a logged-in user (index operations)
    refresh: bool = False  # sliding expiry due on every request (to reach touch)
    new: bool = False  # the request carries no cookie: it creates a session

    @property
    def reaches_secondaries(self) -> bool:
        """Writes, touches and deletes go to every store; reads and lock calls to the primary."""
        return self.op in {
            "save",
            "touch",
            "delete",
            "save_and_release",
            "delete_and_release",
            "delete_user_sessions",
        }

    def op_in(self, store_index: int) -> str:
        """The operation to fault in that store: a secondary holds no lock, so a locked
        write or delete reaches it as a plain save or delete."""
        if store_index == 0:
            return self.op
        return {"save_and_release": "save", "delete_and_release": "delete"}.get(self.op, self.op)

    def op_effect(self) -> str:
        """What the faulted store holds when the operation completed and then raised."""
        if self.op in ("save", "save_and_release"):
            return WRITE
        if self.op in ("delete", "delete_and_release", "delete_user_sessions"):
            return DELETE
        return NONE


SCENARIOS = {
    "load": Scenario("load", "/peek", NONE),
    "save": Scenario("save", "/uset?n=2", WRITE),
    "save:new": Scenario("save", "/set?n=2", WRITE, new=True),
    "touch": Scenario("touch", "/peek", NONE, refresh=True),
    "delete": Scenario("delete", "/udestroy", DELETE),
    "acquire": Scenario("acquire", "/get", NONE),
    "save_and_release": Scenario("save_and_release", "/set?n=2", WRITE),
    "delete_and_release": Scenario("delete_and_release", "/destroy", DELETE),
    "release": Scenario("release", "/get", NONE),
    "extend": Scenario("extend", "/extend?n=2", WRITE),
    "list_user_sessions": Scenario("list_user_sessions", "/list", NONE, login=True),
    "delete_user_sessions": Scenario("delete_user_sessions", "/logout-all", DELETE, login=True),
}


def _modes(name: str) -> list[str]:
    op = SCENARIOS[name].op
    if op in ("load", "list_user_sessions"):
        return ["before"]  # a read that completed and then failed is the same case
    if op == "release":
        # A release that never reached the store leaves the lock to its lease (a
        # separate test); one whose answer was lost must leave nothing held.
        return ["after"]
    return ["before", "after"]


#: (id, store kinds with the primary first, index of the faulted store)
CONFIGS = [
    ("memory", ("memory",), 0),
    ("memory+memory/primary", ("memory", "memory"), 0),
    ("memory+memory/secondary", ("memory", "memory"), 1),
    ("memory+redis/primary", ("memory", "redis"), 0),
    ("memory+redis/secondary", ("memory", "redis"), 1),
    ("memory+postgres/primary", ("memory", "postgres"), 0),
    ("memory+postgres/secondary", ("memory", "postgres"), 1),
    ("redis", ("redis",), 0),
    ("postgres", ("postgres",), 0),
]

CASES = [
    pytest.param(config, name, mode, id=f"{config[0]}-{name}-{mode}")
    for config in CONFIGS
    for name in SCENARIOS
    for mode in _modes(name)
]


def _after(effect: str, before: dict[str, Any] | None, written: dict[str, Any]) -> Any:
    return {WRITE: written, DELETE: None, NONE: before}[effect]


async def _setup(rig: Rig, scenario: Scenario) -> str:
    """A stored session with n=1 (logged in as the index user if needed); its Cookie header."""
    response = await rig.request("/set?n=1")
    assert response.status == 200, response.text
    cookie = next_cookie(response, None)
    if scenario.login:
        response = await rig.request("/login", cookie)
        assert response.status == 200, response.text
        cookie = next_cookie(response, cookie)
        response = await rig.request("/set?n=1", cookie)
        assert response.status == 200, response.text
    assert cookie is not None
    return cookie


async def _refresh_due(rig: Rig, key: str | None, manual_clock: ManualClock) -> None:
    """Let the sliding expiry come due (the rig refreshes after 1 ms), without a sleep.

    On the library's clock that is a move of the clock. A server's TTL (the Redis or
    PostgreSQL primary) runs in real time: wait, boundedly, until it shows 2 ms gone.
    """
    assert key is not None
    primary = rig.readers[0]
    stored = await primary.load(key)
    assert stored is not None
    left = stored.expires_at - now()
    manual_clock.advance(0.01)

    async def due() -> bool:
        again = await primary.load(key)
        return again is not None and again.expires_at - now() <= left - 0.002

    assert await wait_until(due, 30)


@pytest.mark.parametrize(("config", "name", "mode"), CASES)
async def test_fault(
    config: Any, name: str, mode: str, stores: Any, tag: str, manual_clock: ManualClock
) -> None:
    _, kinds, faulty_index = config
    scenario = SCENARIOS[name]
    built = [await stores(kind, f"{tag}{i}") for i, kind in enumerate(kinds)]
    rig = build_rig(
        [b for b, _ in built],
        [r for _, r in built],
        faulty_index=faulty_index,
        refresh_interval=0.001 if scenario.refresh else None,
    )
    primary_faulted = faulty_index == 0
    cookie = await _setup(rig, scenario)
    key = key_of(cookie)
    before = {"n": "1"}
    assert await rig.states(key) == [before] * len(kinds), "every store holds the session"
    if scenario.refresh:
        await _refresh_due(rig, key, manual_clock)
    faulted_label = rig.labels[faulty_index]
    failures_before = rig.auth.metrics[faulted_label].failures

    # -- the fault -------------------------------------------------------------
    op = scenario.op_in(faulty_index)
    fault = rig.faulty.fail(op, times=1, when=mode)
    response = await rig.request(scenario.path, None if scenario.new else cookie)
    fault.disarm()

    if not primary_faulted and not scenario.reaches_secondaries:
        assert fault.fired == 0, f"{op} reached a secondary: reads go to the primary only"
    else:
        assert fault.fired == 1, f"the request never reached {op}"
    fired = fault.fired == 1

    if primary_faulted and scenario.op not in BEST_EFFORT:
        assert response.status == 503, response.text
        assert session_cookie_of(response) is None, "a failed request must leave the cookie alone"
    else:
        # A secondary's failure (or a best-effort call's) changes nothing for the client.
        assert response.status == 200, response.text
    assert not (primary_faulted and deletes_cookie(response))

    # -- what the stores hold --------------------------------------------------
    if scenario.new:
        # The existing session was not part of the request: nothing may touch it.
        assert await rig.states(key) == [before] * len(kinds)
        new_cookie = next_cookie(response, None)
        if primary_faulted:
            assert new_cookie is None
        else:
            assert new_cookie is not None
            states = await rig.states(key_of(new_cookie))
            assert states[0] == {"n": "2"}
            assert states[1] == ({"n": "2"} if mode == "after" else None)
    else:
        states = await rig.states(key)
        succeeded = not primary_faulted or scenario.op in BEST_EFFORT
        intended = _after(scenario.effect, before, {"n": "2"})
        for i, state in enumerate(states):
            if i == faulty_index and fired:
                # The faulted store: untouched by a fault before the call, or
                # holding exactly what the call did before its answer was lost.
                done = _after(scenario.op_effect(), before, {"n": "2"})
                expected = before if mode == "before" else done
                assert state == expected, f"store {i} ({rig.labels[i]}) holds {state}"
            elif succeeded:
                assert state == intended, f"store {i} ({rig.labels[i]}) holds {state}"
            else:
                # Another store while the primary failed: the old state, or the
                # write it received alongside the primary's failing one.
                assert state in (before, intended), f"store {i} ({rig.labels[i]}) holds {state}"

    # -- the failure is counted for the faulted store ------------------------------
    counted = rig.auth.metrics[faulted_label].failures - failures_before
    if fired and scenario.op != "release":
        assert counted == 1, f"{faulted_label} counted {counted} failures"
    elif not fired:
        assert counted == 0

    # -- no lock left held; the session reads as the primary holds it ----------------
    current = None if scenario.new else next_cookie(response, cookie)
    response = await rig.request("/get", current)
    assert response.status == 200, f"lock left held? {response.status} {response.text}"
    primary_state = (await rig.states(key))[0]
    if current is not None and current == cookie:
        assert response.json == (primary_state or {})

    # -- the next write works, and every store has it ------------------------------
    current = next_cookie(response, current)
    response = await rig.request("/set?n=3", current)
    assert response.status == 200, response.text
    current = next_cookie(response, current)
    assert current is not None
    assert await rig.states(key_of(current)) == [{"n": "3"}] * len(kinds)
    if key_of(current) != key and not scenario.new:
        # The old session ended in the primary: no copy of it may linger, except
        # where a secondary missed a logout-everywhere (not replayed; it expires).
        leftovers = await rig.states(key)
        assert leftovers[0] is None
        missed_index_delete = (
            scenario.op == "delete_user_sessions" and not primary_faulted and mode == "before"
        )
        if not missed_index_delete:
            assert leftovers == [None] * len(kinds), f"old session left in {leftovers}"
