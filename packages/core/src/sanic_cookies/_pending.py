"""The deletes a secondary backend missed, kept in the primary so that a restart keeps them.

`MultiBackend` records here every delete a secondary missed (a logout while the
copy was unreachable) and retries it until it succeeds. The record lives in the
primary store under a reserved key, written through the ordinary `Backend` API
under the primary's own lock, so that another worker or a restarted process
(over a durable primary such as Redis or PostgreSQL) finds it and finishes the
job. An in-process copy serves the fast paths; the primary's is the one that counts.

The reserved key is the SHA-256 of a string that is not a session id (it has
spaces), so no cookie can ever name it, and it is saved without a user, so no
user's session list shows it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import msgspec

from ._backend import Backend, now

__all__ = ["MAX_PENDING_DELETES", "PendingDeletes"]

#: Most missed deletes remembered per secondary; the oldest are forgotten beyond it.
MAX_PENDING_DELETES = 10_000

# Seconds to wait for the record's lock, and its lease: the record is small and
# its holder does one load and one save.
_LOCK_TIMEOUT = 5.0
_LOCK_LEASE = 10.0


class _Record(msgspec.Struct, frozen=True):
    # store key -> when to give up on it (epoch seconds): by then the copy has expired.
    keys: dict[str, float] = {}
    # user id -> when to give up: a "log out everywhere" of that user the copy missed.
    users: dict[str, float] = {}


_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(_Record).decode


def reserved_key(label: str) -> str:
    """The primary's key for the missed deletes of the secondary labelled `label`."""
    return hashlib.sha256(f"sanic-cookies pending deletes of {label}".encode()).hexdigest()


class PendingDeletes:
    """The missed deletes of one secondary: an in-process view of the primary's record.

    Args:
        label: The secondary's label (its record's key is derived from it).

    Attributes:
        key: The reserved key of the record in the primary.
        keys: Session keys whose copy may still exist, with when to give up on each.
        users: User ids whose "log out everywhere" the copy missed, likewise.
    """

    def __init__(self, label: str) -> None:
        self.key = reserved_key(label)
        self.keys: dict[str, float] = {}
        self.users: dict[str, float] = {}

    def __bool__(self) -> bool:
        return bool(self.keys or self.users)

    async def refresh(self, primary: Backend) -> None:
        """Add what the primary's record holds (another process's or an earlier run's misses)."""
        stored = await primary.load(self.key)
        record = _read(stored.value) if stored is not None else _Record()
        self.keys = _union(record.keys, self.keys)
        self.users = _union(record.users, self.users)
        self._merge({}, {}, set(), set(), now())

    async def sync(
        self,
        primary: Backend,
        *,
        add_keys: Iterable[str] = (),
        add_users: Iterable[str] = (),
        done_keys: Iterable[str] = (),
        done_users: Iterable[str] = (),
        keep_for: float = 0.0,
    ) -> None:
        """Merge this process's changes with the primary's record, under the primary's lock.

        The result (what other processes recorded too, minus what is done or past
        its time) becomes both the stored record and this object's view. If the
        primary fails, the additions are still kept in this process and the error
        is raised.

        Args:
            primary: The store that keeps the record.
            add_keys: Session keys a delete of which was missed now.
            add_users: User ids a "log out everywhere" of which was missed now.
            done_keys: Keys deleted from the copy since.
            done_users: User ids cleaned up in the copy since.
            keep_for: Seconds from now to keep retrying the additions.
        """
        t = now()
        until = t + keep_for
        added_keys = dict.fromkeys(add_keys, until)
        added_users = dict.fromkeys(add_users, until)
        done_k, done_u = set(done_keys), set(done_users)
        # First in this process: a primary that fails below must not lose the miss.
        self._merge(added_keys, added_users, done_k, done_u, t)
        lock = primary.lock(self.key, timeout=_LOCK_TIMEOUT, lease=_LOCK_LEASE)
        try:
            stored = await lock.acquire()
            record = _read(stored.value) if stored is not None else _Record()
            self.keys = _union(record.keys, self.keys)
            self.users = _union(record.users, self.users)
            self._merge({}, {}, done_k, done_u, t)
            if self:
                ttl = max(1.0, max((*self.keys.values(), *self.users.values())) - t)
                await lock.save_and_release(_encode(_Record(self.keys, self.users)), ttl)
            elif stored is not None:
                await lock.delete_and_release()
        finally:
            await lock.release()

    def _merge(
        self,
        add_keys: dict[str, float],
        add_users: dict[str, float],
        done_keys: set[str],
        done_users: set[str],
        t: float,
    ) -> None:
        for mine, added, done in (
            (self.keys, add_keys, done_keys),
            (self.users, add_users, done_users),
        ):
            for name, until in added.items():
                # Re-inserted last: the newest miss is the last one forgotten at the cap.
                mine[name] = max(until, mine.pop(name, 0.0))
            for name in done:
                mine.pop(name, None)
            for name in [n for n, until in mine.items() if until <= t]:
                del mine[name]
        while len(self.keys) > MAX_PENDING_DELETES:
            del self.keys[next(iter(self.keys))]
        while len(self.users) > MAX_PENDING_DELETES:
            del self.users[next(iter(self.users))]


def _read(value: bytes) -> _Record:
    try:
        return _decode(value)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return _Record()  # unreadable: start again from this process's view


def _union(stored: dict[str, float], mine: dict[str, float]) -> dict[str, float]:
    """Both sets of entries, the stored ones first, each with the later of its two times."""
    merged = dict(stored)
    for name, until in mine.items():
        merged[name] = max(until, merged.get(name, 0.0))
    return merged
