"""`FaultyBackend`: wrap any backend and make it fail on demand, for fault-injection tests."""

from __future__ import annotations

import asyncio
import copy
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any, Literal, Self, TypeVar

from sanic_cookies._backend import Backend, ClientSideBackend, SessionLock, StoredSession
from sanic_cookies._discovery import backend_from_url
from sanic_cookies._errors import ConfigurationError

__all__ = [
    "BACKEND_OPERATIONS",
    "LOCK_OPERATIONS",
    "OPERATIONS",
    "Fault",
    "FaultyBackend",
    "InjectedFault",
]

T = TypeVar("T")

#: Operations of the backend itself.
BACKEND_OPERATIONS = (
    "open",
    "close",
    "load",
    "save",
    "touch",
    "delete",
    "list_user_sessions",
    "delete_user_sessions",
)
#: Operations of the locks it hands out.
LOCK_OPERATIONS = ("acquire", "save_and_release", "delete_and_release", "release", "extend")
#: Every operation a fault can be injected into.
OPERATIONS = BACKEND_OPERATIONS + LOCK_OPERATIONS

When = Literal["before", "after"]


class InjectedFault(ConnectionError):
    """The default exception of an injected fault (a `ConnectionError`, as a dead store gives)."""


class Fault:
    """One armed fault, from `FaultyBackend.fail` or `FaultyBackend.delay`.

    Also a context manager that disarms the fault on exit::

        with faulty.fail("save", times=None):
            ...   # every save fails in here

    Attributes:
        operation: The operation it hits.
        fired: How many calls it has hit so far.
    """

    def __init__(
        self,
        operation: str,
        *,
        exc: BaseException | None,
        times: int | None,
        when: When,
        delay: float,
    ) -> None:
        self.operation = operation
        self.exc = exc
        self.times = times
        self.when = when
        self.delay = delay
        self.fired = 0
        self.armed = True

    @property
    def exhausted(self) -> bool:
        """True once it has hit `times` calls (never for ``times=None``)."""
        return self.times is not None and self.fired >= self.times

    def disarm(self) -> None:
        """Stop hitting calls."""
        self.armed = False

    async def _hit(self) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.exc is not None:
            raise copy.copy(self.exc)  # a fresh instance: no traceback piles up across hits

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.disarm()

    def __repr__(self) -> str:
        times = "always" if self.times is None else f"{self.fired}/{self.times}"
        return f"<Fault {self.operation} {self.when} {self.exc!r} {times}>"


