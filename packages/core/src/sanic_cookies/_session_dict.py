"""`SessionDict`: one request's view of one session.

It loads nothing until the handler asks (`async with`, `await load()`, or plain
access on a backend that needs no I/O to load), so a request that never uses its
session costs no store call (unless the `autoload` setting is on). It writes only when
the encoded data, the login or the id changed, or the sliding expiry is due.
"""

from __future__ import annotations

import logging
import math
import sys
import warnings
from collections.abc import Awaitable, Iterator, MutableMapping
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any, Generic, Self, cast

import msgspec

from ._backend import Backend, ClientSideBackend, SessionLock, StoredSession, now
from ._errors import (
    BackendError,
    BackendUnavailable,
    SessionNotLoaded,
    SessionSerializationError,
)
from ._ids import is_session_id, log_id, new_session_id, store_key
from ._record import (
    EMPTY_DATA,
    AuthInfo,
    SessionRecord,
    decode_data,
    decode_record,
    encode_data,
    encode_record,
    encoded_size,
)
from ._request_cookie import cookie_value as read_cookie
from ._schema import S, decoded, model_of
from ._write_plan import KEEP, ROTATE, WritePlan, WriteState, plan_write

if TYPE_CHECKING:
    from sanic import Request
    from sanic.compat import Header

    from ._session import Session

__all__ = ["SessionDict"]

logger = logging.getLogger("sanic_cookies")

UNLOCKED_ACCESS = (
    "Session {name!r} used outside `async with request.ctx.{name}:`; a concurrent request "
    "may overwrite this change. Use the lock, or pass warn_lock=False to silence this."
)

NOT_LOADED = (
    "Session {name!r} is not loaded, and its backend {backend} needs I/O to load it. Either "
    "use `async with request.ctx.{name} as sess:` (locked) or "
    "`await request.ctx.{name}.load()` (read-only) first, or turn on autoload "
    "({setting} = True, or {cls}(..., autoload=True)) to load it in the request "
    "middleware whenever the request carries a session cookie."
)

# What the response should do with the cookie.
_KEEP, _SET, _DELETE = 0, 1, 2

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


def _readable(
    stored: StoredSession | None, t: float
) -> tuple[SessionRecord, dict[str, Any]] | None:
    """The record and data of `stored`, or None if there is none, unreadable or expired."""
    if stored is None:
        return None
    record = decode_record(stored.value)
    if record is None or record.deadline <= t or stored.expires_at <= t:
        return None
    try:
        return record, decode_data(record.data)
    except ValueError:
        return None


