"""The one decision of a session's write: what to do with the store and the cookie.

`plan_write` is a pure function from the session's state (`WriteState`) to one of a
few named plans (`WritePlan`); `SessionDict` carries the plan out. Every rule of
when a session is kept, stored, given a new id or ended lives here.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

__all__ = [
    "CREATE",
    "END",
    "KEEP",
    "REPLACE",
    "RESTART",
    "RESTART_EMPTY",
    "ROTATE",
    "WritePlan",
    "WriteState",
    "plan_write",
    "write_state",
]


class WriteState(NamedTuple):
    """What `plan_write` decides on (a snapshot; no I/O, no clock)."""

    data_changed: bool  # the encoded data differs from what was loaded or last written
    data_empty: bool  # the data is empty
    logged_in: bool  # a login is recorded
    exists: bool  # the store held this session when it was loaded
    destroyed: bool  # destroy() was called
    rotate: bool  # regenerate() was called (login)
    meta_changed: bool  # login or timeouts changed
    refresh_due: bool  # the sliding expiry is due (needed only when nothing else changed)
    ttl_left: float  # seconds the stored session would live if written now


#: ``write_state((data_changed, ..., ttl_left))``: a `WriteState` from its fields in order,
#: made by the tuple constructor itself (a NamedTuple's ``__new__`` parses keywords in
#: Python, and a state is made on every write).
write_state: Callable[[tuple[Any, ...]], WriteState] = partial(tuple.__new__, WriteState)


class WritePlan(NamedTuple):
    """What to do: end the stored session first, then store (under which id), or not."""

    name: str
    end: bool  # delete what is stored (and, unless `restart`, expire the cookie)
    restart: bool  # after ending: a fresh session holding the data (destroy() then new data)
    store: bool  # write a record
    new_id: bool  # under a new id (a new session, or a rotation); else the same id, fenced


KEEP = WritePlan("keep", end=False, restart=False, store=False, new_id=False)
END = WritePlan("end", end=True, restart=False, store=False, new_id=False)
RESTART = WritePlan("restart", end=True, restart=True, store=True, new_id=True)
RESTART_EMPTY = WritePlan("restart-empty", end=True, restart=True, store=False, new_id=False)
CREATE = WritePlan("create", end=False, restart=False, store=True, new_id=True)
ROTATE = WritePlan("rotate", end=False, restart=False, store=True, new_id=True)
REPLACE = WritePlan("replace", end=False, restart=False, store=True, new_id=False)


def plan_write(state: WriteState, fresh_ttl: float) -> WritePlan:
    """The plan for a session in `state` (`fresh_ttl`: what a new session would live).

    An empty session (no data, no login) is never stored: one that was stored, rotated
    or destroyed is ended. destroy() followed by new data ends the old session and
    starts a new one holding only the new data. An unchanged session is written only
    when its sliding expiry is due; one with no time left is ended.
    """
    if state.data_empty and not state.logged_in:
        return END if state.destroyed or state.exists or state.rotate else KEEP
    if state.destroyed:
        return _plan_restart(state, fresh_ttl)
    return _plan_store(state)


def _plan_store(state: WriteState) -> WritePlan:
    """A session with data or a login, not destroyed: write it if it changed or is due."""
    changed = state.data_changed or state.meta_changed or state.rotate
    if not (changed or (state.exists and state.refresh_due)):
        return KEEP
    if state.ttl_left <= 0:
        return END
    if not state.exists:
        return CREATE
    return ROTATE if state.rotate else REPLACE


def _plan_restart(state: WriteState, fresh_ttl: float) -> WritePlan:
    """destroy() followed by new data or a login: end the old session, start a new one."""
    if fresh_ttl <= 0:
        return END
    # The fresh session starts from nothing: its data changed unless it is empty.
    changed = not state.data_empty or state.meta_changed or state.rotate
    return RESTART if changed else RESTART_EMPTY
