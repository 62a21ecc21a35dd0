"""The in-memory backend (``memory://``), the embedded default.

Sessions live in a dict inside the worker process: fast, and gone at restart.
Each worker of a multi-worker app has its own, so use it for development,
tests and single-process apps (the core warns otherwise).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import struct
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Self
from urllib.parse import parse_qsl

from sanic_cookies._backend import (
    Backend,
    LocalLock,
    SessionLock,
    StoredSession,
    _KeyedMutex,
    now,
)
from sanic_cookies._errors import ConfigurationError
from sanic_cookies._url import redact_url, split_backend_url

__all__ = ["DEFAULT_MAX_ENTRIES", "MemoryBackend"]

logger = logging.getLogger("sanic_cookies")

#: The default cap on sessions held (``max_entries``): about 31 MB of 150-byte sessions.
DEFAULT_MAX_ENTRIES = 100_000

# A session is one bytes object: its expiry (an 8-byte double) then its value. No
# tuple and no float object per session: about 100 bytes less than (expiry, value, user).
_EXPIRY = struct.Struct("<d")
_HEAD = _EXPIRY.size
_pack = _EXPIRY.pack
_unpack = _EXPIRY.unpack_from


def _expiry(entry: bytes) -> float:
    expires_at: float = _unpack(entry)[0]
    return expires_at


# The keyword options from_url takes (those of __init__).
_OPTIONS = frozenset({"max_entries", "sweep_interval"})

# The methods `_DictLock` bypasses: a subclass that overrides one (a test's faulty
# store, say) gets the generic `LocalLock`, which goes through them.
_STORE_METHODS = ("load", "load_now", "save", "delete")


class MemoryBackend(Backend):
    """Sessions in a per-process dict with TTLs.

    Every operation is O(1) below the cap. Expired entries are never
    returned, and a background task (started and stopped with the server)
    sweeps them out.

    When a save would hold more than `max_entries` sessions, the ones closest
    to expiry (expired ones first) are dropped to make room, and a WARNING is
    logged once. Eviction keeps a heap of expiry times, built the first time
    the cap is reached (one pass over the store) and kept from then on (O(log n)
    a save) until a sweep leaves the store half empty.

    Args:
        max_entries: The most sessions to keep (default 100,000, so that no
            visitor can grow the process without bound). None: no cap.
        sweep_interval: Seconds between sweeps of expired entries.
    """

    name: ClassVar[str] = "memory"
    supports_user_index: ClassVar[bool] = True
    per_process: ClassVar[bool] = True
    expires_entries_itself: ClassVar[bool] = True  # the sweeper task drops expired entries

    def __init__(
        self, *, max_entries: int | None = DEFAULT_MAX_ENTRIES, sweep_interval: float = 60.0
    ) -> None:
        if max_entries is not None and (
            not isinstance(max_entries, int) or isinstance(max_entries, bool) or max_entries < 1
        ):
            raise ConfigurationError(
                f"max_entries must be a whole number of at least 1, or None for no cap; "
                f"got {max_entries!r}"
            )
        if sweep_interval <= 0:
            raise ConfigurationError(f"sweep_interval must be positive, got {sweep_interval}")
        self.max_entries = max_entries
        self.sweep_interval = sweep_interval
        # Keys are kept as 32 raw bytes rather than 64 hex characters: half the memory.
        self._data: dict[bytes, bytes] = {}
        self._owners: dict[bytes, str] = {}  # the user of each session that has one
        self._users: dict[str, set[bytes]] = {}
        self._locks: dict[str, Any] = {}
        self._sweeper: asyncio.Task[None] | None = None
        # (expiry, key) of every entry, and stale pairs of rewritten or deleted ones:
        # kept only while the store is near its cap (None otherwise, and costs nothing).
        self._heap: list[tuple[float, bytes]] | None = None
        self._warned_full = False
        cls = type(self)
        self._entries: _Entries | None = None
        if all(getattr(cls, name) is getattr(MemoryBackend, name) for name in _STORE_METHODS):
            self._entries = _Entries(self._read, self._write, self._remove)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """``memory://`` with optional ``?max_entries=N&sweep_interval=S``.

        ``max_entries=none`` turns the cap off.
        """
        pairs = parse_qsl(split_backend_url(url).query, keep_blank_values=True)
        query = dict(pairs)
        if len(query) < len(pairs):  # (dict() would keep the last without a word)
            raise ConfigurationError("A memory:// URL gives each option once")
        kwargs: dict[str, Any] = {}
        try:
            if "max_entries" in query:
                cap = query.pop("max_entries")
                kwargs["max_entries"] = None if cap.lower() == "none" else int(cap)
            if "sweep_interval" in query:
                kwargs["sweep_interval"] = float(query.pop("sweep_interval"))
        except ValueError as exc:
            raise ConfigurationError(
                f"Bad memory:// option in {redact_url(url)!r}: {exc}"
            ) from None
        unknown = sorted(set(query) | (set(options) - _OPTIONS))
        if unknown:
            raise ConfigurationError(
                f"Unknown memory:// option(s): {', '.join(unknown)} "
                f"(known: {', '.join(sorted(_OPTIONS))}); options meant for another "
                "session's backend go in that session's own setting "
                "(AUTH_SESSION_BACKEND_OPTIONS, or backend_options=)"
            )
        kwargs.update(options)
        return cls(**kwargs)

    async def open(self) -> None:
        # A sweeper that ended (its loop closed under it, say) is replaced, not trusted.
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep_forever())

    async def close(self) -> None:
        task, self._sweeper = self._sweeper, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def __len__(self) -> int:
        """How many sessions are held, including expired ones not yet swept."""
        return len(self._data)

    @property
    def loads_now(self) -> bool:
        """True: the sessions are in this process (plain access loads on first use)."""
        return True

    async def load(self, key: str) -> StoredSession | None:
        return self.load_now(key)

    def load_now(self, key: str) -> StoredSession | None:
        """`load` without an await: a dict lookup."""
        return self._read(bytes.fromhex(key))

    def _read(self, k: bytes) -> StoredSession | None:
        entry = self._data.get(k)
        if entry is None:
            return None
        expires_at: float = _unpack(entry)[0]
        if expires_at <= now():
            return None
        # tuple.__new__: the NamedTuple's own __new__ is one more Python call per load.
        return tuple.__new__(StoredSession, (entry[_HEAD:], expires_at))

    async def save(
        self,
        key: str,
        value: bytes,
        ttl: float,
        *,
        user_id: str | None = None,
        replace_only: bool = False,
    ) -> bool:
        return self._write(bytes.fromhex(key), value, ttl, user_id, replace_only)

    def _write(
        self, k: bytes, value: bytes, ttl: float, user_id: str | None, replace_only: bool
    ) -> bool:
        t = now()
        had_live, old_user = self._take_live(k, t)
        if not had_live:
            if replace_only:
                return False
        elif old_user != user_id:
            self._unindex(k, old_user)
        if user_id is not None:
            self._users.setdefault(user_id, set()).add(k)
            self._owners[k] = user_id
        expires_at = t + ttl
        self._data[k] = _pack(expires_at) + value
        if self._heap is not None:
            heapq.heappush(self._heap, (expires_at, k))
        if self.max_entries is not None and len(self._data) > self.max_entries:
            self._evict(self.max_entries)
        return True

    def _take_live(self, k: bytes, t: float) -> tuple[bool, str | None]:
        """Remove `k`'s entry: (True, its owner) if it was live; an expired one is unindexed."""
        old = self._data.pop(k, None)
        if old is None:
            return False, None
        old_user = self._owners.get(k)
        if _unpack(old)[0] <= t:
            self._unindex(k, old_user)
            return False, None
        return True, old_user

    def _evict(self, cap: int) -> None:
        """Drop the entries closest to expiry until `cap` are left."""
        data = self._data
        heap = self._heap
        if heap is None:
            heap = self._heap = [(_expiry(entry), k) for k, entry in data.items()]
            heapq.heapify(heap)
            if not self._warned_full:
                self._warned_full = True
                logger.warning(
                    "memory session backend: max_entries=%d reached; the sessions closest to "
                    "expiry are dropped to make room (their users lose them). Raise "
                    "max_entries (memory://?max_entries=N) or use a shared store such as "
                    "redis:// or postgresql://. (Logged once.)",
                    cap,
                )
        while len(data) > cap:
            expires_at, k = heapq.heappop(heap)
            entry = data.get(k)
            if entry is None or _expiry(entry) != expires_at:
                continue  # a stale pair: the entry was rewritten, touched or deleted since
            del data[k]
            self._unindex(k, self._owners.get(k))
        if len(heap) > 2 * len(data) + 64:  # mostly stale pairs: rebuild (amortised O(1))
            heap[:] = [(_expiry(entry), k) for k, entry in data.items()]
            heapq.heapify(heap)

    async def delete(self, key: str) -> None:
        self._remove(bytes.fromhex(key))

    def _remove(self, k: bytes) -> None:
        old = self._data.pop(k, None)
        if old is not None:
            self._unindex(k, self._owners.get(k))

    async def touch(self, key: str, ttl: float) -> bool:
        k = bytes.fromhex(key)
        entry = self._data.get(k)
        if entry is None or _expiry(entry) <= now():
            return False
        expires_at = now() + ttl
        self._data[k] = _pack(expires_at) + entry[_HEAD:]
        if self._heap is not None:
            heapq.heappush(self._heap, (expires_at, k))
        return True

    def lock(self, key: str, *, timeout: float, lease: float) -> SessionLock:
        if self._entries is None:
            return LocalLock(self, self._locks, key, timeout=timeout)
        return _DictLock(self._entries, self._locks, key, timeout)

    async def list_user_sessions(self, user_id: str) -> Mapping[str, StoredSession]:
        t = now()
        found = {}
        for k in self._users.get(user_id, ()):
            entry = self._data.get(k)
            if entry is not None and _expiry(entry) > t:
                found[k.hex()] = StoredSession(entry[_HEAD:], _expiry(entry))
        return found

    async def delete_user_sessions(self, user_id: str, *, keep: str | None = None) -> int:
        keys = self._users.get(user_id, set())
        kept = bytes.fromhex(keep) if keep is not None else None
        t = now()
        deleted = 0
        for k in list(keys):
            if k == kept:
                continue
            entry = self._data.pop(k, None)
            keys.discard(k)
            self._owners.pop(k, None)
            if entry is not None and _expiry(entry) > t:
                deleted += 1
        if not keys:
            self._users.pop(user_id, None)
        return deleted

    def sweep(self) -> int:
        """Drop every expired entry now; return how many went."""
        t = now()
        expired = [k for k, entry in self._data.items() if _expiry(entry) <= t]
        for k in expired:
            entry = self._data.pop(k, None)
            if entry is not None:
                self._unindex(k, self._owners.get(k))
        if self._heap is not None and (
            self.max_entries is None or len(self._data) <= self.max_entries // 2
        ):
            self._heap = None  # far from the cap again: saves stop paying for the heap
        return len(expired)

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_interval)
            self.sweep()

    def _unindex(self, k: bytes, user_id: str | None) -> None:
        if user_id is None:
            return
        self._owners.pop(k, None)
        keys = self._users.get(user_id)
        if keys is not None:
            keys.discard(k)
            if not keys:
                del self._users[user_id]


