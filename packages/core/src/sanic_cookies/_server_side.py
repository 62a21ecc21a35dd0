"""`ServerSide`: a session stored under a key in a server-side store (`SessionSide`)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import msgspec

from ._backend import Backend, SessionLock, StoredSession, now
from ._config import SessionConfig
from ._errors import BackendError
from ._ids import is_session_id, log_id, new_session_id, store_key
from ._record import EMPTY_DATA, AuthInfo, SessionRecord, encode_record, encoded_size
from ._session_side import DataSizeCheck, Held, NewId, SessionSide, release_quietly
from ._store_call import StoreCaller, StoreCalls
from ._write_plan import REPLACE, WritePlan

__all__ = ["ServerSide"]

#: What a retired id holds until its delete: a record already past its deadline, so a
#: request that was waiting for the old id's lock finds no session there, never the data
#: from before the rotation (whose write would then be dropped after its 200).
_RETIRED = encode_record(SessionRecord(msgspec.Raw(EMPTY_DATA), 0.0, 0.0, 0.0))

logger = logging.getLogger("sanic_cookies")


class ServerSide(SessionSide):
    """Records under store keys; the cookie holds a random 256-bit id."""

    __slots__ = ("_check_data", "max_size")

    def __init__(
        self,
        backend: Backend,
        calls: StoreCalls,
        config: SessionConfig,
        cookie_key: str,
        check_data: DataSizeCheck,
    ) -> None:
        super().__init__(backend, calls, config, cookie_key)
        self._check_data = check_data
        self.max_size = config.max_size

    def sid_of(self, cookie_value: str | None) -> str | None:
        return cookie_value if is_session_id(cookie_value) else None

    def load(self, sid: str, key: str, who: StoreCaller) -> Awaitable[StoredSession | None]:
        return self.calls.call("load", self.backend.load(key), who)

    def load_now(self, sid: str, key: str, who: StoreCaller) -> StoredSession | None:
        load_now = self.backend.load_now
        return self.calls.call_now("load", lambda: load_now(key), who)  # type: ignore[no-any-return]

    def acquire(
        self, lock: SessionLock, sid: str, who: StoreCaller
    ) -> Awaitable[StoredSession | None]:
        return self.calls.call("lock", lock.acquire(), who)

    def check_size(self, data: bytes, auth: AuthInfo | None) -> None:
        limit = self.max_size
        if limit is not None and len(data) + (0 if auth is None else encoded_size(auth)) > limit:
            self._check_data(len(data) + encoded_size(auth))  # raises, naming the setting

    def store(
        self, plan: WritePlan, value: bytes, ttl: float, held: Held, who: StoreCaller
    ) -> Awaitable[NewId | bool]:
        if plan is not REPLACE:
            return self._new_id(value, ttl, held, who)
        # The same id: a fenced replace, which fails if a logout ended the session
        # (the store call itself, awaited by the caller: no coroutine of our own).
        lock = held.lock
        if lock is not None:
            write = lock.save_and_release(value, ttl, user_id=held.user_id, replace_only=True)
        else:
            assert held.key is not None
            write = self.backend.save(held.key, value, ttl, user_id=held.user_id, replace_only=True)
        return self.calls.call("save", write, who)

    async def _new_id(self, value: bytes, ttl: float, held: Held, who: StoreCaller) -> NewId | bool:
        """A new session or a rotation: save under a new id, then end the old one."""
        sid = new_session_id()
        key = store_key(sid)
        await self.calls.call("save", self.backend.save(key, value, ttl, user_id=held.user_id), who)
        if held.stored is None:
            logger.debug("session %s: created", log_id(key))
            if held.lock is not None:  # of a cookie whose session was gone
                await release_quietly(held.lock, self.backend.label, who)
            return sid, key
        assert held.key is not None
        logger.debug("session %s: new id (was %s)", log_id(key), log_id(held.key))
        return (sid, key) if await self._retire_old_id(key, held, who) else False

    async def _retire_old_id(self, new_key: str, held: Held, who: StoreCaller) -> bool:
        """End the old id after a rotation wrote the session under `new_key`.

        The old record must still exist at this point: a "log out everywhere" that
        deleted it while this request held the session would otherwise live on under
        the new id. So the old record is first rewritten with `replace_only` (which
        fails if it is gone), only then deleted; if it was gone, the new one goes too.
        The rewrite releases the lock and holds an expired record (`_RETIRED`): what a
        request queued on the old id then reads, before the delete, is no session.

        Returns:
            False if the session had been ended concurrently (it is ended here too).
        """
        stored, lock = held.stored, held.lock
        assert stored is not None and held.key is not None
        grace = max(1.0, min(10.0, stored.expires_at - now()))  # if the delete fails
        backend = self.backend
        try:
            if lock is not None:
                write = lock.save_and_release(
                    _RETIRED, grace, user_id=held.old_user, replace_only=True
                )
            else:
                write = backend.save(
                    held.key, _RETIRED, grace, user_id=held.old_user, replace_only=True
                )
            alive = await self.calls.call("save", write, who)
        except BaseException:
            await self._drop_quietly(new_key)
            raise
        if not alive:  # the new record goes too (the caller logs the dropped write)
            await self.calls.call("delete", backend.delete(new_key), who)
            return False
        await self.calls.call("delete", backend.delete(held.key), who)
        return True

    async def _drop_quietly(self, key: str) -> None:
        """Best-effort delete of a record no cookie will ever point at."""
        try:
            await self.backend.delete(key)
        except Exception as exc:
            logger.warning(
                "session %s: could not remove an unused record (%s); it expires with its TTL",
                log_id(key),
                type(exc).__name__,
            )

    def end(self, held: Held, who: StoreCaller) -> Awaitable[None]:
        if held.lock is not None:
            return self.calls.call("delete", held.lock.delete_and_release(), who)
        assert held.key is not None
        return self.calls.call("delete", self.backend.delete(held.key), who)

    async def refresh(
        self, key: str, ttl: float, rewrite: Callable[[], Awaitable[None]], who: StoreCaller
    ) -> bool:
        # Read-only use: extend the TTL without rewriting data someone may be changing.
        # A failure is logged, not raised: the request already read its data, the
        # session stays valid until its current expiry, and the next request retries.
        try:
            return bool(await self.calls.call("touch", self.backend.touch(key, ttl), who))
        except BackendError:
            return False
