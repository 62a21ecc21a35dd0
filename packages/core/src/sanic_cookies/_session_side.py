"""`SessionSide`: where a session's records live, chosen once when the session opens.

A server-side backend keeps records under keys (the cookie holds a random id); a
client-side one keeps the record in the cookie itself (`ClientSideBackend`). Every
difference between the two along a request's path is a method here, so the session
(`SessionDict`) never asks which kind it has: `open_side` picks the class once, with
the backend and the settings the requests share worked out ahead.

Each method takes what it needs as arguments and returns what changed; store calls go
through the session's `StoreCalls` (counted, observed, failures turned into a 503).
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, NamedTuple

from ._backend import Backend, ClientSideBackend, SessionLock, StoredSession, now
from ._config import SessionConfig
from ._errors import BackendError
from ._ids import is_session_id, log_id, new_session_id, store_key
from ._record import AuthInfo, encoded_size
from ._store_call import StoreCaller, StoreCalls
from ._write_plan import REPLACE, ROTATE, WritePlan

__all__ = ["ClientSide", "ServerSide", "SessionSide", "open_side"]

logger = logging.getLogger("sanic_cookies")

#: ``check(token, max_age, limit)``: raise `SessionTooLarge` for a ``Set-Cookie`` too large.
CookieSizeCheck = Callable[[str, "int | None", int], None]
#: A new cookie value (a session id or token) and its store key.
NewId = tuple[str, str]
#: ``check(size)``: raise `SessionTooLarge` for `size` bytes of data over ``max_size``.
DataSizeCheck = Callable[[int], None]


class SessionSide(ABC):
    """What every request of one session shares: backend, store calls, settings.

    Attributes:
        backend: The session's backend.
        calls: The `StoreCalls` every store call goes through.
        config: The settings this side was opened with.
        cookie_key: The cookie's name as the request carries it (``__Host-`` included).
        expiry: The idle timeout of a new session (seconds).
        lifetime: The absolute lifetime of a new session (seconds).
        fresh_ttl: What a new session would live: the lesser of the two.
        refresh_after: Seconds of expiry gained before an unchanged session is refreshed.
        persistent: Whether a new session's cookie carries Max-Age.
        loads_now: The backend loads without I/O (plain access loads on first use).
    """

    __slots__ = (
        "autoload",
        "backend",
        "calls",
        "config",
        "cookie_key",
        "expiry",
        "fresh_ttl",
        "lifetime",
        "loads_now",
        "lock_lease",
        "lock_timeout",
        "persistent",
        "refresh_after",
        "warn_lock",
    )

    def __init__(
        self, backend: Backend, calls: StoreCalls, config: SessionConfig, cookie_key: str
    ) -> None:
        self.backend = backend
        self.calls = calls
        self.config = config
        self.cookie_key = cookie_key
        self.expiry = config.expiry
        self.lifetime = config.lifetime
        self.fresh_ttl = min(config.expiry, config.lifetime)
        self.refresh_after = config.refresh_after
        self.persistent = not config.session_cookie
        self.lock_timeout = config.lock_timeout
        self.lock_lease = config.lock_lease
        self.warn_lock = config.warn_lock
        self.autoload = config.autoload
        self.loads_now = backend.loads_now

    @abstractmethod
    def sid_of(self, cookie_value: str | None) -> str | None:
        """The session id (or token) in `cookie_value`; None if it cannot be one."""

    @abstractmethod
    def load(self, sid: str, key: str, who: StoreCaller) -> Awaitable[StoredSession | None]:
        """Load the session without its lock (one store call)."""

    @abstractmethod
    def load_now(self, sid: str, key: str, who: StoreCaller) -> StoredSession | None:
        """`load` without I/O (only when `loads_now`)."""

    @abstractmethod
    def acquire(
        self, lock: SessionLock, sid: str, who: StoreCaller
    ) -> Awaitable[StoredSession | None]:
        """Take `lock` and load the session under it."""

    @abstractmethod
    def check_size(self, data: bytes, auth: AuthInfo | None) -> None:
        """Raise `SessionTooLarge` before anything is written if `data` is too much."""

    @abstractmethod
    def store(
        self,
        plan: WritePlan,
        value: bytes,
        ttl: float,
        held: Held,
        who: StoreCaller,
    ) -> Awaitable[NewId | bool]:
        """Write the record `value` as `plan` says (a plan that stores).

        On success the held lock, if any, is spent or released; if this raises, the
        caller releases it (a release is idempotent).

        Returns:
            The new cookie value (a new id or token) and its store key; True when the
            id stays; False when the session was ended concurrently (it is ended here too).
        """

    @abstractmethod
    def end(self, held: Held, who: StoreCaller) -> Awaitable[None]:
        """End the stored session; on success the held lock, if any, is spent or released."""

    @abstractmethod
    def refresh(
        self, key: str, ttl: float, rewrite: Callable[[], Awaitable[None]], who: StoreCaller
    ) -> Awaitable[bool]:
        """Slide the expiry of an unchanged session used without its lock.

        Returns:
            True if the cookie must be sent again with the new expiry.
        """


class Held(NamedTuple):
    """What the store holds for one session as it writes (the arguments of a store call).

    Built with `held` (no keyword parsing: it is made on every write).

    Attributes:
        sid: The id (or token) the client holds; None if new.
        key: Its store key.
        stored: What the store held at load (None: nothing).
        old_user: The user id of the stored record's login, if any.
        user_id: The user id of the login being written, if any.
        lock: The held lock, if any.
        deadline: The session's absolute end.
        persistent: Whether the cookie carries Max-Age.
    """

    sid: str | None
    key: str | None
    stored: StoredSession | None
    old_user: str | None
    user_id: str | None
    lock: SessionLock | None
    deadline: float
    persistent: bool


#: ``held((sid, key, stored, old_user, user_id, lock, deadline, persistent))``: a `Held`,
#: made by the tuple constructor itself (a NamedTuple's own ``__new__`` is Python code).
held: Callable[[tuple[Any, ...]], Held] = partial(tuple.__new__, Held)
#: ``stored_session((value, expires_at))``: a `StoredSession`, the same way.
stored_session: Callable[[tuple[bytes, float]], StoredSession] = partial(
    tuple.__new__, StoredSession
)


async def release_quietly(lock: SessionLock, label: str, who: StoreCaller) -> None:
    """Release `lock`; a failure is logged, not raised (the lease will free it)."""
    try:
        await lock.release()
    except Exception as exc:
        logger.warning(
            "%s: releasing the lock on %s failed (%s: %s); it frees at lease end",
            who.store_subject(),
            label,
            type(exc).__name__,
            exc,
        )


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
                    stored.value, grace, user_id=held.old_user, replace_only=True
                )
            else:
                write = backend.save(
                    held.key, stored.value, grace, user_id=held.old_user, replace_only=True
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


class ClientSide(SessionSide):
    """Records in the cookie: every write is a new token (`ClientSideBackend`)."""

    __slots__ = ("_check_cookie", "client")

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
        self._check_cookie(token, int(ttl) if held.persistent else None, client.max_cookie_size)
        if old is not None and rotate:
            await self.calls.call("revoke", client.revoke_cookie(old, _expiry(held)), who)
        if held.lock is not None:  # in-process exclusion only: nothing was spent
            await release_quietly(held.lock, self.backend.label, who)
        return token, store_key(token)

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


def open_side(
    backend: Backend,
    calls: StoreCalls,
    config: SessionConfig,
    cookie_key: str,
    check_data: DataSizeCheck,
    check_cookie: CookieSizeCheck,
) -> SessionSide:
    """The side of `backend`: `ClientSide` for a `ClientSideBackend`, else `ServerSide`."""
    if isinstance(backend, ClientSideBackend):
        return ClientSide(backend, calls, config, cookie_key, check_cookie)
    return ServerSide(backend, calls, config, cookie_key, check_data)
