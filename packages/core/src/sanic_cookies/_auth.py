"""`AuthSession`: a `Session` that logs users in and out by the OWASP session rules.

* Every login gives the session a new id (the core rotates it, so this holds
  for every backend, custom ones included) and, by default, drops the
  anonymous session's data.
* Logout deletes the session in the store and expires the cookie.
* Idle and absolute timeouts are enforced by the server, remembered or not.
* A per-user index lets an app list a user's sessions and end them all, and
  caps how many live sessions one user may have.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import UTC, datetime
from inspect import isawaitable
from typing import TYPE_CHECKING, Any

import msgspec
from sanic import Request, Sanic

from ._backend import Backend, ClientSideBackend, StoredSession, now
from ._config import DAY, SessionConfig
from ._csrf_token import rotate as rotate_csrf_token
from ._device import client_device, resolve_store_ip
from ._errors import (
    ConfigurationError,
    SessionSerializationError,
    UnsupportedOperation,
)
from ._ids import log_id, store_key
from ._record import AuthInfo, SessionRecord, decode_record
from ._session import Session
from ._session_cap import UNSET, cap_listing, resolve_cap, sessions_over_cap
from ._session_dict import SessionDict
from ._store_call import StoreCalls
from ._user_agent import UNKNOWN_BROWSER, user_agent_label
from ._websocket import is_websocket

if TYPE_CHECKING:
    from ._decorators import LoginGuard

__all__ = ["AuthSession", "SessionInfo", "default_user_id"]

logger = logging.getLogger("sanic_cookies")

_AUTH_CALLER = StoreCalls.caller("auth session")

#: Defaults of an `AuthSession` that differ from a plain `Session` (OWASP-minded).
AUTH_DEFAULTS: Mapping[str, Any] = {
    # Idle timeout: the upper end of OWASP's 15-30 minutes for low-risk apps.
    "expiry": 30 * 60.0,
    # Absolute timeout of a non-remembered login: a long working day.
    "lifetime": 12 * 3600.0,
    # OWASP prefers non-persistent cookies for authenticated sessions;
    # remember-me opts a login into a persistent one.
    "session_cookie": True,
}

#: How long a remembered login lasts unless `login_user` is given a duration.
REMEMBER_DURATION = 30 * DAY

#: Length of a `SessionInfo.handle`: 64 bits of the store key, unique among one user's sessions.
HANDLE_LENGTH = 16

#: The longest user id a login accepts, in characters. Every store indexes it, and
#: PostgreSQL's index rows hold about 2.7 KB (up to 4 bytes a character).
MAX_USER_ID_LENGTH = 256

#: The longest a login may last, in seconds: 400 days. Browsers cap cookie lifetimes
#: there (Chrome, the cookie RFC draft), and the cookie backend keeps a user's
#: "log out everywhere" time that long: a longer login would outlive it.
MAX_LOGIN_SECONDS = 400 * DAY

UserLoader = Callable[[Any], Awaitable[Any] | Any]


def default_user_id(user: Any) -> str:
    """The user-index id of `user`.

    ``user["id"]`` for a mapping with an "id" key, else `user` itself; that id
    must be a str, or an int (converted with ``str``).

    Raises:
        ValueError: The id is anything else (None, a bool, a list, a mapping
            without "id", an object): ``str()`` of it would index unrelated
            users under one id (every ``{"id": None}`` as "None"). Pass
            ``user_id=`` to `AuthSession` to say which part of such a user is its id.
    """
    uid = user["id"] if isinstance(user, Mapping) and "id" in user else user
    if isinstance(uid, str):
        return uid
    if isinstance(uid, int) and not isinstance(uid, bool):
        return str(int(uid))
    if uid is not user:
        where = "user['id']"
    elif isinstance(user, Mapping):
        where = "the user (a mapping without an 'id' key)"
    else:
        where = "the user"
    raise ValueError(
        f"The default user_id accepts a str or int id, but {where} is "
        f"{type(uid).__name__} {_short(uid)}. Log in with a str/int id, or pass "
        "user_id= to AuthSession to choose which part of the user is its id."
    )


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _checked_user_id(uid: Any) -> str:
    """`uid` as a plain str every store can index, or a ValueError saying what is wrong.

    Refused here rather than by the store, where it would be a 503 and an ERROR
    log line: PostgreSQL's text refuses NUL characters, no store can encode a
    lone surrogate as UTF-8, and an index holds only short values.
    """
    if not isinstance(uid, str) or not uid:
        raise ValueError(f"user_id must return a non-empty str, got {uid!r}")
    if len(uid) > MAX_USER_ID_LENGTH:
        raise ValueError(
            f"The user id is {len(uid)} characters long; at most {MAX_USER_ID_LENGTH} "
            "can be indexed. Log users in by a short id (pass user_id= to AuthSession "
            "to choose which part of the user it is)."
        )
    if "\x00" in uid:
        raise ValueError(
            "The user id contains a NUL character (\\x00), which session stores cannot "
            f"hold (PostgreSQL refuses it): {uid[:40]!r}"
        )
    try:
        uid.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(
            f"The user id is not valid Unicode text (a lone surrogate): {uid[:40]!r}"
        ) from None
    return str.__str__(uid)  # a plain str: a subclass may compare or hash differently


def _positive_seconds(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
    if value == float("inf"):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if value > MAX_LOGIN_SECONDS:
        raise ValueError(_too_long(name, value))
    return float(value)


def _too_long(name: str, value: float) -> str:
    return (
        f"{name} is {value!r} seconds ({value / DAY:.0f} days); a login lasts at most "
        f"{MAX_LOGIN_SECONDS:.0f} seconds (400 days). Browsers cap a cookie's lifetime at "
        "400 days anyway, and a per-user 'log out everywhere' is kept that long."
    )


def _utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


@dataclasses.dataclass(frozen=True, slots=True)
class SessionInfo:
    """One live session of a user, for a "your devices" page.

    Attributes:
        handle: An opaque, non-secret identifier of the session (a prefix of
            its store key, never the session id): safe to put in an HTML form
            and to pass back to `AuthSession.logout_session`.
        created: When the session was created (UTC).
        last_seen: When the session was last written or refreshed (UTC). The
            sliding refresh happens at most every ``refresh_interval``, so this
            lags real activity by up to that much; near the absolute deadline it
            is a lower bound.
        expires: When the session ends unless used again (UTC).
        current: True for the session of the request passed as ``current``.
        login_at: When the user logged in to this session (UTC).
        remember: True for a remembered (persistent-cookie) login.
        device: A short label of the browser and system that logged in, such as
            "Firefox on Linux" (see `user_agent_label`); "Unknown browser" when
            the login sent no User-Agent or it was not recorded.
        user_agent: The login's User-Agent header, cut to 256 characters ("" if none).
        ip: The login's client IP address as Sanic saw it behind the trusted
            proxies; None when not recorded (``store_ip=False``, or a session
            created by sanic-cookies 1.0).
    """

    handle: str
    created: datetime
    last_seen: datetime
    expires: datetime
    current: bool
    login_at: datetime
    remember: bool = False
    device: str = UNKNOWN_BROWSER
    user_agent: str = ""
    ip: str | None = None


class AuthSession(Session):
    """A session with logged-in users: login, logout, current user, logout everywhere.

    ::

        app = Sanic("shop")
        auth = AuthSession(app, backend="redis://127.0.0.1:6379/0")

        @app.post("/login")
        async def login(request):
            user = await check_password(request.form)      # your code
            await auth.login_user(request, {"id": user.id, "name": user.name})
            return redirect(safe_next(request))

        @app.get("/account")
        @auth.login_required()
        async def account(request):
            return json(await auth.current_user(request))

    Timeouts (all enforced by the server, not only by the cookie):

    * A normal login uses a browser-session cookie (no Max-Age). It ends after
      ``expiry`` seconds unused (default 30 minutes) or ``lifetime`` seconds
      after login however active (default 12 hours).
    * A remembered login (``remember=True``) uses a persistent cookie and
      lasts ``duration`` seconds from login (default `remember_duration`,
      30 days); it ends sooner if unused for ``remember_expiry`` seconds
      (default: the same duration, so only the absolute limit applies).

    Settings come from the arguments, else from ``app.config.<PREFIX>_<FIELD>``
    where the prefix is the upper-cased session name (``AUTH_SESSION_EXPIRY``,
    ``AUTH_SESSION_SECURE``, ``AUTH_SESSION_BACKEND``, ...), else from the
    defaults above; ``SESSION_*`` settings of a plain `Session` do not apply,
    except that ``SESSION_BACKEND`` is used when no backend is configured here.

    Args:
        app: The app to attach to now; or call `init_app` later.
        backend: A `Backend` instance or a URL; None: ``AUTH_SESSION_BACKEND``,
            else ``SESSION_BACKEND``, else ``"memory://"``.
        session_name: Where it appears: ``request.ctx.<session_name>`` and
            ``app.ctx.exts.<session_name>``; also the default cookie name.
        user_loader: Optional callable (async or not) turning the stored user
            into the application's user object (or None if it no longer
            exists); `current_user` calls it at most once per request.
        user_id: Optional callable giving the user-index id (a str) of a
            stored user; default `default_user_id`.
        remember_duration: Lifetime in seconds of a remembered login.
        remember_expiry: Idle timeout in seconds of a remembered login
            (None: as long as its duration).
        store_ip: Record the client IP address of each login for `list_sessions`
            (default True, else ``<PREFIX>_STORE_IP``). False for apps that must
            not keep IP addresses; the User-Agent is recorded either way.
        max_sessions_per_user: Live sessions one user may have (default 100,
            else ``<PREFIX>_MAX_SESSIONS_PER_USER``); a login past it ends that
            user's oldest sessions. None: no cap. Enforced on backends with a
            per-user index (not on the cookie backend, whose sessions live in
            the browsers).
        backend_options: Keyword arguments for the backend's ``from_url``.
        master_interface: Old (0.4) name of `backend`.
        **settings: Any `SessionConfig` field (``cookie_name``, ``expiry``,
            ``lifetime``, ``secure``, ...).
    """

    _final_logout = True  # a cookie backend without revocation refuses to start
    #: Live sessions one user may have (None: no cap), from ``max_sessions_per_user``.
    max_sessions_per_user: int | None

    #: Whether a login records its client IP address, from ``store_ip``.
    store_ip: bool

    def __init__(
        self,
        app: Sanic[Any, Any] | None = None,
        *,
        backend: Backend | str | None = None,
        session_name: str = "auth_session",
        user_loader: UserLoader | None = None,
        user_id: Callable[[Any], str] | None = None,
        remember_duration: float = REMEMBER_DURATION,
        remember_expiry: float | None = None,
        max_sessions_per_user: int | None = UNSET,
        store_ip: bool | None = None,
        backend_options: dict[str, Any] | None = None,
        master_interface: Backend | str | None = None,
        **settings: Any,
    ) -> None:
        try:
            self.remember_duration = _positive_seconds("remember_duration", remember_duration)
            self.remember_expiry = (
                None
                if remember_expiry is None
                else _positive_seconds("remember_expiry", remember_expiry)
            )
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None
        if user_loader is not None and not callable(user_loader):
            raise ConfigurationError("user_loader must be callable")
        if user_id is not None and not callable(user_id):
            raise ConfigurationError("user_id must be callable")
        self.user_loader = user_loader
        self._user_id = user_id or default_user_id
        self._running = False
        self._cap_arg = max_sessions_per_user  # checked by _resolve_config, called below
        self._store_ip_arg = store_ip  # likewise
        super().__init__(
            app,
            backend=backend,
            session_name=session_name,
            backend_options=backend_options,
            master_interface=master_interface,
            **settings,
        )

    # -- set-up ----------------------------------------------------------------

    @property
    def config_prefix(self) -> str:
        """The ``app.config`` prefix of this session's settings, e.g. ``AUTH_SESSION_``."""
        return self.name.upper() + "_"

    def _resolve_config(self, app_config: Mapping[str, Any]) -> SessionConfig:
        # Map <PREFIX>_<FIELD> onto the SESSION_<FIELD> names SessionConfig reads,
        # with the auth defaults underneath, so a plain Session's settings
        # (its cookie name above all) never leak into this one.
        prefix = self.config_prefix
        defaults = {**AUTH_DEFAULTS, "cookie_name": self.name}
        mapped: dict[str, Any] = {}
        for field in SessionConfig.__dataclass_fields__:
            key = prefix + field.upper()
            # None is "not given": the auth default below, else SessionConfig's.
            if key in app_config and (app_config[key] is not None or field not in defaults):
                mapped["SESSION_" + field.upper()] = app_config[key]
            elif field in defaults:
                mapped["SESSION_" + field.upper()] = defaults[field]
        self.max_sessions_per_user = resolve_cap(self._cap_arg, app_config, prefix)
        self.store_ip = resolve_store_ip(self._store_ip_arg, app_config, prefix)
        try:
            config = SessionConfig.resolve(self._settings, mapped)
        except ConfigurationError as exc:
            raise ConfigurationError(str(exc).replace("SESSION_", prefix)) from None
        if config.lifetime > MAX_LOGIN_SECONDS:
            raise ConfigurationError(_too_long(prefix + "LIFETIME", config.lifetime))
        return config

    def _resolve_backend(self, app: Sanic[Any, Any]) -> Backend:
        # backend= wins over <PREFIX>BACKEND over SESSION_BACKEND; the options follow
        # backend_options= over <PREFIX>BACKEND_OPTIONS over SESSION_BACKEND_OPTIONS.
        cfg, prefix = app.config, self.config_prefix
        spec = self._backend_arg
        if spec is None:
            spec = cfg.get(prefix + "BACKEND") or cfg.get("SESSION_BACKEND") or "memory://"
        options = self._backend_options
        if options is None:
            options = cfg.get(prefix + "BACKEND_OPTIONS", cfg.get("SESSION_BACKEND_OPTIONS"))
        return self._build_backend(spec, options or {})

    async def _start(self, app: Sanic[Any, Any]) -> None:
        await super()._start(app)
        self._running = True

    async def _stop(self, app: Sanic[Any, Any]) -> None:
        self._running = False
        await super()._stop(app)

    # -- users -------------------------------------------------------------------

    def user_id_of(self, user: Any) -> str:
        """The id under which `user`'s sessions are indexed (see the ``user_id`` argument).

        Raises:
            ValueError: `user` is None, or its id is not a str every store can
                hold: empty, longer than `MAX_USER_ID_LENGTH` characters, with a
                NUL character or not valid Unicode.
        """
        if user is None:
            raise ValueError("user must not be None (None means nobody is logged in)")
        return _checked_user_id(self._user_id(user))

    def _session_of(self, request: Request) -> SessionDict:
        sess = getattr(request.ctx, self.name, None)
        if not isinstance(sess, SessionDict) or not sess.is_of(self):
            raise ConfigurationError(
                f"request.ctx.{self.name} is missing: is this request served by the app "
                f"this AuthSession is attached to?"
            )
        return sess

    @contextlib.asynccontextmanager
    async def _locked(self, sess: SessionDict) -> AsyncIterator[SessionDict]:
        """The session under its lock: the handler's block if it holds one, else our own."""
        if sess.is_locked:
            yield sess
        else:
            async with sess:
                yield sess

    # -- login / logout ----------------------------------------------------------

    async def login_user(
        self,
        request: Request,
        user: Any,
        *,
        remember: bool = False,
        duration: float | None = None,
        keep_data: bool = False,
    ) -> None:
        """Log `user` in: new session id, login time recorded, timeouts set.

        Works inside ``async with request.ctx.auth_session:`` (the change is
        written when the block ends) or outside it (the session is locked,
        changed and written before this returns).

        Args:
            request: The current request.
            user: What to store: any JSON-encodable value, such as an id or a
                small dict (not None).
            remember: True: a persistent cookie for `duration`; False: a
                browser-session cookie.
            duration: Seconds this login lasts at most (None: `remember_duration`
                if remembered, else the ``lifetime`` setting).
            keep_data: Keep the anonymous session's data (a shopping cart, say).
                Data of a different user's login is never kept.

        Raises:
            ValueError: `user` is None, its id cannot be stored (see
                `user_id_of`), or `duration` is not a positive number.
            SessionSerializationError: `user` cannot be encoded as JSON.
        """
        uid, lifetime = self._check_login(user, remember, duration)
        sess = self._session_of(request)
        # Kept only where `list_sessions` can show it: in a cookie it would only cost bytes.
        device = client_device(request, store_ip=self.store_ip) if self._listable() else ("", "")
        async with self._locked(sess):
            self._apply_login(
                sess, user, uid, remember=remember, lifetime=lifetime, keep=keep_data, device=device
            )
        self._forget_user(request)
        logger.info("session %s: login (remember=%s)", sess.log_label, remember)
        # After the write when outside a block (the new key is listed and skipped); inside
        # one, before it (the old key is skipped and the new one counted all the same).
        await self._end_sessions_over_cap(uid, self._request_key(request))

    def _check_login(self, user: Any, remember: bool, duration: float | None) -> tuple[str, float]:
        uid = self.user_id_of(user)
        if not isinstance(remember, bool):
            raise ValueError(f"remember must be a bool, got {remember!r}")
        try:
            msgspec.json.encode(user)
        except (TypeError, ValueError, OverflowError) as exc:
            raise SessionSerializationError(
                f"The user to log in cannot be stored as JSON: {exc}"
            ) from exc
        if duration is not None:
            return uid, _positive_seconds("duration", duration)
        return uid, self.remember_duration if remember else self.config.lifetime

    def _apply_login(
        self,
        sess: SessionDict,
        user: Any,
        uid: str,
        *,
        remember: bool,
        lifetime: float,
        keep: bool,
        device: tuple[str, str] = ("", ""),
    ) -> None:
        previous = sess.auth
        # First: where it is refused (a websocket cannot set the new cookie), it is
        # refused before anything else changed, so a caught refusal leaves the data as is.
        sess.regenerate()
        if not keep or (previous is not None and previous.user_id != uid):
            sess.clear()
        rotate_csrf_token(sess)  # a token from before the login must not work after it
        if remember:
            idle = min(self.remember_expiry or lifetime, lifetime)
        else:
            idle = min(self.config.expiry, lifetime)
        sess.set_auth(
            AuthInfo(
                user=user,
                user_id=uid,
                login_at=now(),
                remember=remember,
                ua=device[0],
                ip=device[1],
            ),
            ttl=idle,
            persistent=remember,
            lifetime=lifetime,
        )

    async def logout_user(self, request: Request) -> None:
        """Log out: delete the session from the store and expire the cookie.

        The old cookie yields an anonymous session afterwards, on every backend
        that can revoke (all server-side ones). Works inside or outside
        ``async with``; a session that is not logged in is ended all the same.
        """
        sess = self._session_of(request)
        async with self._locked(sess):
            sess.destroy()
        self._forget_user(request)
        logger.info("session %s: logout", sess.log_label)

    # -- the current user ----------------------------------------------------------

    def _cache_attr(self) -> str:
        return f"_sanic_cookies_{self.name}_user"

    def _forget_user(self, request: Request) -> None:
        with contextlib.suppress(AttributeError):
            delattr(request.ctx, self._cache_attr())

    async def _login_info(self, request: Request) -> AuthInfo | None:
        sess = self._session_of(request)
        if not sess.is_loaded:
            await sess.load()
        return sess.auth

    async def current_user(self, request: Request) -> Any:
        """The logged-in user, or None.

        Returns what `login_user` stored, or what ``user_loader`` made of it
        (called at most once per request and login). Costs at most one store
        round trip, none if the session was already loaded in this request.
        In a websocket handler, which lives as long as its connection, both run on
        every call: the store is re-read and ``user_loader`` called again (so a
        user disabled since is seen).
        """
        info = await self._login_info(request)
        if info is None:
            return None
        if self.user_loader is None:
            return info.user
        if is_websocket(request):
            return await self._load_user(info)
        cache_key = (info.user_id, info.login_at)
        cached = getattr(request.ctx, self._cache_attr(), None)
        if cached is not None and cached[0] == cache_key:
            return cached[1]
        loaded = await self._load_user(info)
        setattr(request.ctx, self._cache_attr(), (cache_key, loaded))
        return loaded

    async def _load_user(self, info: AuthInfo) -> Any:
        """What ``user_loader`` makes of the stored user (set when this is called)."""
        assert self.user_loader is not None
        loaded = self.user_loader(info.user)
        if isawaitable(loaded):
            loaded = await loaded
        return loaded

    async def login_time(self, request: Request) -> datetime | None:
        """When the current user logged in (UTC), or None if nobody is logged in."""
        info = await self._login_info(request)
        return _utc(info.login_at) if info is not None else None

    # -- all of a user's sessions ------------------------------------------------

    def _listable(self) -> bool:
        """Whether this session's backend keeps a per-user index (sessions can be listed)."""
        backend = self.backend
        return backend.supports_user_index and not isinstance(backend, ClientSideBackend)

    def _indexed_backend(self, operation: str) -> Backend:
        backend = self.backend
        if not self._listable():
            raise UnsupportedOperation(
                f"{operation}() needs a backend that keeps a per-user session index; "
                f"{backend.label} does not (sessions in cookies cannot be listed or ended "
                "one by one; cookie:// with a revocation store can still end them all with "
                "logout_everywhere()). Use a server-side backend such as redis:// or "
                "postgresql://."
            )
        return backend

    def _backend_call(self, operation: str, awaitable: Awaitable[Any]) -> Awaitable[Any]:
        """One store call of the auth layer, through the session's `StoreCalls`."""
        return self._store.call(operation, awaitable, _AUTH_CALLER)

    def _request_key(self, request: Request | None) -> str | None:
        if request is None:
            return None
        sid = self._session_of(request).sid
        return store_key(sid) if sid else None

    async def _user_records(
        self, user: Any, operation: str
    ) -> dict[str, tuple[StoredSession, SessionRecord, AuthInfo]]:
        return await self._records_of(self.user_id_of(user), operation)

    async def _records_of(
        self, uid: str, operation: str
    ) -> dict[str, tuple[StoredSession, SessionRecord, AuthInfo]]:
        backend = self._indexed_backend(operation)
        stored: Mapping[str, StoredSession] = await self._backend_call(
            "list_user_sessions",
            cap_listing(backend, uid) if operation == "login" else backend.list_user_sessions(uid),
        )
        t = now()
        found = {}
        for key, item in stored.items():
            record = decode_record(item.value)
            # The index may lag the store: trust only records that say they are this user's.
            if record is None or record.auth is None or record.auth.user_id != uid:
                continue
            if record.deadline <= t or item.expires_at <= t:
                continue
            found[key] = (item, record, record.auth)
        return found

    async def _end_sessions_over_cap(self, uid: str, current: str | None) -> None:
        """End the oldest sessions of `uid` beyond `max_sessions_per_user`, `current` aside."""
        cap = self.max_sessions_per_user
        backend = self.backend
        if cap is None or not backend.supports_user_index or isinstance(backend, ClientSideBackend):
            return  # no cap, or sessions this server cannot list (they live in cookies)
        records = await self._records_of(uid, "login")
        over = sessions_over_cap({k: r for k, (_, r, _) in records.items()}, cap, current)
        for key in over:
            await self._backend_call("delete", backend.delete(key))
        if over:
            logger.info(
                "auth session: a login past max_sessions_per_user=%d ended %d older session(s)",
                cap,
                len(over),
            )

    async def logout_everywhere(self, user: Any, *, keep: Request | None = None) -> int:
        """End every live session of `user`, on every device.

        Use it after a password change or when an account is compromised.

        Args:
            user: The user (as given to `login_user`) or anything with the same user id.
            keep: A request whose session survives (the one changing the password).

        Returns:
            How many sessions were ended (0 on cookie://, which cannot count cookies).

        Raises:
            UnsupportedOperation: The backend keeps no per-user index and cannot end a
                user's cookies (cookie:// without a revocation store).
        """
        uid = self.user_id_of(user)
        if isinstance(self.backend, ClientSideBackend):
            # No index: the backend refuses the user's older cookies itself (cookie://
            # with a revocation store), or raises UnsupportedOperation.
            token = self._session_of(keep).sid if keep is not None else None
            return int(
                await self._backend_call(
                    "logout_everywhere", self.backend.revoke_user_cookies(uid, keep=token)
                )
            )
        backend = self._indexed_backend("logout_everywhere")
        keep_key = self._request_key(keep)
        count: int = await self._backend_call(
            "delete_user_sessions", backend.delete_user_sessions(uid, keep=keep_key)
        )
        logger.info("auth session: logout everywhere ended %d session(s)", count)
        return count

    async def list_sessions(
        self, user: Any, *, current: Request | None = None
    ) -> list[SessionInfo]:
        """The live sessions of `user`, most recently seen first.

        Args:
            user: The user (as given to `login_user`).
            current: The current request, to mark its session ``current=True``.

        Raises:
            UnsupportedOperation: The backend keeps no per-user index (the cookie backend).
        """
        current_key = self._request_key(current)
        infos = []
        for key, (item, record, auth) in (await self._user_records(user, "list_sessions")).items():
            last_seen = max(item.expires_at - record.ttl, auth.login_at)
            infos.append(
                SessionInfo(
                    handle=key[:HANDLE_LENGTH],
                    created=_utc(record.created),
                    last_seen=_utc(last_seen),
                    expires=_utc(min(item.expires_at, record.deadline)),
                    current=key == current_key,
                    login_at=_utc(auth.login_at),
                    remember=auth.remember,
                    device=user_agent_label(auth.ua),
                    user_agent=auth.ua,
                    ip=auth.ip or None,
                )
            )
        infos.sort(key=lambda info: info.last_seen, reverse=True)
        return infos

    async def logout_session(self, user: Any, handle: str) -> bool:
        """End one of `user`'s sessions, named by its `SessionInfo.handle`.

        Only that user's sessions are considered, so a handle taken from
        another account ends nothing.

        Returns:
            True if a session was ended.

        Raises:
            UnsupportedOperation: The backend keeps no per-user index (the cookie backend).
        """
        if (
            not isinstance(handle, str)
            or len(handle) != HANDLE_LENGTH
            or handle.strip("0123456789abcdef")
        ):
            return False
        for key in await self._user_records(user, "logout_session"):
            if key.startswith(handle):
                await self._backend_call("delete", self.backend.delete(key))
                logger.info("session %s: ended remotely", log_id(key))
                return True
        return False

    # -- decorators ----------------------------------------------------------------

    def login_required(self, redirect_to: str | None = None) -> LoginGuard:
        """`sanic_cookies.login_required` bound to this session."""
        from ._decorators import login_required

        return login_required(self.name, redirect_to=redirect_to)

    def fresh_login_required(
        self, max_age: float = 900.0, *, redirect_to: str | None = None
    ) -> LoginGuard:
        """`sanic_cookies.fresh_login_required` bound to this session."""
        from ._decorators import fresh_login_required

        return fresh_login_required(max_age, self.name, redirect_to=redirect_to)

    # -- tests -----------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _backend_ready(self) -> AsyncIterator[Backend]:
        """The backend, opened for the duration if the server is not running it now."""
        if self._running:
            yield self.backend
            return
        if self.app is None:
            raise ConfigurationError(f"AuthSession {self.name!r} is not attached to an app")
        self.config = self._resolve_config(self.app.config)
        backend = self._backend if self._backend is not None else self._combined_backend(self.app)
        # Kept: the server's start-up reuses (and reopens) this instance.
        self._open(backend)
        await backend.open()
        try:
            yield backend
        finally:
            await backend.close()

    async def _issue_login(
        self, user: Any, *, remember: bool = False, duration: float | None = None
    ) -> str:
        """Create a logged-in session straight in the store; return its session id."""
        async with self._backend_ready():
            uid, lifetime = self._check_login(user, remember, duration)
            sess = SessionDict(self)
            async with sess:
                self._apply_login(sess, user, uid, remember=remember, lifetime=lifetime, keep=False)
            sid = sess.sid
            await self._end_sessions_over_cap(uid, store_key(sid) if sid else None)
        if sid is None:  # pragma: no cover - a login always writes
            raise RuntimeError("the login session was not written")
        return sid
