"""`SessionDict`: one request's view of one session.

It loads nothing until the handler asks (`async with`, `await load()`, or plain
access on a backend that needs no I/O to load), so a request that never uses its
session costs no store call (unless the `autoload` setting is on). It writes only when
the encoded data, the login or the id changed, or the sliding expiry is due.

Its parts, one idea each: `SessionState` (what the request knows of its session),
`SessionWrites` (plan and write), `SessionLoads` (load, with or without the lock) and,
here, the mapping and the public operations. Server-side or client-side storage is
the session's `SessionSide`, chosen once when the session opens.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterator, MutableMapping
from types import FrameType
from typing import TYPE_CHECKING, Any, Generic, cast

from ._backend import now
from ._errors import SessionSerializationError
from ._record import AuthInfo, encode_data
from ._schema import S, model_of
from ._session_load import SessionLoads

if TYPE_CHECKING:
    from ._session import Session

__all__ = ["SessionDict"]

UNLOCKED_ACCESS = (
    "Session {name!r} used outside `async with request.ctx.{name}:`; a concurrent request "
    "may overwrite this change. Use the lock, or pass warn_lock=False to silence this."
)

# Frames of these modules are skipped when a warning names the line that used the session
# (``sess.get(...)`` reaches `_access` through the Mapping mixins).
_INTERNAL_MODULES = frozenset({__name__, "_collections_abc", "collections.abc"})


def _caller() -> tuple[int, FrameType | None]:
    """The first frame outside us, seen from `_access`, and its `warnings.warn` stacklevel."""
    frame: FrameType | None = sys._getframe(2)  # _access's caller (level 1 is _access itself)
    level = 2
    while frame is not None and frame.f_globals.get("__name__") in _INTERNAL_MODULES:
        frame = frame.f_back
        level += 1
    return level, frame


class SessionDict(SessionLoads, MutableMapping[str, Any], Generic[S]):
    """The session of one request, a mutable mapping of str to JSON-encodable values.

    Use it as ``async with request.ctx.session as sess:``: that takes the
    session's lock, loads the current data, and on a clean exit writes it back
    if it changed and releases the lock (always, also when the block raises;
    an exception discards the block's changes). ``await session.load()`` loads
    without the lock, for read-only use.
    """

    # -- session operations ------------------------------------------------------

    def regenerate(self) -> None:
        """Give the session a new id at its next write, keeping its data.

        The old id stops working when the new one is written. Call it on any
        change of privilege (`AuthSession.login_user` does).
        """
        self._require_loaded()
        self._rotate = True

    def destroy(self) -> None:
        """End the session: its data and login are deleted and the cookie expired at write."""
        self._require_loaded()
        assert self._data is not None
        self._data.clear()
        self._auth = None
        self._destroyed = True

    @property
    def sid(self) -> str | None:
        """The session id the client holds (or will hold after this response); None if new."""
        if self._side is None:
            self._resolve()
        return self._new_cookie_value or self._sid

    @property
    def name(self) -> str:
        """The name of the session this request's dict belongs to (``request.ctx.<name>``)."""
        return self._session.name

    def is_of(self, session: Session) -> bool:
        """Whether this is a request's dict of `session` (and not of another on the app)."""
        return self._session is session

    @property
    def is_loaded(self) -> bool:
        """True once the session's data is loaded (`load`, ``async with``, plain access)."""
        return self._data is not None

    @property
    def is_locked(self) -> bool:
        """True inside this session's own ``async with`` block (it holds the lock)."""
        return self._in_block

    async def peek(self, key: str) -> Any:
        """The value of `key` (None if absent), read without taking the lock.

        Loads the session read-only if it is not loaded yet, and reads without the
        unlocked-access warning: for a quick "is there anything?" before locking,
        where nothing is written from what is read.
        """
        if self._data is None:
            await self.load()
        assert self._data is not None
        return self._data.get(key)

    @property
    def is_new(self) -> bool:
        """True if nothing was stored for this session when it was loaded."""
        self._require_loaded()
        return self._stored is None

    @property
    def created(self) -> float:
        """When this session was created (epoch seconds)."""
        self._require_loaded()
        return self._created

    @property
    def is_modified(self) -> bool:
        """True if the data differs from what was loaded (or last written); False before loading.

        Compared by value, so a change to a nested list or dict counts too.
        """
        if self._data is None:
            return False
        try:
            return encode_data(self._data) != self._orig
        except SessionSerializationError:
            return True  # holds a value that was never stored, so it changed

    @property
    def auth(self) -> AuthInfo | None:
        """The login recorded in this session (managed by `AuthSession`)."""
        self._require_loaded()
        return self._auth

    def set_auth(
        self,
        auth: AuthInfo | None,
        *,
        ttl: float | None = None,
        persistent: bool | None = None,
        lifetime: float | None = None,
    ) -> None:
        """Record a login (or None for none), optionally with its own timeouts.

        This is the hook `AuthSession` uses; applications call `login_user` instead.
        """
        self._require_loaded()
        self._auth = auth
        if ttl is not None:
            self._ttl = ttl
        if persistent is not None:
            self._persistent = persistent
        if lifetime is not None:
            self._deadline = now() + lifetime
        self._meta_changed = True

    # -- MutableMapping ----------------------------------------------------------

    def _require_loaded(self) -> None:
        if self._data is None:
            self._load_now()

    def _access(self) -> MutableMapping[str, Any]:
        if self._data is None:
            self._load_now()
        side = self._side
        if not self._in_block and side is not None and side.warn_lock:
            level, frame = _caller()
            # One warning per line of the handler and request: `sess.items()` or
            # `sess["n"] = sess.get("n", 0) + 1` reach us several times from one line.
            site = (frame.f_code.co_filename, frame.f_lineno) if frame is not None else ("", 0)
            warned = self._warned
            if warned is None:
                warned = self._warned = set()
            if site not in warned:
                warned.add(site)
                warnings.warn(
                    UNLOCKED_ACCESS.format(name=self._session.name),
                    RuntimeWarning,
                    stacklevel=level,
                )
        assert self._data is not None
        return self._data

    @property
    def data(self) -> S:
        """The data as the session's schema, a `msgspec.Struct` (``Session(app, schema=...)``).

        The same data as the mapping, not a copy: ``sess.data.cart`` is ``sess["cart"]``,
        and a change through either (``sess.data.cart.append(x)`` too) is written like
        any change. Validated against the schema when written. See docs/typed-sessions.md.

        Raises:
            ConfigurationError: The session has no schema.
        """
        return cast("S", model_of(self._access(), self._session.name))

    def clear(self) -> None:
        """Remove every key (a typed session's fields go back to their defaults).

        Key by key through ``del`` (as `MutableMapping.clear`, which would never end on a
        typed session: its fields cannot go), so a subclass's ``__delitem__`` still decides.
        """
        for key in list(self._access()):
            del self[key]

    def __getitem__(self, key: str) -> Any:
        return self._access()[key]

    def get(self, key: str, default: Any = None) -> Any:
        """The value of `key`, or `default` if absent (as `dict.get`)."""
        return self._access().get(key, default)

    def __setitem__(self, key: str, value: Any) -> None:
        self._access()[key] = value

    def __delitem__(self, key: str) -> None:
        del self._access()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._access())

    def __len__(self) -> int:
        return len(self._access())

    def __contains__(self, key: object) -> bool:
        return key in self._access()

    def __repr__(self) -> str:
        state = "unloaded" if self._data is None else f"{len(self._data)} keys"
        return f"<SessionDict {self._session.name!r} {self._log_id} {state}>"