class FaultyBackend(Backend):
    """Wraps `inner` and fails any of its operations on demand.

    Every call passes through to `inner` unless a fault is armed for its
    operation (see `OPERATIONS`)::

        faulty = FaultyBackend(MemoryBackend())
        Session(app, backend=faulty)
        faulty.fail("save", times=1, exc=ConnectionError("injected"))

    A fault raised ``when="before"`` the inner call leaves the store untouched
    (the store was unreachable); ``when="after"`` lets the inner call complete
    and then raises (the store did it, but the answer was lost). The locks it
    hands out are `inner`'s, wrapped the same way; the loads a lock does
    internally are part of ``acquire``, not of ``load``.

    Args:
        inner: The backend to wrap (not a client-side one).
        name: Its label in logs and metrics (default: `inner`'s label).

    Attributes:
        inner: The wrapped backend (read it to check what was really stored).
        calls: How many times each operation was called, faults included.
    """

    def __init__(self, inner: Backend, *, name: str | None = None) -> None:
        if isinstance(inner, ClientSideBackend):
            raise ConfigurationError("FaultyBackend wraps server-side backends only")
        self.inner = inner
        self._label = name or inner.label
        self.calls: Counter[str] = Counter()
        self._faults: list[Fault] = []
        # Capabilities are the inner backend's; they are class attributes on
        # Backend, so an instance attribute shadows them per object.
        vars(self)["supports_user_index"] = inner.supports_user_index
        vars(self)["per_process"] = inner.per_process
        vars(self)["expires_entries_itself"] = inner.expires_entries_itself

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """``faulty+<url>``: wrap the backend of ``<url>`` (built with `options`)."""
        return cls(backend_from_url(url.removeprefix("faulty+"), **options))

    @property
    def label(self) -> str:
        return self._label

    # -- arming ------------------------------------------------------------------

    def fail(
        self,
        operation: str,
        *,
        times: int | None = 1,
        exc: BaseException | None = None,
        when: When = "before",
    ) -> Fault:
        """Make the next `times` calls of `operation` raise `exc` (None: every call).

        Args:
            operation: One of `OPERATIONS`.
            times: How many calls to hit; None for all until disarmed.
            exc: The exception to raise (default: `InjectedFault`).
            when: ``"before"`` the inner call (nothing happens in the store) or
                ``"after"`` it (the store changed; the caller sees an error).
        """
        if exc is None:
            exc = InjectedFault(f"injected fault in {operation} of {self.label}")
        return self._arm(operation, exc=exc, times=times, when=when, delay=0.0)

    def delay(self, operation: str, seconds: float, *, times: int | None = 1) -> Fault:
        """Make the next `times` calls of `operation` take `seconds` longer (then succeed)."""
        return self._arm(operation, exc=None, times=times, when="before", delay=seconds)

    def clear(self) -> None:
        """Disarm every fault."""
        for fault in self._faults:
            fault.disarm()
        self._faults.clear()

    def _arm(
        self,
        operation: str,
        *,
        exc: BaseException | None,
        times: int | None,
        when: When,
        delay: float,
    ) -> Fault:
        if operation not in OPERATIONS:
            raise ValueError(f"Unknown operation {operation!r}; one of {', '.join(OPERATIONS)}")
        if times is not None and times < 1:
            raise ValueError(f"times must be at least 1 or None, got {times}")
        if when not in ("before", "after"):
            raise ValueError(f"when must be 'before' or 'after', got {when!r}")
        fault = Fault(operation, exc=exc, times=times, when=when, delay=delay)
        self._faults.append(fault)
        return fault

    def _next_fault(self, operation: str) -> Fault | None:
        self._faults = [f for f in self._faults if f.armed and not f.exhausted]
        for fault in self._faults:
            if fault.operation == operation:
                fault.fired += 1
                return fault
        return None

    async def _run(self, operation: str, call: Callable[[], Awaitable[T]]) -> T:
        self.calls[operation] += 1
        fault = self._next_fault(operation)
        if fault is not None and fault.when == "before":
            await fault._hit()
        result = await call()
        if fault is not None and fault.when == "after":
            await fault._hit()
        return result

    # -- the Backend contract ----------------------------------------------------

    async def open(self) -> None:
        await self._run("open", self.inner.open)

    async def close(self) -> None:
        await self._run("close", self.inner.close)

    async def cleanup(self) -> int | None:
        """The inner backend's sweep (no fault can be injected into it)."""
        return await self.inner.cleanup()

    async def load(self, key: str) -> StoredSession | None:
        return await self._run("load", lambda: self.inner.load(key))

    async def save(
        self,
        key: str,
        value: bytes,
        ttl: float,
        *,
        user_id: str | None = None,
        replace_only: bool = False,
    ) -> bool:
        return await self._run(
            "save",
            lambda: self.inner.save(key, value, ttl, user_id=user_id, replace_only=replace_only),
        )

    async def delete(self, key: str) -> None:
        await self._run("delete", lambda: self.inner.delete(key))

    async def touch(self, key: str, ttl: float) -> bool:
        return await self._run("touch", lambda: self.inner.touch(key, ttl))

    def lock(self, key: str, *, timeout: float, lease: float) -> SessionLock:
        return _FaultyLock(self, self.inner.lock(key, timeout=timeout, lease=lease))

    async def list_user_sessions(self, user_id: str) -> Mapping[str, StoredSession]:
        return await self._run("list_user_sessions", lambda: self.inner.list_user_sessions(user_id))

    async def delete_user_sessions(self, user_id: str, *, keep: str | None = None) -> int:
        return await self._run(
            "delete_user_sessions", lambda: self.inner.delete_user_sessions(user_id, keep=keep)
        )


class _FaultyLock(SessionLock):
    def __init__(self, backend: FaultyBackend, inner: SessionLock) -> None:
        self._backend = backend
        self._inner = inner

    async def acquire(self) -> StoredSession | None:
        return await self._backend._run("acquire", self._inner.acquire)

    async def save_and_release(
        self,
        value: bytes,
        ttl: float,
        *,
        user_id: str | None = None,
        replace_only: bool = False,
    ) -> bool:
        return await self._backend._run(
            "save_and_release",
            lambda: self._inner.save_and_release(
                value, ttl, user_id=user_id, replace_only=replace_only
            ),
        )

    async def delete_and_release(self) -> None:
        await self._backend._run("delete_and_release", self._inner.delete_and_release)

    async def release(self) -> None:
        await self._backend._run("release", self._inner.release)

    async def extend(self, lease: float) -> None:
        await self._backend._run("extend", lambda: self._inner.extend(lease))
