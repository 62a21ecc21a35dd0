"""The backend contract: what a session store must do.

A backend stores opaque bytes under a key, with a time to live. The core
hashes session ids into keys, encodes the records, enforces lifetimes and
decides when to write; a backend only keeps bytes, expires them and locks keys.

To write one, subclass `Backend`, implement the abstract methods, register the
class under the entry-point group ``sanic_cookies.backends`` with the URL
scheme as its name, and run `sanic_cookies.testing.BackendConformance`
against it (see ``docs/writing-a-backend.md``).
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Mapping
from types import TracebackType
from typing import Any, ClassVar, NamedTuple, Self

from ._errors import LockTimeout, UnsupportedOperation

# Every expiry is measured on the library's clock (`sanic_cookies.clock`); this name stays
# for the modules that import it from here.
from .clock import now as now

__all__ = ["Backend", "ClientSideBackend", "LocalLock", "SessionLock", "StoredSession"]


class StoredSession(NamedTuple):
    """A value as a backend returns it.

    Attributes:
        value: The bytes last saved under the key.
        expires_at: When the store will drop it, in epoch seconds on the library's
            clock: `sanic_cookies.clock.now()` plus the time the store has left (a
            store that keeps time on its own server adds its remaining TTL to `now()`).
    """

    value: bytes
    expires_at: float


class SessionLock(ABC):
    """Exclusive access to one session key, from `Backend.lock`.

    The core uses a lock like this::

        lock = backend.lock(key, timeout=5.0, lease=30.0)
        stored = await lock.acquire()          # take the lock and load, one round trip
        try:
            ...                                # the handler's `async with` block
            await lock.save_and_release(...)   # or delete_and_release() / release()
        finally:
            await lock.release()               # a no-op once released

    Implementations must guarantee:

    * mutual exclusion between holders of the same key, across every process
      that shares the store (an in-process backend needs only in-process exclusion);
    * a lease: if the holder dies, the lock frees itself after `lease` seconds;
    * fencing: `save_and_release` and `delete_and_release` apply only while this
      holder still owns the lock, atomically, and raise `LockLost` otherwise;
    * `release` is idempotent and never raises because the lock is already gone.

    A lock is single-use: `Backend.lock` makes a fresh, unacquired lock, which is
    acquired at most once and is spent once released (by any of the three
    release methods); the core never reuses one, so a lock need not support it.

    The core calls `release` after every `save_and_release` and
    `delete_and_release` (in a ``finally``), so `release` on a spent lock must be
    cheap: a local check, no round trip to the store.

    `async with lock:` acquires (discarding the loaded value) and releases.

    `sanic_cookies.LeaseLock` is a ready implementation for a store that offers a
    few atomic primitives (`sanic_cookies.LeaseStore`); `LocalLock` is the one for
    data that lives inside one process.
    """

    @abstractmethod
    async def acquire(self) -> StoredSession | None:
        """Take the lock, then return the stored value (None if there is none).

        Raises:
            LockTimeout: The lock was not free within the backend's acquire timeout.
        """

    @abstractmethod
    async def save_and_release(
        self,
        value: bytes,
        ttl: float,
        *,
        user_id: str | None = None,
        replace_only: bool = False,
    ) -> bool:
        """Write `value` (as `Backend.save` does) and release the lock, atomically fenced.

        Returns:
            False when `replace_only` is set and the key no longer exists (a
            concurrent logout deleted it); nothing is written then. True otherwise.
            After False the lock is released all the same, as after True.

        Raises:
            LockLost: This holder's lease ran out; nothing was written.
                The lock (nobody's, or the next holder's) is left alone.
        """

    @abstractmethod
    async def delete_and_release(self) -> None:
        """Delete the key (and its user-index entry) and release the lock.

        Raises:
            LockLost: This holder's lease ran out; nothing was deleted.
        """

    @abstractmethod
    async def release(self) -> None:
        """Release without writing. Idempotent; never raises for a lock already gone."""

    @abstractmethod
    async def extend(self, lease: float) -> None:
        """Push the lease out to `lease` seconds from now.

        Raises:
            LockLost: The lease had already run out.
                Whether or not another holder has taken the lock since; also
                when the lock is not held.
        """

    async def __aenter__(self) -> Self:
        await self.acquire()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.release()


class Backend(ABC):
    """A session store.

    Keys are 64-character hex strings (SHA-256 of the session id); values are
    opaque bytes of at most a few kilobytes; TTLs are seconds as floats
    (round up if the store counts whole seconds or milliseconds).

    Every method may raise whatever the store's client raises: the core turns
    any exception into `BackendUnavailable` (HTTP 503) and logs it once.
    Bound every network call with a timeout so a dead store fails fast.

    Optional methods: `open`, `close`, `cleanup` (no-op defaults) and, with
    `supports_user_index`, `list_user_sessions` / `delete_user_sessions`.
    `from_url` may parse its URL with `sanic_cookies.parse_backend_url`.

    The cross-process rule: a backend that does not declare `per_process`
    shares its store between worker processes, so its lock must exclude,
    expire and fence across processes (`sanic_cookies.LeaseLock` does). The
    conformance suite proves it with a second OS process and skips that proof
    only for a backend that declares ``per_process = True``.

    Class attributes:
        name: A short label for logs and metrics (defaults to the class name).
        supports_user_index: True if `list_user_sessions` and
            `delete_user_sessions` are implemented ("log out everywhere").
        per_process: True if each backend instance has its own data, inside
            its worker process (the in-memory backend); the core warns when
            Sanic runs several workers.
        expires_entries_itself: True if the store drops expired entries by
            itself (Redis TTLs, a cookie): `cleanup` may then keep its no-op
            default. False (the default): `cleanup` must remove them, and
            ``sanic-cookies cleanup`` fails for a backend that does not.
    """

    name: ClassVar[str] = ""
    supports_user_index: ClassVar[bool] = False
    per_process: ClassVar[bool] = False
    expires_entries_itself: ClassVar[bool] = False

    @classmethod
    @abstractmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """Build the backend from a URL such as ``redis://host:6379/0``.

        Args:
            url: The whole URL; its scheme selected this class.
            **options: Backend-specific keyword arguments (from code or config).
        """

    async def open(self) -> None:  # noqa: B027 - optional hook, empty by design
        """Connect, create tables, start background tasks. Called in each worker at start-up.

        May be called again after `close` (an app restarted in tests): reconnect then.
        """

    async def close(self) -> None:  # noqa: B027 - optional hook, empty by design
        """Release connections and stop background tasks. Called at server stop."""

    async def cleanup(self) -> int | None:
        """Remove the expired entries the store still holds; ``sanic-cookies cleanup`` runs it.

        Called on an opened backend, from another process than the app's (cron), so
        it must only touch the shared store. A store that expires entries by itself
        (Redis, an encrypted cookie) declares ``expires_entries_itself = True`` and
        keeps this default, which does nothing; every other backend implements it
        (the conformance suite checks that it removes an expired entry).

        Returns:
            How many entries were removed, or None if the store expires them by
            itself (the default).
        """
        return None

    @abstractmethod
    async def load(self, key: str) -> StoredSession | None:
        """Return the value stored under `key`, or None if missing or expired."""

    @property
    def loads_now(self) -> bool:
        """True if this backend's data is at hand without I/O, so `load_now` works.

        Then a handler's plain ``request.ctx.session["k"]`` loads the session on
        first use, synchronously. False by default: a store behind a network can
        only be loaded by ``await`` (``async with``, ``load()``, or the
        ``autoload`` setting). Override it together with `load_now`
        (or `ClientSideBackend.decode_cookie_now`); it may depend on the
        instance's options.
        """
        return False

    def load_now(self, key: str) -> StoredSession | None:
        """`load`, synchronously: for a backend whose data lives in this process.

        Implement it only if it never waits for I/O (it runs on the event loop);
        then also return True from `loads_now`.

        Raises:
            UnsupportedOperation: The backend cannot load without I/O (the default).
        """
        raise UnsupportedOperation(f"{self.label} cannot load a session without I/O")

    @abstractmethod
    async def save(
        self,
        key: str,
        value: bytes,
        ttl: float,
        *,
        user_id: str | None = None,
        replace_only: bool = False,
    ) -> bool:
        """Store `value` under `key` for `ttl` seconds, replacing any previous value.

        Args:
            key: The store key.
            value: The encoded record.
            ttl: Seconds until the store drops the value, unless saved or touched again.
            user_id: The logged-in user owning this session, for the user index
                (None: the session belongs to nobody; remove it from any index).
            replace_only: Write only if the key exists now (so a write racing a
                logout cannot bring the session back).

        Returns:
            False if `replace_only` was set and the key did not exist; True otherwise.
            With a user index, a True save files the key under `user_id` only: a
            `user_id` of None (a logout that keeps the session) removes it from the
            index, with or without `replace_only`.
        """

    @abstractmethod
    async def delete(self, key: str) -> None:
        """Remove `key` and its user-index entry. Missing keys are not an error."""

    @abstractmethod
    async def touch(self, key: str, ttl: float) -> bool:
        """Reset the time to live of `key` to `ttl` seconds without rewriting it.

        Returns:
            True if the key existed.
        """

    @abstractmethod
    def lock(self, key: str, *, timeout: float, lease: float) -> SessionLock:
        """Return an (unacquired) `SessionLock` for `key`.

        Args:
            key: The store key to lock.
            timeout: Seconds `acquire` waits before raising `LockTimeout`.
            lease: Seconds the lock survives a holder that died.
        """

    async def list_user_sessions(self, user_id: str) -> Mapping[str, StoredSession]:
        """Return the live sessions saved with `user_id`, by key.

        Raises:
            UnsupportedOperation: The backend keeps no user index.
        """
        raise UnsupportedOperation(f"{self.label} does not keep a per-user session index")

    async def delete_user_sessions(self, user_id: str, *, keep: str | None = None) -> int:
        """Delete every session saved with `user_id`, except the key `keep`.

        Returns:
            How many sessions were deleted.

        Raises:
            UnsupportedOperation: The backend keeps no user index.
        """
        raise UnsupportedOperation(f"{self.label} does not keep a per-user session index")

    @property
    def label(self) -> str:
        """The backend's name for logs: `name`, or the class name."""
        return self.name or type(self).__name__


