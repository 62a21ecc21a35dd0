"""`CSRFProtect`: cross-site request forgery protection for the forms and APIs of a Sanic app.

Two checks on every unsafe request (anything but GET, HEAD, OPTIONS and TRACE), the
cheap one first:

1. The request must come from this site (`OriginPolicy`: ``Sec-Fetch-Site``, else
   ``Origin``, else the ``Referer`` on HTTPS), or from a trusted origin.
2. It must carry the session's token (a synchronizer token, see `csrf_token`) in the
   ``X-CSRF-Token`` header or the ``csrf_token`` form field.

A request that fails either gets `CSRFError` (403, one generic body) and one log line
giving the reason, never the token.

A websocket handshake is a GET, but the browser attaches the session cookie to it
whatever page opens it (no same-origin policy for websockets), and the connection then
acts for the user: cross-site websocket hijacking. So a handshake gets the first check
(the same `OriginPolicy`), before the upgrade and before any session is read; it has no
token to check, as the browser's ``WebSocket`` API cannot add a header or a body.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable
from inspect import isawaitable
from types import SimpleNamespace
from typing import Any, TypeVar, cast

from sanic import Request, Sanic
from sanic.exceptions import Forbidden

from ._auth import AuthSession
from ._csrf_token import TOKEN_KEY, mask, matches, new_secret
from ._decorators import _find_request
from ._errors import ConfigurationError, SanicCookiesError
from ._origin import OriginPolicy
from ._route_checks import check_routes_at_startup, route_handlers, route_label, routed_handler
from ._session_access import locked, peek, sessions_of
from ._session_dict import SessionDict
from ._websocket import is_websocket

__all__ = ["CSRFError", "CSRFProtect", "csrf_exempt", "csrf_protect", "csrf_token"]

logger = logging.getLogger("sanic_cookies")

H = TypeVar("H")

#: Methods that must not change state, so they are never checked.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
#: The attribute `csrf_exempt` (False) and `csrf_protect` (True) set on a handler.
_MARK = "__sanic_cookies_csrf__"
#: Set on the wrapper `csrf_protect` returns, which checks the request itself.
_SELF_CHECKING = "__sanic_cookies_csrf_checks_itself__"
#: Set on ``app.ctx`` / ``blueprint.ctx`` once it has the start-up check of `csrf_protect`.
_STARTUP_CHECK = "_sanic_cookies_csrf_startup_check"
#: Set on ``request.ctx`` once the request has passed, so a check runs once.
_PASSED = "_sanic_cookies_csrf_passed"
#: Where `CSRFProtect` is found: ``app.ctx.exts.csrf``.
_EXT_NAME = "csrf"
_LOGGED_DETAIL = 200  # characters of a header value quoted in the log line

GENERIC_REFUSAL = (
    "Forbidden: the request was refused by cross-site request forgery (CSRF) protection. "
    "If you submitted a form, reload its page and try again."
)


class CSRFError(SanicCookiesError, Forbidden):
    """An unsafe request failed the CSRF checks; it answers 403.

    The message is the same whatever the reason (the log line says which check
    failed). Customize the page with ``@app.exception(CSRFError)``.
    """

    quiet = True  # one log line of our own instead of a traceback

    def __init__(self, message: str = GENERIC_REFUSAL) -> None:
        super().__init__(message)


class CSRFProtect:
    """CSRF protection for `app`: an origin check, then the session's token.

    ::

        app = Sanic("shop")
        Session(app)
        CSRFProtect(app)                 # every POST, PUT, PATCH, DELETE is checked

        @app.get("/cart")
        async def cart(request):
            token = await csrf_token(request)
            return html(f'<form method="post"><input type="hidden" name="csrf_token" '
                        f'value="{token}"><button>Buy</button></form>')

    The token lives in one of the app's sessions: `session_name`, else the app's
    `AuthSession` if it has one (so that login replaces the token and logout ends
    it), else its `Session`.

    Args:
        app: The app to attach to now; or call `init_app` later.
        session_name: The session that holds the token (see above).
        trusted_origins: Origins allowed to post here from another site, such as
            ``["https://shop.example.com"]``; a host may start with ``*.`` for every
            subdomain. None: ``app.config.CSRF_TRUSTED_ORIGINS``, else none.
        protect_all: True: check every unsafe request except `csrf_exempt` routes.
            False: check only `csrf_protect` routes.
        field_name: The form field that carries the token.
        header_name: The header that carries the token (for scripts).
    """

    def __init__(
        self,
        app: Sanic[Any, Any] | None = None,
        *,
        session_name: str | None = None,
        trusted_origins: Iterable[str] | None = None,
        protect_all: bool = True,
        field_name: str = "csrf_token",
        header_name: str = "X-CSRF-Token",
    ) -> None:
        if session_name is not None and not session_name.isidentifier():
            raise ConfigurationError(f"session_name must be an identifier, got {session_name!r}")
        if not field_name or not header_name:
            raise ConfigurationError("field_name and header_name must not be empty")
        self._session_name = session_name
        self._resolved_name: str | None = None  # checked once, then kept
        self._trusted = trusted_origins
        self.origins = OriginPolicy(trusted_origins or ())
        self.protect_all = bool(protect_all)
        self.field_name = field_name
        self.header_name = header_name
        self.app: Sanic[Any, Any] | None = None
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Sanic[Any, Any]) -> None:
        """Attach to `app`: request middleware, and ``app.ctx.exts.csrf``."""
        if self.app is not None:
            raise ConfigurationError("This CSRFProtect is already attached to an app")
        exts = getattr(app.ctx, "exts", None)
        if exts is None:
            exts = app.ctx.exts = SimpleNamespace()
        if getattr(exts, _EXT_NAME, None) is not None:
            raise ConfigurationError("The app already has a CSRFProtect")
        setattr(exts, _EXT_NAME, self)
        self.app = app
        if self._trusted is None:
            self.origins = OriginPolicy(app.config.get("CSRF_TRUSTED_ORIGINS") or ())
        # After every session's request middleware (priority 0): the check reads one.
        app.register_middleware(self._on_request, "request", priority=-1)
        # Before them: a refused handshake reads no session and meets no login guard first.
        app.register_middleware(self._on_handshake, "request", priority=1)
        app.register_listener(self._start, "before_server_start")

    async def _start(self, app: Sanic[Any, Any]) -> None:
        # Checked afresh with every session attached: a mistake fails at start-up.
        self._resolved_name = None
        self.session_name  # noqa: B018

    @property
    def session_name(self) -> str:
        """The name of the session that holds the token.

        Raises:
            ConfigurationError: The app has no such session, or the token would live
                outside the app's `AuthSession` (login could not replace it).
        """
        if self._resolved_name is None:
            sessions = sessions_of(self.app) if self.app is not None else []
            names = [s.name for s in sessions]
            auths = [s.name for s in sessions if isinstance(s, AuthSession)]
            name = self._session_name
            if name is None:
                name = _default_session(names, auths)
            self._resolved_name = _checked_token_session(name, names, auths)
        return self._resolved_name

    # -- the check ---------------------------------------------------------------

    def _session_of(self, request: Request) -> SessionDict:
        sess = getattr(request.ctx, self.session_name, None)
        if not isinstance(sess, SessionDict):
            raise ConfigurationError(
                f"request.ctx.{self.session_name} is missing: is this request served by the "
                "app CSRFProtect is attached to?"
            )
        return sess

    async def _on_request(self, request: Request) -> None:
        if request.method not in SAFE_METHODS and self._checks(request):
            await self.verify(request)

    async def _on_handshake(self, request: Request) -> None:
        if is_websocket(request) and self._checks(request):
            await self.verify(request)

    def _checks(self, request: Request) -> bool:
        """Whether the route of `request` is checked (`csrf_exempt`, `protect_all`)."""
        mark = _route_mark(request)
        return mark is True or (mark is None and self.protect_all)

    async def verify(self, request: Request) -> None:
        """Check `request` now (routes are checked for you; this is for custom flows).

        A websocket handshake gets the origin check only (it cannot carry a token).

        Raises:
            CSRFError: It looks cross-site, or lacks the session's token.
        """
        reason = self.origins.refusal(request)
        if reason is None and not is_websocket(request):
            reason = await self._token_refusal(request)
        if reason is not None:
            logger.warning(
                "CSRF: refused %s %s%s: %s",
                request.method,
                request.path[:_LOGGED_DETAIL],
                " (websocket handshake)" if is_websocket(request) else "",
                reason[: 2 * _LOGGED_DETAIL],
            )
            raise CSRFError()
        setattr(request.ctx, _PASSED, True)

    async def _token_refusal(self, request: Request) -> str | None:
        """Why the token of `request` fails (for the log), or None if it matches."""
        submitted = self._submitted(request)
        if submitted is None:
            return f"no token in the {self.header_name} header or {self.field_name} field"
        secret = await peek(self._session_of(request), TOKEN_KEY)
        if not isinstance(secret, str):
            return "the session holds no token (new, expired or logged out)"
        if not matches(submitted, secret):
            return "the token does not match the session's"
        return None

    def _submitted(self, request: Request) -> str | None:
        value = request.headers.get(self.header_name)
        if value is None and request.content_type.startswith(_FORM_TYPES):
            try:
                form = request.form
                value = form.get(self.field_name) if form is not None else None
            except Exception:  # a malformed body is just "no token"
                value = None
        return value if isinstance(value, str) else None

    # -- the token ---------------------------------------------------------------

    async def token(self, request: Request) -> str:
        """See `csrf_token`."""
        sess = self._session_of(request)
        secret = await peek(sess, TOKEN_KEY)
        if not isinstance(secret, str):
            async with locked(sess) as held:
                secret = held.get(TOKEN_KEY)
                if not isinstance(secret, str):
                    secret = held[TOKEN_KEY] = new_secret()
        return mask(secret)


def _default_session(names: list[str], auths: list[str]) -> str | None:
    """The session to keep the token in when none is named: the one `AuthSession`, else
    the one called "session", else the only one; None if that does not decide."""
    if len(auths) == 1:
        return auths[0]
    if "session" in names:
        return "session"
    return names[0] if len(names) == 1 else None


def _checked_token_session(name: str | None, names: list[str], auths: list[str]) -> str:
    """`name`, once checked as the session to keep the token in, among the app's sessions
    `names` of which `auths` are `AuthSession`.

    Raises:
        ConfigurationError: No such session, or one that login would not replace.
    """
    if name is None or name not in names:
        have = ", ".join(repr(n) for n in names) or "none"
        raise ConfigurationError(
            f"CSRFProtect keeps its token in a session, but the app has no session "
            f"{name or 'to use'!r} (its sessions: {have}): attach Session(app) or "
            "AuthSession(app) first, or pass session_name="
        )
    if auths and name not in auths:
        raise ConfigurationError(
            f"CSRFProtect(session_name={name!r}): the app logs users in with "
            f"AuthSession {auths[0]!r}; keep the token there (session_name={auths[0]!r}) "
            "so that login replaces it"
        )
    return name


def _protector(request: Request) -> CSRFProtect:
    exts = getattr(request.app.ctx, "exts", None)
    protect = getattr(exts, _EXT_NAME, None)
    if not isinstance(protect, CSRFProtect):
        raise ConfigurationError(
            "CSRF tokens need CSRFProtect(app) (or CSRFProtect(app, protect_all=False) to "
            "check only @csrf_protect routes)"
        )
    return protect


def _route_mark(request: Request) -> bool | None:
    """`csrf_exempt` (False) or `csrf_protect` (True) on the route's handler, else None."""
    route = request.route
    if route is None:
        return None
    handler = routed_handler(route)
    mark = getattr(handler, _MARK, None)
    view = getattr(handler, "view_class", None)  # an HTTPMethodView: its method's mark wins
    if view is not None:
        method_mark = getattr(getattr(view, request.method.lower(), None), _MARK, None)
        if method_mark is not None:
            mark = method_mark
    return mark if isinstance(mark, bool) else None


