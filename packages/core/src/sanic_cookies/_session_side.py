"""`SessionSide`: where a session's records live, chosen once when the session opens.

A server-side backend keeps records under keys (the cookie holds a random id,
`ServerSide`); a client-side one keeps the record in the cookie itself
(`ClientSide`, for a `ClientSideBackend`). Every difference between the two along
a request's path is a method of the side, so the session (`SessionDict`) never asks
which kind it has: `Session` picks the side once, when its backend opens, with the
settings the requests share worked out ahead.

Each method takes what it needs as arguments and returns what changed; store calls go
through the session's `StoreCalls` (counted, observed, failures turned into a 503).
"""

from __future__ import annotations

import logging
import math
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, NamedTuple

from ._backend import Backend, SessionLock, StoredSession
from ._config import SessionConfig
from ._record import AuthInfo
from ._store_call import StoreCaller, StoreCalls
from ._write_plan import WritePlan

__all__ = [
    "CookieSizeCheck",
    "DataSizeCheck",
    "Held",
    "NewId",
    "SessionSide",
    "cookie_max_age",
    "held",
    "release_quietly",
    "stored_session",
]

logger = logging.getLogger("sanic_cookies")

#: ``check(token, max_age, limit)``: raise `SessionTooLarge` for a ``Set-Cookie`` too large.
CookieSizeCheck = Callable[[str, "int | None", int], None]
#: A new cookie value (a session id or token) and its store key (None: hashed when needed).
NewId = tuple[str, str | None]
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
        new_cookie_per_write: Every write gives the client a new cookie (the record is
            in it), so a rewrite cannot keep the cookie the client has.
    """

    new_cookie_per_write: bool = False

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
            The new cookie value (a new id or token) and its store key (None: the
            session works it out if it needs it); True when the id stays; False when
            the session was ended concurrently (it is ended here too).
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
        key: Its store key (None for a token a client-side write of this request made,
            until the session needs it: no client-side call does).
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


def cookie_max_age(seconds_left: float) -> int:
    """The cookie's Max-Age for a session with `seconds_left` to live.

    Rounded up: a session with 0.9 s left must not get Max-Age=0, which tells the
    browser to delete the cookie at once. The response and the cookie size check both
    use it, so the size checked is the size sent.
    """
    return max(1, math.ceil(seconds_left))


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
