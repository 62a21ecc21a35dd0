"""`MultiBackend`: one primary store that is read, plus secondaries that get every write.

A common set-up keeps sessions in memory for speed and copies them to Redis
for another service to read::

    Session(app, backend=["memory://", "redis://analytics:6379/0"])

The rules, and why:

* Reads (`load`, the load inside a lock acquisition, `list_user_sessions`) go
  to the primary only: it is the one source of truth.
* The lock is the primary's. Secondaries are replicas and are never locked.
* Writes, touches and deletes go to every backend. A secondary's failure (or
  a call slower than `secondary_timeout`) is logged once with its label and
  the error, counted, and otherwise ignored: it never fails the request and
  never deletes anything. The primary's failure propagates, so the request
  answers 503 exactly as with a single backend.
* A write always carries the whole session, so a secondary that missed
  writes catches up on the session's next successful write. Secondaries
  write with ``replace_only=False`` for that reason; when the primary then
  reports the session gone (a concurrent logout), it is deleted from them too.
* Under a lock, the secondaries are written first and the primary's fenced
  ``save_and_release`` last, so the lock orders the secondaries' writes as it
  orders the primary's. Unlocked writes go to all backends concurrently.
  Either way a secondary may hold a write the primary then refused (the
  primary failed, or the lock's lease had run out); the request then answered
  503 and the session's next write overwrites it.
* A secondary that failed is skipped for `retry_interval` seconds (counted as
  `skipped`), so a dead replica costs one timeout per interval, not one per request.
* A delete a secondary missed (while the primary's succeeded) is recorded in
  the primary (see `_pending`), so that it survives a restart when the primary
  is durable, and retried until it succeeds: before that secondary's next
  call, and every `retry_interval` by a background task started with `open`.
  A missed `delete_user_sessions` is retried as "delete the user's copies the
  primary no longer has" (replaying it as such could end sessions created since).
  A secondary without a user index gets the primary's list of the user's
  sessions deleted key by key instead.
* `open` and `close` go to all. A primary that cannot open fails the start,
  as a single backend does; a secondary that cannot open is logged and counted,
  and opening it is retried before its next write.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Self, TypeVar, cast

from ._backend import Backend, ClientSideBackend, SessionLock, StoredSession, now
from ._errors import ConfigurationError, UnsupportedOperation
from ._ids import log_id
from ._metrics import BackendMetrics, StoreObserver
from ._pending import MAX_PENDING_DELETES, PendingDeletes
from ._store_call import StoreCalls

__all__ = ["MAX_PENDING_DELETES", "MultiBackend"]

logger = logging.getLogger("sanic_cookies")

_PRIMARY = StoreCalls.caller("multi-backend primary")

T = TypeVar("T")

_REPLAY_BATCH = 64
#: The default of `MultiBackend(pending_ttl=...)`: the default session lifetime, 90 days.
DEFAULT_PENDING_TTL = 90 * 86400.0
# The background retry task wakes at least this often (real seconds), so that it
# notices a retry that came due on the library's clock.
_MAX_TICK = 1.0
_MIN_TICK = 0.05


@dataclasses.dataclass(slots=True, eq=False)
class _Member:
    backend: Backend
    label: str
    metrics: BackendMetrics
    pending: PendingDeletes
    open_failed: bool = False
    down_until: float = 0.0  # now(); skipped until then after a failure
    # The primary's record of its missed deletes was read (once per process is enough:
    # this process's own misses are kept here too).
    pending_read: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class _LockCopies:
    """All a `_MultiLock` may do with its `MultiBackend`: built by the backend from its own methods.

    Attributes:
        on_primary: Runs a call of the primary's lock, metered as the primary's `operation`.
        save_copies: Copies a save to every secondary (failures are the secondaries' concern).
        delete_copies: Deletes the copies of a key; returns a callable that records
            the secondaries that missed it (call it once the primary's delete succeeded).
        end_copies: Deletes the copies of a key and records the misses at once.
    """

    on_primary: Callable[[str, Awaitable[Any]], Awaitable[Any]]
    save_copies: Callable[[str, bytes, float, str | None], Awaitable[None]]
    delete_copies: Callable[[str], Awaitable[Callable[[], Awaitable[None]]]]
    end_copies: Callable[[str], Awaitable[None]]


class MultiBackend(Backend):
    """A primary backend plus secondary backends that receive every write.

    `Session` builds one from a list (``backend=["memory://", "redis://..."]``)
    or from `Session.add_backend`; build it yourself to pass the options.

    Args:
        primary: The backend that is read and locked.
        *secondaries: Backends that receive every write, touch and delete.
        secondary_timeout: Seconds a secondary call may take before it counts
            as failed (the primary's calls are bounded by the primary itself).
        retry_interval: Seconds a failed secondary is skipped before it is tried
            again; also how often its missed deletes are retried in the background.
        pending_ttl: Seconds a missed delete is retried at least (it is retried
            for the longest TTL this backend has written, if that is longer): the
            longest a copy can live. Raise it if sessions live longer than the
            default lifetime of 90 days.

    Attributes:
        metrics: `BackendMetrics` per backend label (duplicate labels get
            ``[i]`` appended, i the backend's position).
    """

    name = "multi"

    def __init__(
        self,
        primary: Backend,
        *secondaries: Backend,
        secondary_timeout: float = 2.0,
        retry_interval: float = 1.0,
        pending_ttl: float = DEFAULT_PENDING_TTL,
    ) -> None:
        if secondary_timeout <= 0 or retry_interval < 0 or pending_ttl <= 0:
            raise ConfigurationError(
                "secondary_timeout and pending_ttl must be positive and retry_interval not "
                f"negative, got {secondary_timeout!r}, {pending_ttl!r} and {retry_interval!r}"
            )
        self.secondary_timeout = secondary_timeout
        self.retry_interval = retry_interval
        self.pending_ttl = pending_ttl
        self._longest_ttl = 0.0  # of every write and touch: how long a copy may live
        self._retrier: asyncio.Task[None] | None = None
        self._stopping: asyncio.Event | None = None
        self._members: list[_Member] = []
        self.metrics: dict[str, BackendMetrics] = {}
        #: Sees each secondary's calls (set by `Session.observe_store`); the
        #: session observes the calls it makes through this backend itself.
        self.observer: StoreObserver | None = None
        self._lock_copies = _LockCopies(
            on_primary=self._primary,
            save_copies=self._save_copies,
            delete_copies=self._delete_copies_then_record,
            end_copies=self._delete_copies,
        )
        for backend in (primary, *secondaries):
            self.add(backend)
        self._primary_calls = StoreCalls(
            self._members[0].label, self._members[0].metrics, translate=False
        )
        # Capabilities are the primary's (it serves every read). They are class
        # attributes on Backend; an instance attribute shadows them per object.
        vars(self)["supports_user_index"] = primary.supports_user_index
        vars(self)["per_process"] = primary.per_process

    def add(self, backend: Backend) -> None:
        """Add a secondary backend (the first one added is the primary). Before `open`."""
        if isinstance(backend, MultiBackend):
            raise ConfigurationError("A MultiBackend cannot contain another MultiBackend")
        if isinstance(backend, ClientSideBackend):
            raise ConfigurationError(
                f"{backend.label} keeps sessions in cookies and cannot be one of several backends"
            )
        if any(m.backend is backend for m in self._members):
            raise ConfigurationError(f"Backend {backend.label} was added twice")
        label = backend.label
        if label in self.metrics:
            label = f"{label}[{len(self._members)}]"
        member = _Member(backend, label, BackendMetrics(), PendingDeletes(label))
        self._members.append(member)
        self.metrics[label] = member.metrics

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        raise ConfigurationError(
            "A MultiBackend has no URL: pass a list of backends or URLs as the session backend"
        )

    @property
    def primary(self) -> Backend:
        """The backend that is read and locked."""
        return self._members[0].backend

    @property
    def secondaries(self) -> tuple[Backend, ...]:
        """The backends that only receive writes."""
        return tuple(m.backend for m in self._members[1:])

    @property
    def backends(self) -> tuple[Backend, ...]:
        """The primary, then the secondaries."""
        return tuple(m.backend for m in self._members)

    @property
    def label(self) -> str:
        """The primary's label: the core's messages are about the backend it failed on."""
        return self._members[0].label

    # -- lifecycle ---------------------------------------------------------------

    async def open(self) -> None:
        """Open every backend (only the primary's failure is raised), then the retries.

        The deletes the secondaries missed before (in this process or another
        one) are read from the primary, and a background task retries them.
        """
        primary, *secondaries = self._members
        results = await asyncio.gather(
            primary.backend.open(),
            *(self._open_secondary(m) for m in secondaries),
            return_exceptions=True,
        )
        if isinstance(results[0], BaseException):
            raise results[0]
        for member in secondaries:
            await self._read_pending(member)
        if secondaries and (self._retrier is None or self._retrier.done()):
            self._stopping = asyncio.Event()
            self._retrier = asyncio.get_running_loop().create_task(
                self._retry_forever(self._stopping)
            )

    async def close(self) -> None:
        """Stop the retries, close every backend; only the primary's failure is raised."""
        task, self._retrier = self._retrier, None
        if task is not None and self._stopping is not None:
            self._stopping.set()
            # A retry under way finishes (it may hold the record's lock) if it can soon;
            # else wait_for cancels it.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(task, self.secondary_timeout + 1.0)
        primary, *secondaries = self._members
        results = await asyncio.gather(
            primary.backend.close(),
            *(self._close_secondary(m) for m in secondaries),
            return_exceptions=True,
        )
        if isinstance(results[0], BaseException):
            raise results[0]

    async def _open_secondary(self, member: _Member) -> bool:
        try:
            async with asyncio.timeout(self.secondary_timeout):
                await member.backend.open()
        except Exception as exc:
            member.open_failed = True
            self._failed(member, "open", None, exc)
            return False
        member.open_failed = False
        return True

    async def _close_secondary(self, member: _Member) -> None:
        try:
            async with asyncio.timeout(self.secondary_timeout):
                await member.backend.close()
        except Exception as exc:
            self._failed(member, "close", None, exc)

    # -- the calls ---------------------------------------------------------------

    def _primary(self, operation: str, awaitable: Awaitable[T]) -> Awaitable[T]:
        """A call to the primary, counted in its metrics (the session maps its errors)."""
        return cast(Awaitable[T], self._primary_calls.call(operation, awaitable, _PRIMARY))

    async def _secondaries(
        self,
        operation: str,
        key: str | None,
        call: Callable[[Backend], Awaitable[object]],
        *,
        needs_index: bool = False,
        members: list[_Member] | None = None,
    ) -> list[_Member]:
        """Run `call` on every secondary (or `members`) concurrently; never raises for them.

        Returns:
            The secondaries that did not do it (failed or skipped).
        """
        if members is None:
            members = [
                m for m in self._members[1:] if not needs_index or m.backend.supports_user_index
            ]
        done = await asyncio.gather(*(self._secondary(m, operation, key, call) for m in members))
        return [m for m, ok in zip(members, done, strict=True) if not ok]

    async def _secondary(
        self,
        member: _Member,
        operation: str,
        key: str | None,
        call: Callable[[Backend], Awaitable[object]],
    ) -> bool:
        if now() < member.down_until:
            member.metrics.skipped += 1
            return False
        if member.open_failed and not await self._open_secondary(member):
            return False
        if member.pending and not await self._replay(member):
            return False
        member.metrics.operations += 1
        try:
            async with asyncio.timeout(self.secondary_timeout):
                if self.observer is None:
                    await call(member.backend)
                else:
                    await self.observer.observe(operation, member.label, call(member.backend))
        except Exception as exc:
            self._failed(member, operation, key, exc)
            return False
        return True

    # -- missed deletes ------------------------------------------------------------

    async def _missed(
        self, members: list[_Member], *, keys: Sequence[str] = (), users: Sequence[str] = ()
    ) -> None:
        """Record that `members` still hold `keys` / `users`' sessions the primary ended."""
        keep_for = max(self.pending_ttl, self._longest_ttl)
        for member in members:
            try:
                await member.pending.sync(
                    self.primary, add_keys=keys, add_users=users, keep_for=keep_for
                )
            except Exception as exc:  # kept in this process; the next sync stores it
                self._pending_failed(member, "recording", exc)

    async def _replay(self, member: _Member) -> bool:
        """Retry one batch of `member`'s missed deletes; False if the secondary failed."""
        keys = list(member.pending.keys)[:_REPLAY_BATCH]
        users = list(member.pending.users)[:_REPLAY_BATCH]
        member.metrics.operations += len(keys) + len(users)
        try:
            async with asyncio.timeout(self.secondary_timeout):
                await asyncio.gather(
                    *(member.backend.delete(k) for k in keys),
                    *(self._delete_ended_copies(member.backend, u) for u in users),
                )
        except Exception as exc:
            self._failed(member, "delete (retried)", None, exc)
            return False
        try:
            await member.pending.sync(self.primary, done_keys=keys, done_users=users)
        except Exception as exc:  # done here; the stored record is retried, harmlessly
            self._pending_failed(member, "updating", exc)
        if keys or users:
            logger.info(
                "secondary session backend %s: %d missed delete(s) done, %d left",
                member.label,
                len(keys) + len(users),
                len(member.pending.keys) + len(member.pending.users),
            )
        return True

    async def _delete_ended_copies(self, secondary: Backend, user_id: str) -> None:
        """Delete `user_id`'s copies whose session the primary no longer has.

        The copies are listed before the primary's sessions, so a session created
        in between is in the primary's list and kept.
        """
        copies = await secondary.list_user_sessions(user_id)
        live = await self.primary.list_user_sessions(user_id)
        await asyncio.gather(*(secondary.delete(k) for k in copies if k not in live))

    async def _retry_forever(self, stopping: asyncio.Event) -> None:
        """Retry the due missed deletes every `retry_interval` until `stopping` is set."""
        tick = min(max(self.retry_interval, _MIN_TICK), _MAX_TICK)
        while not stopping.is_set():
            for member in self._members[1:]:
                if stopping.is_set():
                    return
                try:
                    await self._retry_due(member)
                except Exception as exc:  # never let the task die
                    self._pending_failed(member, "retrying", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), tick)

    async def _retry_due(self, member: _Member) -> None:
        await self._read_pending(member)
        if not member.pending:
            return
        if now() < member.down_until:
            return
        if member.open_failed and not await self._open_secondary(member):
            return
        await self._replay(member)

    async def _read_pending(self, member: _Member) -> None:
        """Read what the primary recorded for `member` (an earlier run's or another worker's)."""
        if member.pending_read:
            return
        try:
            await member.pending.refresh(self.primary)
        except Exception as exc:  # the background task tries again
            self._pending_failed(member, "reading", exc)
        else:
            member.pending_read = True

    def _pending_failed(self, member: _Member, doing: str, exc: Exception) -> None:
        logger.warning(
            "session backend %s: %s the deletes that secondary %s missed failed (%s: %s); "
            "retried in %ss",
            self.label,
            doing,
            member.label,
            type(exc).__name__,
            exc,
            self.retry_interval,
        )

    def _failed(self, member: _Member, operation: str, key: str | None, exc: Exception) -> None:
        member.metrics.failures += 1
        member.down_until = now() + self.retry_interval
        if isinstance(exc, TimeoutError) and not str(exc):
            exc = TimeoutError(f"no answer within {self.secondary_timeout}s")
        if operation in ("save", "touch"):
            consequence = "it catches up on the session's next write"
        elif operation.startswith("delete"):
            consequence = "the delete is retried until it succeeds"
        elif operation == "open":
            consequence = "opening it is retried before its next call"
        else:
            consequence = "the request goes on without it"
        logger.warning(
            "secondary session backend %s: %s%s failed (%s: %s); %s",
            member.label,
            operation,
            f" of session {log_id(key)}" if key else "",
            type(exc).__name__,
            exc,
            consequence,
        )

    async def _everywhere(
        self,
        operation: str,
        key: str | None,
        primary_call: Awaitable[T],
        call: Callable[[Backend], Awaitable[object]],
        *,
        needs_index: bool = False,
    ) -> tuple[T, list[_Member]]:
        """The primary's call and the secondaries' concurrently; the primary's result decides.

        Returns:
            The primary's result and the secondaries that did not do it.
        """
        result, missed = await asyncio.gather(
            self._primary(operation, primary_call),
            self._secondaries(operation, key, call, needs_index=needs_index),
            return_exceptions=True,
        )
        if isinstance(result, BaseException):
            raise result
        if isinstance(missed, BaseException):  # only a cancellation gets here
            raise missed
        return result, missed

    # -- the Backend contract ----------------------------------------------------

    async def load(self, key: str) -> StoredSession | None:
        return await self._primary("load", self.primary.load(key))

    @property
    def loads_now(self) -> bool:
        """The primary's: it serves every read."""
        return self.primary.loads_now

    def load_now(self, key: str) -> StoredSession | None:
        metrics = self._members[0].metrics
        metrics.operations += 1
        try:
            return self.primary.load_now(key)
        except UnsupportedOperation:
            raise
        except Exception:
            metrics.failures += 1
            raise

    async def save(
        self,
        key: str,
        value: bytes,
        ttl: float,
        *,
        user_id: str | None = None,
        replace_only: bool = False,
    ) -> bool:
        self._longest_ttl = max(self._longest_ttl, ttl)
        saved, _ = await self._everywhere(
            "save",
            key,
            self.primary.save(key, value, ttl, user_id=user_id, replace_only=replace_only),
            lambda b: b.save(key, value, ttl, user_id=user_id),
        )
        if not saved:  # ended by a concurrent logout: the copies end too
            await self._delete_copies(key)
        return saved

    async def _save_copies(self, key: str, value: bytes, ttl: float, user_id: str | None) -> None:
        self._longest_ttl = max(self._longest_ttl, ttl)
        await self._secondaries("save", key, lambda b: b.save(key, value, ttl, user_id=user_id))

    async def _delete_copies_then_record(self, key: str) -> Callable[[], Awaitable[None]]:
        missed = await self._secondaries("delete", key, lambda b: b.delete(key))

        async def record() -> None:
            if missed:
                await self._missed(missed, keys=[key])

        return record

    async def _delete_copies(self, key: str) -> None:
        missed = await self._secondaries("delete", key, lambda b: b.delete(key))
        if missed:
            await self._missed(missed, keys=[key])

    async def delete(self, key: str) -> None:
        _, missed = await self._everywhere(
            "delete", key, self.primary.delete(key), lambda b: b.delete(key)
        )
        if missed:
            await self._missed(missed, keys=[key])

    async def touch(self, key: str, ttl: float) -> bool:
        self._longest_ttl = max(self._longest_ttl, ttl)
        touched, _ = await self._everywhere(
            "touch", key, self.primary.touch(key, ttl), lambda b: b.touch(key, ttl)
        )
        return touched

    def lock(self, key: str, *, timeout: float, lease: float) -> SessionLock:
        return _MultiLock(
            self._lock_copies, self.primary.lock(key, timeout=timeout, lease=lease), key
        )

    async def list_user_sessions(self, user_id: str) -> Mapping[str, StoredSession]:
        return await self._primary("list_user_sessions", self.primary.list_user_sessions(user_id))

    async def delete_user_sessions(self, user_id: str, *, keep: str | None = None) -> int:
        # A secondary without a user index cannot find the user's copies: it gets the
        # primary's list, taken before the primary's delete, deleted key by key.
        plain = [m for m in self._members[1:] if not m.backend.supports_user_index]
        keys: list[str] = []
        if plain:
            listed = await self._primary(
                "list_user_sessions", self.primary.list_user_sessions(user_id)
            )
            keys = [k for k in listed if k != keep]
        deleted, missed = await self._everywhere(
            "delete_user_sessions",
            None,
            self.primary.delete_user_sessions(user_id, keep=keep),
            lambda b: b.delete_user_sessions(user_id, keep=keep),
            needs_index=True,
        )
        if missed:
            await self._missed(missed, users=[user_id])
        if keys:
            missed_keys = await self._secondaries(
                "delete", None, lambda b: _delete_all(b, keys), members=plain
            )
            if missed_keys:
                await self._missed(missed_keys, keys=keys)
        return deleted


class _MultiLock(SessionLock):
    """The primary's lock; its writes are copied to the secondaries while it is held."""

    def __init__(self, copies: _LockCopies, lock: SessionLock, key: str) -> None:
        self._copies = copies
        self._lock = lock
        self._key = key

    async def acquire(self) -> StoredSession | None:
        stored: StoredSession | None = await self._copies.on_primary("lock", self._lock.acquire())
        return stored

    async def save_and_release(
        self,
        value: bytes,
        ttl: float,
        *,
        user_id: str | None = None,
        replace_only: bool = False,
    ) -> bool:
        key, copies = self._key, self._copies
        await copies.save_copies(key, value, ttl, user_id)
        saved: bool = await copies.on_primary(
            "save",
            self._lock.save_and_release(value, ttl, user_id=user_id, replace_only=replace_only),
        )
        if not saved:  # ended by a concurrent logout: the copies end too
            await copies.end_copies(key)
        return saved

    async def delete_and_release(self) -> None:
        record_missed = await self._copies.delete_copies(self._key)
        await self._copies.on_primary("delete", self._lock.delete_and_release())
        await record_missed()  # only once the primary's delete succeeded

    async def release(self) -> None:
        await self._lock.release()

    async def extend(self, lease: float) -> None:
        await self._copies.on_primary("extend", self._lock.extend(lease))


async def _delete_all(backend: Backend, keys: list[str]) -> None:
    await asyncio.gather(*(backend.delete(k) for k in keys))
