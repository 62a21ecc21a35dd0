"""`ClientSide`: a session kept in the cookie itself (`ClientSideBackend`, `SessionSide`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from ._backend import ClientSideBackend, SessionLock, StoredSession, now
from ._config import SessionConfig
from ._record import AuthInfo
from ._session_side import (
    CookieSizeCheck,
    Held,
    NewId,
    SessionSide,
    cookie_max_age,
    release_quietly,
)
from ._store_call import StoreCaller, StoreCalls
from ._write_plan import ROTATE, WritePlan

__all__ = ["ClientSide"]


class ClientSide(SessionSide):
    """Records in the cookie: every write is a new token (`ClientSideBackend`)."""

    __slots__ = ("_check_cookie", "client")
    new_cookie_per_write = True

    def __init__(
        self,
        backend: ClientSideBackend,
        calls: StoreCalls,
        config: SessionConfig,
        cookie_key: str,
        check_cookie: CookieSizeCheck,
    ) -> None:
        super().__init__(backend, calls, config, cookie_key)
        self.client = backend
        self._check_cookie = check_cookie

    def check_size(self, data: bytes, auth: AuthInfo | None) -> None:
        """No limit here: the cookie's own, checked on the whole ``Set-Cookie`` value."""

    def sid_of(self, cookie_value: str | None) -> str | None:
        # Tokens are ASCII; anything else (undecodable bytes arrive as lone
        # surrogates, which cannot even be hashed) is no cookie at all.
        return cookie_value if cookie_value and cookie_value.isascii() else None

    def load(self, sid: str, key: str, who: StoreCaller) -> Awaitable[StoredSession | None]:
        return self.calls.call("load", self.client.decode_cookie(sid), who)

    def load_now(self, sid: str, key: str, who: StoreCaller) -> StoredSession | None:
        decode_now = self.client.decode_cookie_now
        return self.calls.call_now("load", lambda: decode_now(sid), who)  # type: ignore[no-any-return]

    async def acquire(self, lock: SessionLock, sid: str, who: StoreCaller) -> StoredSession | None:
        await self.calls.call("lock", lock.acquire(), who)  # in-process exclusion only
        return await self.calls.call("load", self.client.decode_cookie(sid), who)  # type: ignore[no-any-return]

    async def store(
        self, plan: WritePlan, value: bytes, ttl: float, held: Held, who: StoreCaller
    ) -> NewId:
        """The record becomes the cookie (a new token)."""
        client = self.client
        old = held.sid if held.stored is not None else None
        # The same session continues from `old` unless its id rotates (login):
        # the backend can then revoke every token of the session at logout.
        rotate = plan is ROTATE
        previous = None if rotate else old
        token: str = await self.calls.call(
            "save", client.encode_cookie(value, ttl, previous=previous, deadline=held.deadline), who
        )
        # The whole Set-Cookie value, attributes included, must fit what browsers keep
        # (they drop a larger cookie without a word).
        max_age = cookie_max_age(ttl) if held.persistent else None  # as the response sends it
        self._check_cookie(token, max_age, client.max_cookie_size)
        if old is not None and rotate:
            await self.calls.call("revoke", client.revoke_cookie(old, _expiry(held)), who)
        if held.lock is not None:  # in-process exclusion only: nothing was spent
            await release_quietly(held.lock, self.backend.label, who)
        # No store key: nothing is stored under it, and the request that wrote a token
        # seldom locks it again (the session hashes it if it does).
        return token, None

    async def end(self, held: Held, who: StoreCaller) -> None:
        assert held.sid is not None
        await self.calls.call("revoke", self.client.revoke_cookie(held.sid, _expiry(held)), who)
        if held.lock is not None:  # in-process exclusion only: nothing was spent
            await release_quietly(held.lock, self.backend.label, who)

    async def refresh(
        self, key: str, ttl: float, rewrite: Callable[[], Awaitable[None]], who: StoreCaller
    ) -> bool:
        # A cookie's expiry is inside it: refreshing means issuing a new one.
        await rewrite()
        return False


def _expiry(held: Held) -> float:
    return held.stored.expires_at if held.stored is not None else now()
