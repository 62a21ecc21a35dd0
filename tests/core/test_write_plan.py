"""The write decision as a pure function: every rule of `plan_write` on its own."""

from __future__ import annotations

import pytest

from sanic_cookies._write_plan import (
    CREATE,
    END,
    KEEP,
    REPLACE,
    RESTART,
    RESTART_EMPTY,
    ROTATE,
    WritePlan,
    WriteState,
    plan_write,
)

BASE = WriteState(
    data_changed=False,
    data_empty=False,
    logged_in=False,
    exists=True,
    destroyed=False,
    rotate=False,
    meta_changed=False,
    refresh_due=False,
    ttl_left=100.0,
)


def state(**changes: object) -> WriteState:
    return BASE._replace(**changes)


@pytest.mark.parametrize(
    ("changes", "plan"),
    [
        ({}, KEEP),  # a returning visitor that changed nothing
        ({"data_changed": True}, REPLACE),  # read-modify-write: same id, fenced
        ({"refresh_due": True}, REPLACE),  # sliding expiry due
        ({"exists": False, "refresh_due": True}, KEEP),  # nothing stored: nothing to refresh
        ({"exists": False, "data_changed": True}, CREATE),  # a new visitor
        ({"rotate": True}, ROTATE),  # login: a new id for a stored session
        ({"rotate": True, "exists": False}, CREATE),  # login on a new session
        ({"meta_changed": True}, REPLACE),  # timeouts or login changed
        ({"data_changed": True, "ttl_left": 0.0}, END),  # past its absolute lifetime
        ({"data_empty": True, "data_changed": True}, END),  # emptied: ended, not stored
        ({"data_empty": True, "exists": False}, KEEP),  # empty and new: no cookie at all
        ({"data_empty": True, "exists": False, "rotate": True}, END),
        ({"data_empty": True, "logged_in": True, "meta_changed": True}, REPLACE),
        ({"destroyed": True, "data_empty": True}, END),  # logout
        ({"destroyed": True, "data_changed": True}, RESTART),  # logout + a new message
        ({"destroyed": True, "exists": False, "data_changed": True}, RESTART),
        ({"destroyed": True, "data_empty": True, "logged_in": True}, RESTART_EMPTY),
    ],
)
def test_plan(changes: dict[str, object], plan: WritePlan) -> None:
    assert plan_write(state(**changes), 100.0) is plan


def test_a_restart_with_no_time_for_the_new_session_ends_it() -> None:
    assert plan_write(state(destroyed=True, data_changed=True), 0.0) is END


def test_plans_say_what_they_do() -> None:
    assert (RESTART.end, RESTART.restart, RESTART.store, RESTART.new_id) == (True,) * 4
    assert not (KEEP.end or KEEP.store)
    assert END.end and not END.store and not END.restart
    assert CREATE.new_id and ROTATE.new_id and not REPLACE.new_id