class _Entries:
    """A `MemoryBackend`'s own reads and writes by raw key, handed to its locks."""

    __slots__ = ("read", "remove", "write")

    def __init__(
        self,
        read: Callable[[bytes], StoredSession | None],
        write: Callable[[bytes, bytes, float, str | None, bool], bool],
        remove: Callable[[bytes], None],
    ) -> None:
        self.read = read
        self.write = write
        self.remove = remove


class _DictLock(_KeyedMutex, SessionLock):
    """`LocalLock` for a `MemoryBackend`: the same exclusion, without the store's coroutines.

    `LocalLock` awaits the backend's `load`, `save` and `delete`; the data is in
    this process, so this lock reads and writes it with plain calls instead, and
    works out the key's bytes once for the load and the write.
    """

    __slots__ = ("_entries", "_k")

    def __init__(
        self, entries: _Entries, registry: dict[str, Any], key: str, timeout: float
    ) -> None:
        self._entries = entries
        self._k = b""
        # `_KeyedMutex`'s slots, set here: one Python call fewer per lock.
        self._registry = registry
        self._key = key
        self._timeout = timeout
        self._held = None

    async def acquire(self) -> StoredSession | None:
        if not self._try_take():
            await self._take()
        try:
            self._k = bytes.fromhex(self._key)
            return self._entries.read(self._k)
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
            return self._entries.write(
                self._k or bytes.fromhex(self._key), value, ttl, user_id, replace_only
            )
        finally:
            self._give_back()

    async def delete_and_release(self) -> None:
        try:
            self._entries.remove(self._k or bytes.fromhex(self._key))
        finally:
            self._give_back()

    async def release(self) -> None:
        self._give_back()

    async def extend(self, lease: float) -> None:
        """In-process locks have no lease; nothing to extend."""
