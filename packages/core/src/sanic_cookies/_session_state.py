"""`SessionState`: what one request knows of its session, and how it comes to know it.

The state of `SessionDict`, shared by its parts (`_session_load`, `_session_write`):
the cookie the request carries, worked out on first use, and the record as loaded or
last written. Nothing here makes a store call.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any

from ._backend import SessionLock, StoredSession, now
from ._ids import log_id, store_key
from ._record import EMPTY_DATA, AuthInfo, SessionRecord, decode_data, decode_record
from ._request_cookie import cookie_value as read_cookie
from ._session_side import SessionSide

if TYPE_CHECKING:
    from sanic.compat import Header

    from ._session import Session

__all__ = ["CookieUpdate", "SessionState"]

logger = logging.getLogger("sanic_cookies")


class CookieUpdate:
    """What the response must do with the session cookie: set it, or expire it.

    Attributes:
        value: The cookie's new value (``""`` to expire it).
        max_age: Its Max-Age in seconds (0 expires it; None: a browser-session cookie).
    """

    __slots__ = ("max_age", "value")

    def __init__(self, value: str, max_age: int | None) -> None:
        self.value = value
        self.max_age = max_age


#: Expire the cookie (the session ended).
EXPIRE_COOKIE = CookieUpdate("", 0)

# What the response must do with the cookie, as the request goes.
KEEP_COOKIE, SET_COOKIE, DELETE_COOKIE = 0, 1, 2


class SessionState:
    """The state of one request's session (the base of `SessionDict`).

    Speed: every request gets one, most never use it. The state that starts out the
    same for all is class-level defaults (an instance only stores what changes), and
    what comes from the cookie (reading it, checking the id, hashing it into a store
    key) is worked out by `_resolve` when the session is first used. (Not a
    `__getattr__`: a class that has one pays for it on every attribute read.)
    """

    # The two fields every request sets are slots: a request that never uses its
    # session makes no instance dict. The request's headers are kept to read the cookie
    # from if it was not given. (Not the request itself: request -> ctx -> session ->
    # request would be a reference cycle, leaving every request to the cyclic garbage
    # collector.)
    __slots__ = ("__dict__", "_headers", "_session")
    _session: Session
    _headers: Header | None

    _data: MutableMapping[str, Any] | None = None  # a dict, or a typed session's SchemaData
    _orig: bytes = EMPTY_DATA
    _stored: StoredSession | None = None  # what the store held at load
    _record: SessionRecord | None = None
    _auth: AuthInfo | None = None
    _created: float = 0.0
    _deadline: float = 0.0
    _meta_changed: bool = False
    # A typed session whose stored record did not match its schema: its fields are the
    # defaults, and the record is kept as it is unless the request changes the session.
    _mismatch: bool = False
    _rotate: bool = False
    _destroyed: bool = False
    _lock: SessionLock | None = None
    _in_block: bool = False
    _failed: bool = False  # a store call failed: the response must not touch the store again
    _cookie_action: int = KEEP_COOKIE  # what the response must do with the cookie
    _new_cookie_value: str | None = None  # a new id or token, once written
    _wrote: bool = False  # this request stored the session (its expiry needs no refresh)
    # No Set-Cookie can reach the client any more (a websocket; a streamed response sent).
    _cookie_final: bool = False
    _load_error: BaseException | None = None  # the autoload's store failure, for plain access
    _warned: set[tuple[str, int]] | None = None  # code lines already warned about (this request)
    #: True once the session was loaded or locked: the response has work to do.
    in_use: bool = False
    # Worked out on first use (see `_resolve`).
    _side: SessionSide | None = None
    _cookie_value: str | None = None
    _sid: str | None = None
    # `_sid`'s store key: None without an id, and for a token that a client-side write
    # of this request made until something needs it (`_sid_key`): it is seldom locked
    # again by the request that wrote it.
    _key: str | None = None
    _ttl: float = 0.0
    _persistent: bool = True

    def __init__(self, session: Session, headers: Header | None = None) -> None:
        self._session = session
        self._headers = headers  # None: no cookie (a session made outside a request)

    def _resolve(self) -> SessionSide:
        """Read the cookie and work out the id and store key (once per request)."""
        side = self._side = self._session.side
        headers = self._headers
        if headers is not None:
            # Exact-name lookup: Sanic's cookies.get() would also accept a
            # __Host-/__Secure- variant, which is not the cookie we set.
            # (What request.cookies holds, parsed the same way.)
            self._headers = None
            self._cookie_value = read_cookie(headers.getone("cookie", ""), side.cookie_key)
        sid = self._sid = side.sid_of(self._cookie_value)
        if sid is not None:
            self._key = store_key(sid)
        return side

    def _sid_key(self) -> str:
        """The store key of `_sid`, which must be set: `_key`, hashed now if left for later.

        Hot paths write ``self._key or self._sid_key()``: no call when it is known.
        """
        key = self._key
        if key is None:
            assert self._sid is not None
            key = self._key = store_key(self._sid)
        return key

    def _adopt(self, stored: StoredSession | None) -> None:
        """Take `stored` as this session's state, or start a fresh one."""
        t = now()
        self.in_use = True
        if stored is not None:
            record = decode_record(stored.value)
            if record is not None and record.deadline > t and stored.expires_at > t:
                try:
                    data = decode_data(record.data)
                except ValueError:
                    pass
                else:
                    schema = self._session.schema
                    if schema is None:
                        self._data, self._orig = data, bytes(record.data)
                    else:  # validated: a record that no longer matches starts from the defaults
                        typed, self._orig = schema.load(data, self)
                        self._data, self._mismatch = typed, typed.mismatch
                    self._stored = stored
                    self._record = record
                    self._auth = record.auth
                    self._created = record.created
                    self._deadline = record.deadline
                    self._ttl = record.ttl
                    self._persistent = record.persistent
                    return
            logger.debug("session %s: unreadable or expired record ignored", self._log_id)
        self._start_fresh(t)

    def _start_fresh(self, t: float) -> None:
        """A new session, created at `t`: empty, with the settings' timeouts."""
        side = self._side
        assert side is not None
        self._stored = self._record = self._auth = None
        schema = self._session.schema  # (inline: every new session starts here)
        self._data = {} if schema is None else schema.new()
        self._orig = EMPTY_DATA
        self._created = t
        self._deadline = t + side.lifetime
        self._ttl = side.expiry
        self._persistent = side.persistent

    def _forget_all(self) -> None:
        """The session ended: nothing stored, a fresh empty one, the cookie expired if sent."""
        self._stored = self._record = self._auth = None
        schema = self._session.schema
        self._data = {} if schema is None else schema.new()
        self._orig = EMPTY_DATA
        self._sid = self._key = None
        self._rotate = self._destroyed = self._meta_changed = self._mismatch = False
        self._cookie_action = DELETE_COOKIE if self._cookie_value else KEEP_COOKIE

    @property
    def log_label(self) -> str:
        """How the log names this session: a short hash of its store key, or ``new``."""
        return self._log_id

    @property
    def _log_id(self) -> str:
        if self._side is None:
            self._resolve()
        return "new" if self._sid is None else log_id(self._key or self._sid_key())

    def store_subject(self) -> str:
        """How the log names this session (`StoreCaller`)."""
        return f"session {self._log_id}"

    def store_failed(self) -> None:
        """A store call failed: the response must not touch the store again (`StoreCaller`)."""
        self._failed = True
