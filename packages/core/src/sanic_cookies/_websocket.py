"""Sessions in Sanic websocket handlers: fresh on every ``async with``, no cookie to send.

Sanic runs request middleware for a websocket route (before the upgrade) but no
response middleware (no response follows the upgrade). So `Session` gives a websocket
request a `WebsocketSessionDict`, which differs from a request's `SessionDict` in what a
long-lived connection with no response needs:

* Each ``async with`` takes the lock and re-reads the store, as always; outside a
  block, `load`, `peek` and ``AuthSession.current_user`` re-read it too, so a logout from
  another request or an expiry is seen by the next read.
* A block's changes are written when it exits (there is no response to write them).
  A change that needs a new cookie (a new session, a new id at login, any change on a
  client-side backend) raises `WebsocketSessionError` before anything is written. The
  sliding expiry is never refreshed here (only an HTTP response can renew the cookie).
* Changes outside ``async with`` would never be written: they raise the same error.
  An in-place change (``sess["cart"].append(x)``) cannot be seen when it is made: the
  next read (block or `load`) drops it and logs a WARNING once per connection.
* A plain read outside a block raises the same error, unless it reads what `load`
  just read: what a block or the guard read would go stale without telling.

`login_required` lists its guards on the handler (`GUARDS_ATTRIBUTE`); `guard_upgrade`
runs them in the session middleware, refusing the upgrade itself (HTTP 401 before the
handshake), and `guard_connection` closes an upgraded connection a guard refuses.

The subclass reads `SessionDict`'s own state (``self._in_block``, ``self._write_state``, ...)
and asks its `SessionSide` whether the session lives in the cookie (`ClientSide`);
`SessionDict` itself has no websocket code, and `Session._on_request` one branch.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, Self

from sanic import Request
from sanic.exceptions import Unauthorized

from ._backend import now
from ._client_side import ClientSide
from ._errors import WebsocketSessionError
from ._record import AuthInfo, encode_data
from ._route_checks import routed_handler
from ._session_dict import SessionDict
from ._write_plan import KEEP, WritePlan, plan_write

if TYPE_CHECKING:
    from sanic.response import HTTPResponse

    from ._session import Session

__all__ = [
    "GUARDS_ATTRIBUTE",
    "WebsocketSessionDict",
    "guard_connection",
    "guard_upgrade",
    "is_websocket",
]

#: Where `login_required` lists its guards on the handler it wraps (innermost first).
GUARDS_ATTRIBUTE = "sanic_cookies_login_guards"

#: The close code of a connection a guard refuses after the upgrade (RFC 6455: policy).
POLICY_VIOLATION = 1008

logger = logging.getLogger("sanic_cookies")

NEW_ID = (
    "Session {name!r}: {what} needs a new session cookie, and a websocket handler cannot "
    "set one (the connection was upgraded; no response follows). Create the session, "
    "log in or rotate its id over HTTP before opening the websocket."
)
#: What a write plan that needs a new id was asked for, by plan name (`plan_write`).
NEW_ID_CAUSES = {
    "create": "a new session",
    "rotate": "a new session id (login_user or regenerate)",
    "restart": "a new session after destroy()",
}
CLIENT_SIDE = (
    "Session {name!r}: its backend {backend} keeps the session in the cookie, and a "
    "websocket handler cannot set a cookie (no response follows the upgrade), so the "
    "session is read-only here. Make this change over HTTP."
)
UNLOCKED = (
    "Session {name!r}: in a websocket handler a change is written only when its "
    "`async with request.ctx.{name}` block ends (no response follows to write it); "
    "make the change inside the block."
)


STALE = (
    "Session {name!r}: in a websocket handler a plain read outside `async with "
    "request.ctx.{name}` would return what an earlier read saw, which may be stale (a "
    "logout elsewhere, an expiry). Read inside the block, or `await "
    "request.ctx.{name}.peek(key)`, or `await request.ctx.{name}.load()` first (it reads "
    "the store now)."
)
DROPPED = (
    "Session %r: changes made outside `async with` in a websocket handler (in place, such "
    "as sess['cart'].append(x) or sess.data.field = x) were dropped: a block starts from "
    "the store. Make changes inside the block. (Logged once per connection.)"
)


class LoginCheck(Protocol):
    """What the guards of `login_required` offer here (`LoginGuard`)."""

    session_name: str
    check: Callable[[Request], Awaitable[HTTPResponse | None]]


def is_websocket(request: Request) -> bool:
    """Whether `request` is the upgrade request of a websocket route."""
    route = request.route
    return route is not None and bool(getattr(route.extra, "websocket", False))


class WebsocketSessionDict(SessionDict):
    """The session of a websocket handler (see the module's docstring)."""

    _read_by_load = False  # the data outside a block is what `load` read: readable
    _cookie_final = True  # no response follows: a write keeps the stored expiry
    _warned_unlocked = False  # the dropped changes outside a block were logged

    @classmethod
    async def attach(cls, session: Session, request: Request) -> WebsocketSessionDict:
        """Give `request` (a websocket's upgrade request) its session, as the middleware does."""
        self = cls(session, request.headers)
        setattr(request.ctx, session.name, self)
        if session.config.autoload:
            await self.autoload()
        return self

    # -- reading: what the store holds now -------------------------------------------

    @property
    def is_loaded(self) -> bool:
        """True inside ``async with`` only: outside, a long-lived connection must re-read."""
        return self._in_block and self._data is not None

    async def load(self) -> Self:
        """Load without the lock; outside ``async with`` every call re-reads the store.

        Plain reads outside a block read what the last `load` read (and nothing else):
        call it again for what the store holds now.
        """
        if self._in_block:
            return await super().load()
        self._drop_unlocked_changes()
        self._data = None
        self._read_by_load = False
        await super().load()
        self._read_by_load = True
        return self

    async def autoload(self) -> None:
        """Load as `Session` does at the upgrade, keeping only a failure to raise later.

        What it read is not for plain reads later on the connection (it would go stale
        with nothing to tell): those need a block or `load`.
        """
        await super().autoload()
        self._read_by_load = False

    async def peek(self, key: str) -> Any:
        """The value of `key`, re-read from the store outside ``async with``."""
        if not self._in_block:
            await self.load()
        return await super().peek(key)

    def forget_read(self) -> None:
        """Forget what a read outside a block saw: plain reads need a block or `load` again.

        The guards call it after checking the login, so what they read at the upgrade
        is not what the handler's plain reads see for the life of the connection.
        """
        if not self._in_block:
            self._read_by_load = False

    def _require_fresh(self) -> None:
        """Refuse a plain read outside a block of data no `load` read (a block's, say)."""
        if not self._in_block and not self._read_by_load:
            raise WebsocketSessionError(STALE.format(name=self._session.name))

    def _access(self) -> MutableMapping[str, Any]:
        self._require_fresh()
        return super()._access()

    def _require_loaded(self) -> None:
        self._require_fresh()
        super()._require_loaded()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await super().__aexit__(exc_type, exc, tb)
        finally:
            # What the block read goes stale once it ends: later reads re-read.
            self._data = None
            self._read_by_load = False

    # -- changes outside a block: refused, or dropped where they cannot be seen ------------

    def _unlocked_changes(self) -> None:
        """None: a block starts from the store (changes outside one are dropped, logged)."""
        self._drop_unlocked_changes()
        return None

    def _drop_unlocked_changes(self) -> None:
        """Log (once per connection) changes made outside a block, which are dropped.

        ``sess["k"] = v`` outside a block raises; an in-place change to a value read
        outside one (``sess["cart"].append(x)``, ``sess.data.note = ...``) cannot be
        seen when it is made, only here, when the data is read again.
        """
        if self._data is None or self._warned_unlocked or not self.is_modified:
            return
        self._warned_unlocked = True
        logger.warning(DROPPED, self._session.name)

    # -- writing: only in a block, never a new cookie ------------------------------------

    def _refuse_unlocked(self) -> None:
        if not self._in_block:
            raise WebsocketSessionError(UNLOCKED.format(name=self._session.name))

    def __setitem__(self, key: str, value: Any) -> None:
        self._refuse_unlocked()
        super().__setitem__(key, value)

    def __delitem__(self, key: str) -> None:
        self._refuse_unlocked()
        super().__delitem__(key)

    def regenerate(self) -> None:
        """Refused: a new id needs a new cookie (raises `WebsocketSessionError`)."""
        self._refuse_unlocked()
        raise WebsocketSessionError(
            NEW_ID.format(name=self._session.name, what=NEW_ID_CAUSES["rotate"])
        )

    def destroy(self) -> None:
        """End the session when the ``async with`` block ends (server-side backends)."""
        self._refuse_unlocked()
        super().destroy()

    def set_auth(
        self,
        auth: AuthInfo | None,
        *,
        ttl: float | None = None,
        persistent: bool | None = None,
        lifetime: float | None = None,
    ) -> None:
        """Record a login change; only inside ``async with`` (see `SessionDict.set_auth`)."""
        self._refuse_unlocked()
        super().set_auth(auth, ttl=ttl, persistent=persistent, lifetime=lifetime)

    async def _write(self) -> None:
        if self._data is None:
            return
        plan, changed = self._plan()
        if plan is KEEP:
            return
        name = self._session.name
        if plan.new_id:
            what = NEW_ID_CAUSES.get(plan.name, "a new session id")
            raise WebsocketSessionError(NEW_ID.format(name=name, what=what))
        if not changed and not plan.end:
            # Only the sliding expiry is due. Left to the next HTTP request, which can renew
            # the cookie too: extended here, the store would outlive the browser's cookie
            # and keep that request from renewing it (and a client-side one needs a cookie).
            return
        side = self._side or self._resolve()
        if isinstance(side, ClientSide):
            raise WebsocketSessionError(CLIENT_SIDE.format(name=name, backend=side.backend.label))
        await super()._write()

    def _plan(self) -> tuple[WritePlan, bool]:
        """What a write would do now, and whether the data, login or id changed."""
        assert self._data is not None
        side = self._side or self._resolve()
        state = self._write_state(encode_data(self._data), now())
        changed = state.data_changed or state.meta_changed or state.rotate or state.destroyed
        return plan_write(state, side.fresh_ttl), changed


async def guard_upgrade(session: Session, request: Request) -> HTTPResponse | None:
    """Run `session`'s `login_required` guards of a websocket route before the upgrade.

    Returns:
        None to go on with the handshake, or the guard's response (a redirect);
        `Unauthorized` propagates (Sanic answers 401 and never upgrades).
    """
    assert request.route is not None  # a websocket route's request
    guards: tuple[LoginCheck, ...] = getattr(routed_handler(request.route), GUARDS_ATTRIBUTE, ())
    try:
        for guard in guards:
            if guard.session_name == session.name:
                denied = await guard.check(request)
                if denied is not None:
                    return denied
    finally:
        _forget_read(request, session.name)
    return None


def _forget_read(request: Request, name: str) -> None:
    """Make what a guard read of session `name` unreadable by plain reads (it goes stale)."""
    sess = getattr(request.ctx, name, None)
    if isinstance(sess, WebsocketSessionDict):
        sess.forget_read()


async def guard_connection(guard: LoginCheck, request: Request, args: tuple[Any, ...]) -> bool:
    """Check `guard` on an upgraded connection; if refused, close it (1008) and say False.

    The upgrade was guarded already (`guard_upgrade`); this runs again inside the
    handler in case the session changed since, or the guard was hidden from the route.
    """
    try:
        denied = await guard.check(request)
    except Unauthorized as exc:
        reason = str(exc)
    else:
        if denied is None:
            return True
        reason = "Login required"
    finally:
        _forget_read(request, guard.session_name)
    position = next(i for i, arg in enumerate(args) if arg is request)
    websocket = args[position + 1]
    await websocket.close(code=POLICY_VIOLATION, reason=reason)
    return False