class _KeyLock:
    """A contended key: a count of interested tasks (holder and waiters), so it can be forgotten.

    Made only when a second task wants the key (most keys never see one): until then the
    holder holds the key by `HELD_ALONE` in the registry, with no object of its own.
    """

    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock: asyncio.Lock | None = None
        self.users = 1


#: The registry's entry of a key held by one task that nobody else awaits.
HELD_ALONE: Any = object()


class _KeyedMutex:
    """Holds at most one in-process asyncio lock of a key registry (a base of the locks).

    The asyncio lock of a key exists while some task holds or awaits it and
    is forgotten afterwards, so neither a leak nor a deadlock can outlive a
    request (the two bugs that killed the 0.4 lock). A base class rather than a
    member of the lock: one object per request instead of two. A subclass sets
    the four slots in its ``__init__`` (`_KeyedMutex.__init__` shows how).
    """

    __slots__ = ("_held", "_key", "_registry", "_timeout")

    def __init__(self, registry: dict[str, Any], key: str, timeout: float) -> None:
        self._registry: dict[str, _KeyLock] = registry
        self._key = key
        self._timeout = timeout
        self._held: _KeyLock | None = None

    def _try_take(self) -> bool:
        """Take the key if nobody holds or awaits it; no await, no lock object, no task."""
        if self._key in self._registry:
            return False
        self._held = self._registry[self._key] = HELD_ALONE
        return True

    async def _take(self) -> None:
        if self._try_take():
            return
        entry = self._registry[self._key]
        if entry is HELD_ALONE:  # the first waiter: the holder's count, and now ours
            entry = self._registry[self._key] = _KeyLock()
        entry.users += 1
        try:
            lock = entry.lock
            if lock is None:
                # The holder took the key without a lock: make it one, acquired on its
                # behalf (a free lock nobody awaits is acquired without suspending, so
                # no other task runs in between), for its give_back to release.
                lock = entry.lock = asyncio.Lock()
                await lock.acquire()
            await asyncio.wait_for(lock.acquire(), self._timeout)
        except TimeoutError:
            self._forget(entry)
            raise LockTimeout(f"Session lock not acquired within {self._timeout}s") from None
        except BaseException:
            self._forget(entry)
            raise
        self._held = entry

    def _give_back(self) -> None:
        entry, self._held = self._held, None
        if entry is HELD_ALONE:
            entry = self._registry[self._key]
            if entry is HELD_ALONE:  # nobody came to wait
                del self._registry[self._key]
                return
        if entry is not None:  # (a waiter made the entry when it came)
            if entry.lock is not None:
                entry.lock.release()
            self._forget(entry)

    def _forget(self, entry: _KeyLock) -> None:
        entry.users -= 1
        if entry.users == 0 and self._registry.get(self._key) is entry:
            del self._registry[self._key]


