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
* A delete a secondary missed (while the primary's succeeded) is remembered,
  up to `MAX_PENDING_DELETES` keys per secondary in this process, and replayed
  before that secondary's next call, so an ended session does not linger in
  the copy. A missed `delete_user_sessions` is not replayed (it could end
  sessions created since); those copies expire with their TTL.
* `open` and `close` go to all. A primary that cannot open fails the start,
  as a single backend does; a secondary that cannot open is logged and counted,
  and opening it is retried before its next write.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Self, TypeVar

from ._backend import Backend, ClientSideBackend, SessionLock, StoredSession
from ._errors import ConfigurationError
from ._ids import log_id
from ._metrics import BackendMetrics, metered
from .clock import monotonic

__all__ = ["MultiBackend"]

logger = logging.getLogger("sanic_cookies")

T = TypeVar("T")

#: Most missed deletes remembered per secondary; the oldest are forgotten beyond it.
MAX_PENDING_DELETES = 10_000
_REPLAY_BATCH = 64


@dataclasses.dataclass(slots=True, eq=False)
class _Member:
    backend: Backend
    label: str
    metrics: BackendMetrics
    open_failed: bool = False
    down_until: float = 0.0  # clock.monotonic(); skipped until then after a failure
    # Keys whose delete this secondary missed, oldest first (a dict keeps insertion order).
    pending_deletes: dict[str, None] = dataclasses.field(default_factory=dict)


class MultiBackend(Backend):
    """A primary backend plus secondary backends that receive every write.

    `Session` builds one from a list (``backend=["memory://", "redis://..."]``)
    or from `Session.add_backend`; build it yourself to pass the options.

    Args:
        primary: The backend that is read and locked.
        *secondaries: Backends that receive every write, touch and delete.
        secondary_timeout: Seconds a secondary call may take before it counts
            as failed (the primary's calls are bounded by the primary itself).
        retry_interval: Seconds a failed secondary is skipped before it is tried again.

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
    ) -> None:
        if secondary_timeout <= 0 or retry_interval < 0:
            raise ConfigurationError(
                "secondary_timeout must be positive and retry_interval not negative, got "
                f"{secondary_timeout!r} and {retry_interval!r}"
            )
        self.secondary_timeout = secondary_timeout
        self.retry_interval = retry_interval
        self._members: list[_Member] = []
        self.metrics: dict[str, BackendMetrics] = {}
        for backend in (primary, *secondaries):
            self.add(backend)
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
        member = _Member(backend, label, BackendMetrics())
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
        """Open every backend; only the primary's failure is raised."""
        primary, *secondaries = self._members
        results = await asyncio.gather(
            primary.backend.open(),
            *(self._open_secondary(m) for m in secondaries),
            return_exceptions=True,
        )
        if isinstance(results[0], BaseException):
            raise results[0]

    async def close(self) -> None:
        """Close every backend; only the primary's failure is raised."""
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

    async def _primary(self, operation: str, awaitable: Awaitable[T]) -> T:
        return await metered(self._members[0].metrics, operation, awaitable)

    async def _secondaries(
        self,
        operation: str,
        key: str | None,
        call: Callable[[Backend], Awaitable[object]],
        *,
        needs_index: bool = False,
    ) -> list[_Member]:
        """Run `call` on every secondary concurrently; never raises for their failures.

        Returns:
            The secondaries that did not do it (failed or skipped).
        """
        members = [m for m in self._members[1:] if not needs_index or m.backend.supports_user_index]
        done = await asyncio.gather(*(self._secondary(m, operation, key, call) for m in members))
        return [m for m, ok in zip(members, done, strict=True) if not ok]

    async def _secondary(
        self,
        member: _Member,
        operation: str,
        key: str | None,
        call: Callable[[Backend], Awaitable[object]],
    ) -> bool:
        if monotonic() < member.down_until:
            member.metrics.skipped += 1
            return False
        if member.open_failed and not await self._open_secondary(member):
            return False
        if member.pending_deletes and not await self._replay_deletes(member):
            return False
        member.metrics.operations += 1
        try:
            async with asyncio.timeout(self.secondary_timeout):
                await call(member.backend)
        except Exception as exc:
            self._failed(member, operation, key, exc)
            return False
        if key is not None:  # written or deleted now: an older missed delete is moot
            member.pending_deletes.pop(key, None)
        return True

    def _missed_deletes(self, members: list[_Member], key: str) -> None:
        """Remember that `members` still hold `key`, which the primary no longer has."""
        for member in members:
            member.pending_deletes[key] = None
            if len(member.pending_deletes) > MAX_PENDING_DELETES:
                del member.pending_deletes[next(iter(member.pending_deletes))]

    async def _replay_deletes(self, member: _Member) -> bool:
        keys = list(member.pending_deletes)[:_REPLAY_BATCH]
        member.metrics.operations += len(keys)
        try:
            async with asyncio.timeout(self.secondary_timeout):
                await asyncio.gather(*(member.backend.delete(k) for k in keys))
        except Exception as exc:
            self._failed(member, "delete (replayed)", None, exc)
            return False
        for k in keys:
            member.pending_deletes.pop(k, None)
        return True

    def _failed(self, member: _Member, operation: str, key: str | None, exc: Exception) -> None:
        member.metrics.failures += 1
        member.down_until = monotonic() + self.retry_interval
        if isinstance(exc, TimeoutError) and not str(exc):
            exc = TimeoutError(f"no answer within {self.secondary_timeout}s")
        if operation in ("save", "touch"):
            consequence = "it catches up on the session's next write"
        elif operation == "delete":
            consequence = "the delete is retried before its next call"
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

    async def save(
        self,
        key: str,
        value: bytes,
        ttl: float,
        *,
        user_id: str | None = None,
        replace_only: bool = False,
    ) -> bool:
        saved, _ = await self._everywhere(
            "save",
            key,
            self.primary.save(key, value, ttl, user_id=user_id, replace_only=replace_only),
            lambda b: b.save(key, value, ttl, user_id=user_id),
        )
        if not saved:  # ended by a concurrent logout: the copies end too
            await self._delete_copies(key)
        return saved

    async def _delete_copies(self, key: str) -> None:
        self._missed_deletes(await self._secondaries("delete", key, lambda b: b.delete(key)), key)

    async def delete(self, key: str) -> None:
        _, missed = await self._everywhere(
            "delete", key, self.primary.delete(key), lambda b: b.delete(key)
        )
        self._missed_deletes(missed, key)

    async def touch(self, key: str, ttl: float) -> bool:
        touched, _ = await self._everywhere(
            "touch", key, self.primary.touch(key, ttl), lambda b: b.touch(key, ttl)
        )
        return touched

    def lock(self, key: str, *, timeout: float, lease: float) -> SessionLock:
        return _MultiLock(self, self.primary.lock(key, timeout=timeout, lease=lease), key)

    async def list_user_sessions(self, user_id: str) -> Mapping[str, StoredSession]:
        return await self._primary("list_user_sessions", self.primary.list_user_sessions(user_id))

    async def delete_user_sessions(self, user_id: str, *, keep: str | None = None) -> int:
        deleted, _ = await self._everywhere(
            "delete_user_sessions",
            None,
            self.primary.delete_user_sessions(user_id, keep=keep),
            lambda b: b.delete_user_sessions(user_id, keep=keep),
            needs_index=True,
        )
        return deleted


class _MultiLock(SessionLock):
    """The primary's lock; its writes are copied to the secondaries while it is held."""

    def __init__(self, multi: MultiBackend, lock: SessionLock, key: str) -> None:
        self._multi = multi
        self._lock = lock
        self._key = key

    async def acquire(self) -> StoredSession | None:
        return await self._multi._primary("lock", self._lock.acquire())

    async def save_and_release(
        self,
        value: bytes,
        ttl: float,
        *,
        user_id: str | None = None,
        replace_only: bool = False,
    ) -> bool:
        key, multi = self._key, self._multi
        await multi._secondaries("save", key, lambda b: b.save(key, value, ttl, user_id=user_id))
        saved = await multi._primary(
            "save",
            self._lock.save_and_release(value, ttl, user_id=user_id, replace_only=replace_only),
        )
        if not saved:  # ended by a concurrent logout: the copies end too
            await multi._delete_copies(key)
        return saved

    async def delete_and_release(self) -> None:
        key, multi = self._key, self._multi
        missed = await multi._secondaries("delete", key, lambda b: b.delete(key))
        await multi._primary("delete", self._lock.delete_and_release())
        multi._missed_deletes(missed, key)  # only once the primary's delete succeeded

    async def release(self) -> None:
        await self._lock.release()

    async def extend(self, lease: float) -> None:
        await self._multi._primary("extend", self._lock.extend(lease))
