"""`LockStore`: the narrow interface through which a `RedisLock` talks to its backend.

`RedisLock` needs a handful of the backend's capabilities (the lock scripts,
the fenced save and delete, the in-process turns, the cross-process wake-up,
the expiry conversion, background tasks) and nothing else. The backend hands
them over in one object built from its own members, so the lock never reads
the backend's private state and the backend can change how it keeps that
state without touching the lock.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from sanic_cookies import KeyTurns, Turn

from ._client import Scripts
from ._keys import KeySpace

__all__ = ["FencedDelete", "FencedSave", "LockStore"]


class FencedSave(Protocol):
    """The backend's save script, fenced by a lock token (and releasing the lock)."""

    def __call__(
        self,
        key: str,
        value: bytes,
        ttl_ms: int,
        *,
        user_id: str | None,
        replace_only: bool,
        token: str | None,
        index_first: bool,
    ) -> Awaitable[bool]: ...


class FencedDelete(Protocol):
    """The backend's delete script, fenced by a lock token (and releasing the lock)."""

    def __call__(self, key: str, *, token: str | None) -> Awaitable[None]: ...


class LockStore:
    """What a `RedisLock` may do with its backend: one object, built by the backend.

    Args:
        label: The backend's name for error messages.
        keys: The backend's key space (data and lock key of a session).
        turns: The backend's in-process turns per session key.
        scripts: Returns the backend's current scripts (rebuilt after a reconnect).
        watching: Returns a context manager that yields an `asyncio.Event` set at
            each release of the lock whose channel is given (None: poll instead).
        save: The fenced save (`token` given: checked and released in one step).
        delete: The fenced delete.
        expires_at: Converts a PTTL reply (ms) to an expiry on the library's clock.
        spawn: Runs a coroutine in the background, awaited at `close`.
        index_safety_ms: How much earlier (ms) than it does a user-index entry is
            counted as ending.
    """

    __slots__ = (
        "_scripts",
        "delete",
        "expires_at",
        "index_safety_ms",
        "keys",
        "label",
        "save",
        "spawn",
        "turns",
        "watching",
    )

    def __init__(
        self,
        *,
        label: str,
        keys: KeySpace,
        turns: KeyTurns,
        scripts: Callable[[], Scripts],
        watching: Callable[[bytes], AbstractAsyncContextManager[Any]],
        save: FencedSave,
        delete: FencedDelete,
        expires_at: Callable[[int], float],
        spawn: Callable[[Coroutine[Any, Any, None]], None],
        index_safety_ms: int,
    ) -> None:
        self.label = label
        self.keys = keys
        self.turns = turns
        self._scripts = scripts
        self.watching = watching
        self.save = save
        self.delete = delete
        self.expires_at = expires_at
        self.spawn = spawn
        self.index_safety_ms = index_safety_ms

    def lock_keys(self, key: str, token: str) -> list[str]:
        """The keys the acquire script takes: the session's data, its lock, `token`'s void mark."""
        keys = self.keys
        return [keys.data(key), keys.lock(key), keys.void(key, token)]

    async def take_turn(self, key: str, *, within: float, hold: float) -> Turn:
        """Wait for this process's turn on `key` (see `KeyTurns.take`)."""
        return await self.turns.take(key, within=within, hold=hold)

    async def acquire(self, keys: list[str], token: str, lease_ms: int) -> Any:
        """Run the acquire script: the session and its expiry if the lock is ours, else the pttl."""
        return await self._scripts().acquire(keys, [token, lease_ms])

    async def release(self, key: str, token: str) -> Any:
        """Run the compare-and-delete release script on the lock of `key`."""
        return await self._scripts().release([self.keys.lock(key)], [token])

    async def void(self, key: str, token: str, keep_ms: int) -> Any:
        """Run the void script: free `key`'s lock if `token` holds it, and void `token`."""
        keys = self.keys
        return await self._scripts().void([keys.lock(key), keys.void(key, token)], [token, keep_ms])

    async def extend(self, key: str, token: str, lease_ms: int) -> Any:
        """Run the extend script: truthy if the lease of `key`'s lock was still ours."""
        return await self._scripts().extend([self.keys.lock(key)], [token, lease_ms])
