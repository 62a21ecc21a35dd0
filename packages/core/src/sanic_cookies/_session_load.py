"""Loading a session: read-only (`load`, plain access) or under its lock (``async with``).

`SessionLoads` is the part of `SessionDict` that loads: without the lock (`load`,
`autoload`, the first plain access on a backend that loads without I/O) and with it
(``async with``, which writes on a clean exit and always releases).
"""

from __future__ import annotations

from types import TracebackType
from typing import Any, Self

from ._errors import BackendError, BackendUnavailable, SessionNotLoaded
from ._record import encode_data
from ._schema import decoded
from ._session_write import SessionWrites

__all__ = ["SessionLoads"]

NOT_LOADED = (
    "Session {name!r} is not loaded, and its backend {backend} needs I/O to load it. Either "
    "use `async with request.ctx.{name} as sess:` (locked) or "
    "`await request.ctx.{name}.load()` (read-only) first, or turn on autoload "
    "({setting} = True, or {cls}(..., autoload=True)) to load it in the request "
    "middleware whenever the request carries a session cookie."
)


class SessionLoads(SessionWrites):
    """Loads the session, with or without its lock."""

    async def load(self) -> Self:
        """Load the session without locking it (one store round trip, none if new).

        Reads after this emit a `RuntimeWarning` unless `warn_lock` is off.
        Loading twice does nothing the second time.
        """
        if self._data is None:
            side = self._side or self._resolve()
            sid = self._sid
            self._adopt(
                None if sid is None else await side.load(sid, self._key or self._sid_key(), self)
            )
        return self

    async def autoload(self) -> None:
        """Load now if the request carries a session cookie (the `autoload` setting).

        Run by the request middleware. A request without a session cookie costs no
        store call; a backend that loads without I/O loads on first use instead. A
        store failure is kept and raised (a 503) only if the handler then uses the
        session without awaiting it.
        """
        side = self._side or self._resolve()
        if self._sid is None or side.loads_now:
            return
        try:
            await self.load()
        except BackendError as exc:
            self._load_error = exc

    def _load_now(self) -> None:
        """Load on first plain access, without I/O; or say how to load it if that cannot be."""
        side = self._side or self._resolve()
        if self._load_error is not None:
            raise BackendUnavailable() from self._load_error  # logged when it happened
        sid = self._sid
        if side.loads_now:
            self._adopt(
                None if sid is None else side.load_now(sid, self._key or self._sid_key(), self)
            )
        elif sid is None and side.autoload:
            self._adopt(None)  # autoload saw no session cookie: a new session, nothing to read
        else:
            session = self._session
            raise SessionNotLoaded(
                NOT_LOADED.format(
                    name=session.name,
                    backend=side.backend.label,
                    setting=session.config_prefix + "AUTOLOAD",
                    cls=type(session).__name__,
                )
            )

    # -- the lock ----------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._in_block:
            raise RuntimeError("This session is already locked by an enclosing `async with`.")
        # Plain changes made before the block (0.4 code being converted line by line)
        # are carried into it, on top of the data loaded under the lock.
        pending = None if self._data is None else self._unlocked_changes()
        self._data = None  # reload under the lock: the unlocked copy may be stale
        side = self._side or self._resolve()
        sid = self._sid
        if sid is None:
            self._adopt(None)  # no cookie: nobody else can know this session, nothing to lock
        else:
            # Held from before the acquire: if the store granted the lock and then failed
            # (a lost reply), releasing gives it back now instead of at the lease's end.
            lock = self._lock = side.backend.lock(
                self._key or self._sid_key(), timeout=side.lock_timeout, lease=side.lock_lease
            )
            try:
                stored = await side.acquire(lock, sid, self)
            except BaseException:
                await self._release()
                raise
            self._adopt(stored)
        if pending is not None:
            self._apply(*pending)
        self._in_block = True
        return self

    def _unlocked_changes(self) -> tuple[dict[str, Any], set[str]] | None:
        """The keys set and removed outside `async with` since the load; None if none."""
        assert self._data is not None
        if encode_data(self._data) == self._orig:
            return None
        before = decoded(self._data, self._orig)
        changed = {k: v for k, v in self._data.items() if k not in before or before[k] != v}
        return changed, set(before) - set(self._data)

    def _apply(self, changed: dict[str, Any], removed: set[str]) -> None:
        assert self._data is not None
        self._data.update(changed)
        for key in removed:
            self._data.pop(key, None)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._in_block = False
        try:
            if exc_type is None:
                try:
                    await self._write()
                except BaseException:
                    # Not written (bad value, store down): the response must not retry it
                    # without the lock.
                    self._discard()
                    raise
            else:
                self._discard()
        finally:
            if self._lock is not None:
                await self._release()

    async def extend_lock(self, lease: float) -> None:
        """Extend the held lock's lease to `lease` seconds from now (for long handlers)."""
        if self._lock is None:
            if self._in_block:
                return  # a new session (no cookie yet): nobody else can know it, nothing locked
            raise RuntimeError("extend_lock() needs the session locked by `async with`.")
        side = self._side
        assert side is not None
        await side.calls.call("extend", self._lock.extend(lease), self)

    def _discard(self) -> None:
        """Forget the block's changes (it raised): back to the state as loaded or last written."""
        self._mismatch = False  # `_adopt` sets it again if the record still does not match
        self._adopt(self._stored)
        self._rotate = self._destroyed = self._meta_changed = False