class LocalLock(_KeyedMutex, SessionLock):
    """An in-process lock for backends whose data lives in this process.

    It gives mutual exclusion between the tasks of one process only, and has
    no lease (a holder that dies takes the process, and the data, with it).
    Loads and saves go through the backend's own `load` / `save` / `delete`.

    Use it from `Backend.lock` of a single-process store, with one registry
    dict per backend instance::

        def lock(self, key, *, timeout, lease):
            return LocalLock(self, self._locks, key, timeout=timeout)
    """

    def __init__(
        self, backend: Backend, registry: dict[str, Any], key: str, *, timeout: float
    ) -> None:
        self._backend = backend
        # `_KeyedMutex`'s slots, set here: one Python call fewer per lock.
        self._registry = registry
        self._key = key
        self._timeout = timeout
        self._held = None

    async def acquire(self) -> StoredSession | None:
        if not self._try_take():
            await self._take()
        try:
            return await self._backend.load(self._key)
        except BaseException:
            self._give_back()
            raise

    async def save_and_release(
        self,
        value: bytes,
        ttl: float,
        *,
        user_id: str | None = None,
        replace_only: bool = False,
    ) -> bool:
        try:
            return await self._backend.save(
                self._key, value, ttl, user_id=user_id, replace_only=replace_only
            )
        finally:
            self._give_back()

    async def delete_and_release(self) -> None:
        try:
            await self._backend.delete(self._key)
        finally:
            self._give_back()

    async def release(self) -> None:
        self._give_back()

    async def extend(self, lease: float) -> None:
        """In-process locks have no lease; nothing to extend."""


