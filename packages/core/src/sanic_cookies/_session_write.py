"""Writing a session: plan (`plan_write`), then carry the plan out through its side.

`SessionWrites` is the part of `SessionDict` that writes: at the end of ``async with``
(`_write`) and, for changes made without the lock, once the handler returned
(`finish`); then `cookie_update` says what the response must do with the cookie.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable

import msgspec

from ._backend import now
from ._record import EMPTY_DATA, SessionRecord, encode_data, encode_record
from ._session_side import (
    Held,
    NewId,
    SessionSide,
    cookie_max_age,
    held,
    release_quietly,
    stored_session,
)
from ._session_state import (
    DELETE_COOKIE,
    EXPIRE_COOKIE,
    SET_COOKIE,
    CookieUpdate,
    SessionState,
)
from ._write_plan import KEEP, REPLACE, WritePlan, WriteState, plan_write, write_state

__all__ = ["SessionWrites"]

logger = logging.getLogger("sanic_cookies")


class SessionWrites(SessionState):
    """Writes what changed, and tells the response what to do with the cookie."""

    def _held(self) -> Held:
        """What the store holds for this session: the arguments of a store call."""
        record, auth = self._record, self._auth
        return held(
            (
                self._sid,
                self._key,
                self._stored,
                None if record is None or record.auth is None else record.auth.user_id,
                None if auth is None else auth.user_id,
                self._lock,
                self._deadline,
                self._persistent,
            )
        )

    async def _write(self) -> None:
        """Write what changed, through the held lock if there is one: plan, then carry out."""
        if self._data is None:
            return
        side = self._side
        assert side is not None
        data = encode_data(self._data)  # before any I/O: a bad value writes nothing
        side.check_size(data, self._auth)  # and neither does too much of it
        t = now()
        plan = plan_write(self._write_state(data, t), side.fresh_ttl)
        if plan is KEEP:
            return
        if plan.end:
            await self._end(send_cookie=not plan.restart)
            if plan.restart:
                self._restart()
                t = now()
        if plan.store:
            ttl, slide = self._store_ttl(plan, side, t)
            record = SessionRecord(
                msgspec.Raw(data),
                self._created,
                self._deadline,
                self._ttl,
                self._persistent,
                self._auth,
            )
            value = encode_record(record)
            outcome = await side.store(plan, value, ttl, self._held(), self)
            self._stored_as(outcome, record, value, data, t + ttl)
            if slide and outcome is not False:
                self._cookie_action = SET_COOKIE

    def _stored_as(
        self,
        outcome: NewId | bool,
        record: SessionRecord,
        value: bytes,
        data: bytes,
        expires: float,
    ) -> None:
        """Take the outcome of `SessionSide.store`: a new cookie value, the same id, or ended."""
        self._lock = None  # spent or released by the side
        if outcome is False:
            logger.info("session %s: ended concurrently; write dropped", self._log_id)
            self._forget_all()  # and stays ended
            return
        if outcome is not True:
            self._sid, self._key = outcome
            self._new_cookie_value = self._sid
        self._stored = stored_session((value, expires))
        self._wrote = True
        self._record = record
        self._orig = data
        self._rotate = self._meta_changed = False
        if self._mismatch:  # (a read, not a store, on every other write)
            self._mismatch = False  # the record now matches

    def _write_state(self, data: bytes, t: float) -> WriteState:
        changed = data != self._orig
        exists = self._stored is not None
        # A typed record that did not match its schema, which this request did not
        # change: never ended as empty nor rewritten by a refresh (its data would be lost
        # to the defaults). Its sliding expiry is left to `finish`, which extends it
        # without a rewrite where the store can (`SessionSide.refresh`).
        kept = self._mismatch and not changed
        # Sliding expiry matters only to a session that nothing else makes write.
        due = (
            exists and not (changed or self._meta_changed or self._rotate) and self._refresh_due(t)
        )
        return write_state(
            (
                changed,
                data == EMPTY_DATA and not kept,
                self._auth is not None,
                exists,
                self._destroyed,
                self._rotate,
                self._meta_changed,
                due and not kept,
                min(self._ttl, self._deadline - t),
            )
        )

    def _store_ttl(self, plan: WritePlan, side: SessionSide, t: float) -> tuple[float, bool]:
        """The TTL to store the record with at `t`, and whether the cookie must be sent again.

        A rewrite under the same id keeps the expiry the client's cookie already has (the
        stored one) unless that is due for its sliding refresh, as an unchanged session
        is: then no ``Set-Cookie`` goes out. The store's expiry and the cookie's stay
        together; both move at most every `refresh_after` seconds.
        """
        ttl = min(self._ttl, self._deadline - t)
        stored = self._stored
        if plan is REPLACE and stored is not None and stored.expires_at > t:
            left = stored.expires_at - t
            if self._cookie_final:
                # No cookie can follow (websocket; a streamed response already sent): the
                # store must not outlive the browser's cookie, nor keep the next HTTP write,
                # then not due, from renewing it.
                return left, False
            unchanged_cookie = not (side.new_cookie_per_write or self._meta_changed)
            if unchanged_cookie and 0 <= ttl - left < side.refresh_after:
                return left, False
        # A new id or token, a changed login (its cookie may stop being persistent), or
        # the refresh due, a shorter idle timeout or the stored expiry passed.
        return ttl, True

    def _refresh_due(self, t: float) -> bool:
        """Sliding expiry: due once a refresh would push the expiry out by `refresh_interval`.

        Measured on expiry times rather than write times so that a session capped by its
        absolute lifetime (nothing left to extend) is never refreshed, even on a store
        that rounds TTLs.
        """
        stored, side = self._stored, self._side
        if stored is None or side is None:
            return False
        gain = t + min(self._ttl, self._deadline - t) - stored.expires_at
        return gain > 0 and gain >= side.refresh_after

    def _restart(self) -> None:
        """destroy() then new data (a "logged out" message, say): a new session holding it."""
        kept = self._data
        self._mismatch = False  # a new session: nothing stored to keep
        self._adopt(None)
        self._data = kept
        self._sid = self._key = None
        self._destroyed = False

    async def _end(self, *, send_cookie: bool = True) -> None:
        """End the stored session (if any); `send_cookie`: and expire the client's cookie."""
        if self._stored is not None:
            side = self._side
            assert side is not None
            await side.end(self._held(), self)
            self._lock = None  # spent or released by the side
            logger.debug("session %s: deleted", self._log_id)
        if send_cookie:
            self._forget_all()

    def finish(self, failed: bool = False) -> Awaitable[None] | None:
        """What is left to do once the handler returned: give the lock back, write unlocked changes.

        Called by `Session`'s response middleware (when `in_use`), then `cookie_update`.

        Args:
            failed: The response is a server error (5xx): unlocked changes are dropped,
                as an exception inside `async with` drops the block's changes.

        Returns:
            An awaitable for the work left, or None when there is none (most requests:
            no coroutine is made for them).
        """
        # Inside `async with` (a streaming handler responded from the block), the block
        # keeps its lock until it exits: releasing here would let a concurrent request
        # in, and the block's write would then overwrite that request's update. After a
        # failed store call, write nothing more (the client keeps its cookie and may
        # retry); a cookie change from an earlier successful write still goes out.
        if self._in_block:
            self._cookie_final = True  # the block writes after the response went out
            return None
        if self._lock is not None:
            return self._release_then_finish(failed)
        if self._data is None or self._failed or failed:
            return None
        return self._unlocked_work()

    async def _release_then_finish(self, failed: bool) -> None:
        await self._release()
        work = self.finish(failed)
        if work is not None:
            await work

    def cookie_update(self) -> CookieUpdate | None:
        """What the response must do with the cookie (after `finish`); None: nothing."""
        action = self._cookie_action
        if action == SET_COOKIE:
            max_age = None
            if self._persistent:
                # Until the stored session's expiry (as written or touched, not counted anew
                # from the response).
                stored = self._stored
                left = (
                    stored.expires_at - now()
                    if stored is not None
                    else min(self._ttl, self._deadline - now())
                )
                max_age = cookie_max_age(left)
            value = self._new_cookie_value or self._sid
            return None if value is None else CookieUpdate(value, max_age)
        return EXPIRE_COOKIE if action == DELETE_COOKIE else None

    def _unlocked_work(self) -> Awaitable[None] | None:
        """Write what changed without the lock, or slide the expiry; None: neither (most)."""
        assert self._data is not None and self._side is not None
        if encode_data(self._data) != self._orig or (
            self._meta_changed or self._rotate or self._destroyed
        ):
            return self._write()
        # (Not after a write of this request's: that one slid the expiry or found it not due.)
        if self._stored is not None and not self._wrote and self._refresh_due(now()):
            return self._refresh_unlocked(self._side)
        return None

    async def _refresh_unlocked(self, side: SessionSide) -> None:
        """Sliding expiry of a session used without the lock and not changed."""
        t = now()
        ttl = min(self._ttl, self._deadline - t)
        stored = self._stored
        if (
            ttl > 0
            and self._sid is not None
            and await side.refresh(self._sid_key(), ttl, self._write, self)
        ):
            if stored is not None and self._stored is stored:  # (not rewritten instead)
                self._stored = stored_session((stored.value, t + ttl))
            self._cookie_action = SET_COOKIE

    async def _release(self) -> None:
        """Give the held lock back (a failure is logged: the lease frees it)."""
        lock, self._lock = self._lock, None
        if lock is not None and self._side is not None:
            await release_quietly(lock, self._side.backend.label, self)