async def csrf_token(request: Request) -> str:
    """The CSRF token to put in this request's forms (or a ``<meta>`` tag for scripts).

    ::

        token = await csrf_token(request)
        f'<input type="hidden" name="csrf_token" value="{token}">'

    The session gets a token the first time (that writes the session, so call it for
    pages with forms). Each call returns a differently masked copy of the same token;
    all are valid until login replaces it or logout ends the session. Works inside and
    outside ``async with`` of the session.

    Raises:
        ConfigurationError: The app has no `CSRFProtect`.
    """
    return await _protector(request).token(request)


def csrf_exempt(handler: H) -> H:
    """Never check this route, even under ``CSRFProtect(app)`` (webhooks, token-auth APIs).

    Works on functions and `HTTPMethodView` methods. An exempt route that uses
    cookies for who the user is can be forged: exempt only routes that do not.
    """
    setattr(handler, _MARK, False)
    return handler


def csrf_protect(handler: H) -> H:
    """Check this route, also under ``CSRFProtect(app, protect_all=False)``.

    Works above or below ``@app.post(...)`` / ``@bp.post(...)``: the handler itself
    is marked too, so the `CSRFProtect` check finds it whichever order. Without a
    `CSRFProtect` on the app, the route answers 500 at request time (below the route
    decorator) or the app refuses to start (above it, where the app routes to the
    marked handler itself): an unprotected route that says it is protected would
    be worse.
    """
    func = cast(Any, handler)
    setattr(func, _MARK, True)
    check_routes_at_startup(func, _STARTUP_CHECK, _refuse_unprotected_routes)

    @functools.wraps(func)
    async def protected(*args: Any, **kwargs: Any) -> Any:
        request = _find_request(args)
        checked = request.method not in SAFE_METHODS or is_websocket(request)
        if checked and not getattr(request.ctx, _PASSED, False):
            await _protector(request).verify(request)
        result = func(*args, **kwargs)
        if isawaitable(result):
            result = await result
        return result

    setattr(protected, _MARK, True)
    setattr(protected, _SELF_CHECKING, True)
    return cast(H, protected)


async def _refuse_unprotected_routes(app: Sanic[Any, Any]) -> None:
    """Refuse to start when a route's handler is marked `csrf_protect` but nothing checks it."""
    exts = getattr(app.ctx, "exts", None)
    if isinstance(getattr(exts, _EXT_NAME, None), CSRFProtect):
        return
    for route, handler in route_handlers(app):
        if getattr(handler, _MARK, None) is True and not getattr(handler, _SELF_CHECKING, False):
            raise ConfigurationError(
                f"@csrf_protect on {route_label(route, handler)} needs CSRFProtect(app) (or "
                "CSRFProtect(app, protect_all=False) to check only @csrf_protect routes)"
            )