class ClientSideBackend(Backend):
    """A backend that keeps the whole session in the cookie (no server state).

    The core hands it the encoded record and puts the token it returns in the
    cookie; on the next request it hands the cookie back to `decode_cookie`.
    Every write asks for a new token (so login's id rotation is a new token),
    and logout or rotation hands the old one to `revoke_cookie`. The core
    refuses a write whose whole ``Set-Cookie`` value (name, token, attributes)
    exceeds `max_cookie_size`, with `SessionTooLarge`.
    `load`, `save`, `delete` and `touch` do not apply and raise
    `UnsupportedOperation`; the lock is in-process only (there is nothing
    shared to lock), so two parallel requests from one browser can still race.

    Attributes:
        max_cookie_size: The most bytes of a ``Set-Cookie`` header value
            (4093: larger cookies are dropped by browsers without a word).
    """

    max_cookie_size: int = 4093
    expires_entries_itself: ClassVar[bool] = True  # nothing is stored to expire

    def __init__(self) -> None:
        self._locks: dict[str, Any] = {}

    @abstractmethod
    async def decode_cookie(self, token: str) -> StoredSession | None:
        """Return the record inside `token`, or None for anything invalid or expired.

        Must never raise for bad input: tampered, truncated, foreign-key or
        random tokens all give None.
        """

    @abstractmethod
    async def encode_cookie(
        self,
        value: bytes,
        ttl: float,
        *,
        previous: str | None = None,
        deadline: float | None = None,
    ) -> str:
        """Return a cookie-safe token holding `value`, valid for `ttl` seconds.

        Args:
            value: The encoded record.
            ttl: Seconds the token is valid (already capped by the deadline).
            previous: The token this write replaces in the same session (None
                for a new session or an id rotation), so that revoking the new
                token can revoke its predecessors too.
            deadline: The session's absolute end (epoch seconds), if known.

        Raises:
            SessionTooLarge: The token would not fit in a cookie.
        """

    def decode_cookie_now(self, token: str) -> StoredSession | None:
        """`decode_cookie`, synchronously (when `loads_now` is True).

        Implement it when decoding needs no I/O (no server-side revocation list,
        or one that is itself in memory); it must never raise for bad input.

        Raises:
            UnsupportedOperation: Decoding needs I/O (the default).
        """
        raise UnsupportedOperation(f"{self.label} cannot decode a cookie without I/O")

    async def revoke_cookie(self, token: str, expires_at: float) -> None:
        """Make `token` (and the tokens it replaced) unusable before `expires_at`.

        Called at logout and id rotation with the token the client held.
        Default: do nothing (a copied cookie then stays valid until it expires).
        """

    async def revoke_user_cookies(self, user_id: str, *, keep: str | None = None) -> int:
        """End every session of `user_id` (``AuthSession.logout_everywhere``), but `keep`'s.

        Args:
            user_id: The user-index id of the user.
            keep: The token of a session that survives, if any.

        Returns:
            How many sessions were ended, as far as the backend can count them.

        Raises:
            UnsupportedOperation: The backend keeps no state to refuse the cookies
                with (the default).
        """
        raise UnsupportedOperation(
            f"logout_everywhere() needs a per-user session index; {self.label} keeps "
            "sessions in cookies and cannot end them remotely"
        )

    def check_deployment(self, *, session: str, workers: int, final_logout: bool) -> None:
        """Refuse, at start-up, a set-up under which a logged-out cookie would still work.

        Called by the `Session` named `session` before it opens the backend.

        Args:
            session: The session's name, for messages.
            workers: How many server processes run the app.
            final_logout: True for an `AuthSession`, whose logout promises that the
                logged-out cookie never works again.

        Raises:
            ConfigurationError: The set-up cannot keep that promise. Default: never.
        """

    async def load(self, key: str) -> StoredSession | None:
        raise UnsupportedOperation(f"{self.label} keeps sessions in cookies, not by key")

    async def save(
        self,
        key: str,
        value: bytes,
        ttl: float,
        *,
        user_id: str | None = None,
        replace_only: bool = False,
    ) -> bool:
        raise UnsupportedOperation(f"{self.label} keeps sessions in cookies, not by key")

    async def delete(self, key: str) -> None:
        raise UnsupportedOperation(f"{self.label} keeps sessions in cookies, not by key")

    async def touch(self, key: str, ttl: float) -> bool:
        raise UnsupportedOperation(f"{self.label} keeps sessions in cookies, not by key")

    def lock(self, key: str, *, timeout: float, lease: float) -> SessionLock:
        return _CookieLock(self._locks, key, timeout)


class _CookieLock(_KeyedMutex, SessionLock):
    """In-process exclusion only: the data comes from the cookie, not from a store.

    `acquire` returns None; the core decodes the cookie itself. The core never
    saves or deletes through this lock (it encodes a new cookie instead).
    """

    async def acquire(self) -> StoredSession | None:
        if not self._try_take():
            await self._take()
        return None

    async def save_and_release(
        self,
        value: bytes,
        ttl: float,
        *,
        user_id: str | None = None,
        replace_only: bool = False,
    ) -> bool:
        self._give_back()
        raise UnsupportedOperation("a client-side session is saved by encoding a new cookie")

    async def delete_and_release(self) -> None:
        self._give_back()
        raise UnsupportedOperation("a client-side session is ended by expiring its cookie")

    async def release(self) -> None:
        self._give_back()

    async def extend(self, lease: float) -> None:
        """In-process locks have no lease; nothing to extend."""