class SessionDict(MutableMapping[str, Any], Generic[S]):
    """The session of one request, a mutable mapping of str to JSON-encodable values.

    Use it as ``async with request.ctx.session as sess:``: that takes the
    session's lock, loads the current data, and on a clean exit writes it back
    if it changed and releases the lock (always, also when the block raises;
    an exception discards the block's changes). ``await session.load()`` loads
    without the lock, for read-only use.
    """

    # Speed: every request gets a SessionDict, most never use it. The state that
    # starts out the same for all is class-level defaults (an instance only stores
    # what changes), and what comes from the cookie (reading it, checking the id,
    # hashing it into a store key) is worked out by `_from_cookie` when the session
    # is first used: `load`, `__aenter__`, `sid` and the log label call it. (Not a
    # `__getattr__`: a class that has one pays for it on every attribute read.)
    _data: MutableMapping[str, Any] | None = None  # a dict, or a typed session's SchemaData
    _orig: bytes = EMPTY_DATA
    _stored: StoredSession | None = None  # what the store held at load
    _record: SessionRecord | None = None
    _auth: AuthInfo | None = None
    _created: float = 0.0
    _deadline: float = 0.0
    _meta_changed: bool = False
    _rotate: bool = False
    _destroyed: bool = False
    _lock: SessionLock | None = None
    _in_block: bool = False
    _failed: bool = False  # a store call failed: the response must not touch the store again
    _cookie_action: int = _KEEP
    _new_cookie_value: str | None = None
    _load_error: BaseException | None = None  # the autoload's store failure, for plain access
    _warned: set[tuple[str, int]] | None = None  # code lines already warned about (this request)
    # The request's headers, to read the cookie from if it was not given. (Not the
    # request itself: request -> ctx -> session -> request would be a reference cycle,
    # leaving every request to the cyclic garbage collector.)
    _headers: Header | None = None
    # Worked out on first use (see `_from_cookie`).
    _resolved: bool = False
    _cookie_value: str | None = None
    _backend: Backend  # the session's backend, and the same object if it is client-side
    _client: ClientSideBackend | None = None
    _sid: str | None = None
    _key: str | None = None
    _ttl: float = 0.0
    _persistent: bool = True

    def __init__(self, session: Session, cookie_value: str | None) -> None:
        self._session = session
        self._cookie_value = cookie_value

    @classmethod
    def _for_request(cls, session: Session, request: Request) -> SessionDict:
        """The session of `request`, whose cookie is read only if the session is used."""
        self = cls.__new__(cls)
        self._session = session
        self._headers = request.headers
        return self

    def _from_cookie(self) -> None:
        """Read the cookie and work out the id, store key and defaults (once per request)."""
        self._resolved = True
        session = self._session
        headers = self._headers
        if headers is not None:
            # Exact-name lookup: Sanic's cookies.get() would also accept a
            # __Host-/__Secure- variant, which is not the cookie we set.
            # (What request.cookies holds, parsed the same way.)
            self._headers = None
            self._cookie_value = read_cookie(headers.getone("cookie", ""), session._cookie_key())
        cookie_value = self._cookie_value
        backend = self._backend = session.backend
        if isinstance(backend, ClientSideBackend):
            self._client = backend
            # Tokens are ASCII; anything else (undecodable bytes arrive as lone
            # surrogates, which cannot even be hashed) is no cookie at all.
            sid = cookie_value if cookie_value and cookie_value.isascii() else None
        else:
            sid = cookie_value if is_session_id(cookie_value) else None
        self._sid = sid
        self._key = store_key(sid) if sid else None
        config = session.config
        self._ttl = config.expiry
        self._persistent = not config.session_cookie

    # -- loading ---------------------------------------------------------------

    async def load(self) -> Self:
        """Load the session without locking it (one store round trip, none if new).

        Reads after this emit a `RuntimeWarning` unless `warn_lock` is off.
        Loading twice does nothing the second time.
        """
        if self._data is None:
            if not self._resolved:
                self._from_cookie()
            stored: StoredSession | None = None
            if self._key is not None:
                stored = await self._call("load", self._load_stored())
            self._adopt(stored)
        return self

    async def _autoload(self) -> None:
        """Load in the request middleware (the `autoload` setting), if there is a cookie.

        A request without a session cookie costs no store call; a backend that loads
        without I/O loads on first use instead. A store failure is kept and raised
        (a 503) only if the handler then uses the session without awaiting it.
        """
        if not self._resolved:
            self._from_cookie()
        if self._key is None or self._backend.loads_now:
            return
        try:
            await self.load()
        except BackendError as exc:
            self._load_error = exc

    def _load_now(self) -> None:
        """Load on first plain access, without I/O; or say how to load it if that cannot be."""
        if not self._resolved:
            self._from_cookie()
        session = self._session
        if self._load_error is not None:
            raise BackendUnavailable() from self._load_error  # logged when it happened
        backend = self._backend
        if backend.loads_now:
            stored: StoredSession | None = None
            if self._sid is not None:
                stored = self._session._store.call_now("load", self._load_stored_now, self)
            self._adopt(stored)
        elif self._key is None and session.config.autoload:
            self._adopt(None)  # autoload saw no session cookie: a new session, nothing to read
        else:
            raise SessionNotLoaded(
                NOT_LOADED.format(
                    name=session.name,
                    backend=backend.label,
                    setting=getattr(session, "config_prefix", "SESSION_") + "AUTOLOAD",
                    cls=type(session).__name__,
                )
            )

    def _load_stored_now(self) -> StoredSession | None:
        assert self._sid is not None and self._key is not None
        if self._client is not None:
            return self._client.decode_cookie_now(self._sid)
        return self._backend.load_now(self._key)

    async def _load_stored(self) -> StoredSession | None:
        if self._client is not None:
            assert self._sid is not None
            return await self._client.decode_cookie(self._sid)
        assert self._key is not None
        return await self._backend.load(self._key)

    def _adopt(self, stored: StoredSession | None) -> None:
        """Take `stored` as this session's state, or start a fresh one."""
        t = now()
        found = _readable(stored, t)
        if found is None:
            if stored is not None:
                logger.debug("session %s: unreadable or expired record ignored", self._log_id)
            config = self._session.config
            self._stored = None
            self._record = None
            schema = self._session.schema
            self._data = {} if schema is None else schema.new()
            self._orig = EMPTY_DATA
            self._auth = None
            self._created = t
            self._deadline = t + config.lifetime
            self._ttl = config.expiry
            self._persistent = not config.session_cookie
            return
        record, data = found
        self._stored = stored
        self._record = record
        schema = self._session.schema
        if schema is None:
            self._data, self._orig = data, bytes(record.data)
        else:
            self._data, self._orig = schema.load(data, self)
        self._auth = record.auth
        self._created = record.created
        self._deadline = record.deadline
        self._ttl = record.ttl
        self._persistent = record.persistent

    # -- the lock ----------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._in_block:
            raise RuntimeError("This session is already locked by an enclosing `async with`.")
        # Plain changes made before the block (0.4 code being converted line by line)
        # are carried into it, on top of the data loaded under the lock.
        pending = None if self._data is None else self._unlocked_changes()
        self._data = None  # reload under the lock: the unlocked copy may be stale
        if not self._resolved:
            self._from_cookie()
        if self._key is None:
            self._adopt(None)  # no cookie: nobody else can know this session, nothing to lock
        else:
            config = self._session.config
            lock = self._backend.lock(
                self._key, timeout=config.lock_timeout, lease=config.lock_lease
            )
            # Held from before the acquire: if the store granted the lock and then failed
            # (a lost reply), releasing gives it back now instead of at the lease's end.
            self._lock = lock
            try:
                stored = await self._call("lock", lock.acquire())
                if self._client is not None:
                    assert self._sid is not None
                    stored = await self._call("load", self._client.decode_cookie(self._sid))
                self._adopt(stored)
            except BaseException:
                await self._release()
                raise
        if pending is not None:
            self._apply(*pending)
        self._in_block = True
        return self

    def _unlocked_changes(self) -> tuple[dict[str, Any], set[str]] | None:
        """The keys set and removed outside `async with` since the load; None if none."""
        assert self._data is not None
        if not self._data_dirty():
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
            await self._release()

    async def extend_lock(self, lease: float) -> None:
        """Extend the held lock's lease to `lease` seconds from now (for long handlers)."""
        if self._lock is None:
            if self._in_block:
                return  # a new session (no cookie yet): nobody else can know it, nothing locked
            raise RuntimeError("extend_lock() needs the session locked by `async with`.")
        await self._call("extend", self._lock.extend(lease))

    async def _release(self) -> None:
        lock, self._lock = self._lock, None
        if lock is not None:
            try:
                await lock.release()
            except Exception as exc:  # the lease will free it; say so once
                logger.warning(
                    "session %s: releasing the lock on %s failed (%s: %s); it frees at lease end",
                    self._log_id,
                    self._session.backend.label,
                    type(exc).__name__,
                    exc,
                )

    def _discard(self) -> None:
        """Forget the block's changes (it raised): back to the state as loaded or last written."""
        self._adopt(self._stored)
        self._rotate = self._destroyed = self._meta_changed = False

    # -- writing -----------------------------------------------------------------

    def _data_dirty(self) -> bool:
        assert self._data is not None
        return encode_data(self._data) != self._orig

    async def _write(self) -> None:
        """Write what changed, through the held lock if there is one: plan, then carry out."""
        if self._data is None:
            return
        data = encode_data(self._data)  # before any I/O: a bad value writes nothing
        if self._client is None:  # and neither does too much of it (the login's user too)
            self._session._check_data_size(len(data) + encoded_size(self._auth))
        config = self._session.config
        t = now()
        plan = plan_write(self._write_state(data, t), min(config.expiry, config.lifetime))
        if plan is KEEP:
            return
        if plan.end:
            await self._delete_stored(send_cookie=not plan.restart)
            if plan.restart:
                self._restart()
                t = now()
        if plan.store:
            await self._store(plan, data, t)

    def _write_state(self, data: bytes, t: float) -> WriteState:
        exists = self._stored is not None
        return WriteState(
            data_changed=data != self._orig,
            data_empty=data == EMPTY_DATA,
            logged_in=self._auth is not None,
            exists=exists,
            destroyed=self._destroyed,
            rotate=self._rotate,
            meta_changed=self._meta_changed,
            refresh_due=exists and self._refresh_due(t),
            ttl_left=min(self._ttl, self._deadline - t),
        )

    def _restart(self) -> None:
        """destroy() then new data (a "logged out" message, say): a new session holding it."""
        kept = self._data
        self._adopt(None)
        self._data = kept
        self._sid = self._key = None
        self._destroyed = False

    async def _store(self, plan: WritePlan, data: bytes, t: float) -> None:
        """Carry out a plan that stores: the record, under the id the plan says."""
        ttl = min(self._ttl, self._deadline - t)
        record = SessionRecord(
            data=msgspec.Raw(data),
            created=self._created,
            deadline=self._deadline,
            ttl=self._ttl,
            persistent=self._persistent,
            auth=self._auth,
        )
        value = encode_record(record)
        if self._client is not None:
            await self._store_token(self._client, plan, value, ttl)
        elif not await (self._store_new_id if plan.new_id else self._replace)(value, ttl):
            return  # ended concurrently: stays ended
        self._stored = StoredSession(value, t + ttl)
        self._record = record
        self._orig = data
        self._rotate = self._meta_changed = False
        self._cookie_action = _SET

    async def _store_token(
        self, client: ClientSideBackend, plan: WritePlan, value: bytes, ttl: float
    ) -> None:
        """Client-side: the record becomes the cookie (a new token)."""
        old = self._sid if self._stored is not None else None
        # The same session continues from `old` unless its id rotates (login):
        # the backend can then revoke every token of the session at logout.
        rotate = plan is ROTATE
        token = await self._call(
            "save",
            client.encode_cookie(
                value, ttl, previous=None if rotate else old, deadline=self._deadline
            ),
        )
        # The whole Set-Cookie value, attributes included, must fit what browsers keep
        # (they drop a larger cookie without a word).
        self._session._check_cookie_size(
            token, int(ttl) if self._persistent else None, client.max_cookie_size
        )
        if old is not None and rotate:
            await self._call("revoke", client.revoke_cookie(old, self._stored_expiry()))
        self._sid = self._new_cookie_value = token
        self._key = store_key(token)

    async def _store_new_id(self, value: bytes, ttl: float) -> bool:
        """Server-side, new session or rotation: save under a new id, then end the old one."""
        exists = self._stored is not None
        sid = new_session_id()
        key = store_key(sid)
        user_id = self._auth.user_id if self._auth else None
        await self._call("save", self._backend.save(key, value, ttl, user_id=user_id))
        logger.debug(
            "session %s: %s",
            log_id(key),
            f"new id (was {self._log_id})" if exists else "created",
        )
        if exists and not await self._retire_old_id(key):
            return False
        self._sid, self._key, self._new_cookie_value = sid, key, sid
        return True

    async def _replace(self, value: bytes, ttl: float) -> bool:
        """Server-side, same id: a fenced replace (fails if a logout ended the session)."""
        assert self._key is not None
        user_id = self._auth.user_id if self._auth else None
        if self._lock is not None:
            saved = await self._call(
                "save",
                self._lock.save_and_release(value, ttl, user_id=user_id, replace_only=True),
            )
            self._lock = None
        else:
            saved = await self._call(
                "save",
                self._backend.save(self._key, value, ttl, user_id=user_id, replace_only=True),
            )
        if not saved:
            logger.info("session %s: ended concurrently; write dropped", self._log_id)
            self._forget_all()
            return False
        return True

    async def _retire_old_id(self, new_key: str) -> bool:
        """End the old id after a rotation wrote the session under `new_key`.

        The old record must still exist at this point: a "log out everywhere" that
        deleted it while this request held the session would otherwise live on under
        the new id. So the old record is first rewritten with `replace_only` (which
        fails if it is gone), only then deleted; if it was gone, the new one goes too.

        Returns:
            False if the session had been ended concurrently (it is ended here too).
        """
        assert self._stored is not None and self._key is not None
        old_key, old_value = self._key, self._stored.value
        old_user = self._record.auth.user_id if self._record and self._record.auth else None
        grace = max(1.0, min(10.0, self._stored.expires_at - now()))  # if the delete fails
        backend = self._session.backend
        try:
            if self._lock is not None:
                alive = await self._call(
                    "save",
                    self._lock.save_and_release(
                        old_value, grace, user_id=old_user, replace_only=True
                    ),
                )
                self._lock = None
            else:
                alive = await self._call(
                    "save",
                    backend.save(old_key, old_value, grace, user_id=old_user, replace_only=True),
                )
        except BaseException:
            await self._drop_quietly(new_key)
            raise
        if not alive:
            logger.info("session %s: ended concurrently; new id dropped", self._log_id)
            await self._call("delete", backend.delete(new_key))
            self._forget_all()
            return False
        await self._call("delete", backend.delete(old_key))
        return True

    async def _drop_quietly(self, key: str) -> None:
        """Best-effort delete of a record no cookie will ever point at."""
        try:
            await self._session.backend.delete(key)
        except Exception as exc:
            logger.warning(
                "session %s: could not remove an unused record (%s); it expires with its TTL",
                log_id(key),
                type(exc).__name__,
            )

    def _refresh_due(self, t: float) -> bool:
        """Sliding expiry: due once a refresh would push the expiry out by `refresh_interval`.

        Measured on expiry times rather than write times so that a session capped by its
        absolute lifetime (nothing left to extend) is never refreshed, even on a store
        that rounds TTLs.
        """
        if self._stored is None:
            return False
        gain = t + min(self._ttl, self._deadline - t) - self._stored.expires_at
        return gain > 0 and gain >= self._session.config.refresh_after

    def _stored_expiry(self) -> float:
        return self._stored.expires_at if self._stored else now()

    async def _delete_stored(self, *, send_cookie: bool = True) -> None:
        backend = self._session.backend
        if self._stored is not None:
            if self._client is not None:
                assert self._sid is not None
                await self._call(
                    "revoke",
                    self._client.revoke_cookie(self._sid, self._stored_expiry()),
                )
            elif self._lock is not None:
                await self._call("delete", self._lock.delete_and_release())
                self._lock = None
            else:
                assert self._key is not None
                await self._call("delete", backend.delete(self._key))
            logger.debug("session %s: deleted", self._log_id)
        if send_cookie:
            self._forget_all()

    def _forget_all(self) -> None:
        self._stored = self._record = self._auth = None
        schema = self._session.schema
        self._data = {} if schema is None else schema.new()
        self._orig = EMPTY_DATA
        self._sid = self._key = None
        self._rotate = self._destroyed = self._meta_changed = False
        self._cookie_action = _DELETE if self._cookie_value else _KEEP

    def _call(self, operation: str, awaitable: Awaitable[Any]) -> Awaitable[Any]:
        """Make one store call through the session's `StoreCalls` (not a coroutine: no layer)."""
        return self._session._store.call(operation, awaitable, self)

    def store_subject(self) -> str:
        """How the log names this session (`StoreCaller`)."""
        return f"session {self._log_id}"

    def store_failed(self) -> None:
        """A store call failed: the response must not touch the store again (`StoreCaller`)."""
        self._failed = True

    async def _finish(self, failed: bool = False) -> tuple[int, str | None, int | None]:
        """Called once the handler returned: write unlocked changes, say what the cookie needs.

        Args:
            failed: The response is a server error (5xx): unlocked changes are dropped,
                as an exception inside `async with` drops the block's changes.

        Returns:
            (action, cookie value, max age): action is keep, set or delete.
        """
        if not self._in_block and self._lock is not None:
            await self._release()
        # else a streaming handler responded from inside `async with`: the block still
        # runs, and keeps its lock until it exits (releasing here would let a concurrent
        # request in, and the block's write would then overwrite that request's update).
        # After a failed store call, write nothing more (the client keeps its cookie and
        # may retry); a cookie change from an earlier successful write still goes out.
        if (
            self._data is not None
            and not self._in_block
            and not self._failed
            and not failed
            and self._unlocked_work_due()
        ):
            await self._write_unlocked()
        if self._cookie_action == _SET:
            max_age = None
            if self._persistent:
                # Rounded up: a session with 0.9 s left must not get Max-Age=0,
                # which tells the browser to delete the cookie at once.
                max_age = max(1, math.ceil(min(self._ttl, self._deadline - now())))
            return _SET, self._new_cookie_value or self._sid, max_age
        return self._cookie_action, None, None

    def _unlocked_work_due(self) -> bool:
        """Whether `_write_unlocked` has anything to do (most requests: no; spares a coroutine)."""
        assert self._data is not None
        if encode_data(self._data) != self._orig:
            return True
        if self._meta_changed or self._rotate or self._destroyed:
            return True
        return self._stored is not None and self._refresh_due(now())

    async def _write_unlocked(self) -> None:
        assert self._data is not None
        data = encode_data(self._data)
        dirty = data != self._orig or self._meta_changed or self._rotate or self._destroyed
        if dirty:
            await self._write()
        elif self._stored is not None and self._refresh_due(now()):
            await self._refresh_unlocked()

    async def _refresh_unlocked(self) -> None:
        """Sliding expiry of a session used without the lock and not changed."""
        if self._client is not None:
            # A cookie's expiry is inside it: refreshing means issuing a new one.
            await self._write()
            return
        # Read-only use: extend the TTL without rewriting data someone may be changing.
        ttl = min(self._ttl, self._deadline - now())
        backend = self._session.backend
        if ttl > 0 and self._key is not None and await self._touch(backend, self._key, ttl):
            self._cookie_action = _SET

    async def _touch(self, backend: Backend, key: str, ttl: float) -> bool:
        """Refresh the TTL of a read-only session; a failure is logged, not raised.

        The request already read its data; the session stays valid until its current
        expiry, and the next request retries the refresh.
        """
        try:
            return bool(await self._call("touch", backend.touch(key, ttl)))
        except BackendError:
            return False

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
        if not self._resolved:
            self._from_cookie()
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

    @property
    def log_label(self) -> str:
        """How the log names this session: a short hash of its store key, or ``new``."""
        return self._log_id

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
        if not self._in_block and self._session.config.warn_lock:
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

    @property
    def _log_id(self) -> str:
        if not self._resolved:
            self._from_cookie()
        return log_id(self._key) if self._key else "new"
