"""`login_required`, `fresh_login_required`, `safe_next`: route guards without open redirects."""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Awaitable, Callable
from inspect import isawaitable
from typing import Any, TypeVar, cast
from urllib.parse import quote, unquote, urlsplit

from sanic import Request, Sanic
from sanic.exceptions import Unauthorized
from sanic.response import HTTPResponse, empty, redirect

from ._auth import AuthSession, _positive_seconds
from ._backend import now
from ._errors import ConfigurationError
from ._route_checks import check_routes_at_startup, route_handlers, route_label
from ._websocket import GUARDS_ATTRIBUTE, guard_connection, is_websocket

__all__ = ["LoginGuard", "fresh_login_required", "is_safe_path", "login_required", "safe_next"]

H = TypeVar("H", bound=Callable[..., Any])

#: The guards a handler was given (innermost first), set on the handler itself, so a guard
#: that sits above the route decorator, wrapping nothing the app calls, is found.
_WANTED_ATTRIBUTE = "sanic_cookies_login_guards_wanted"
#: Set on ``app.ctx`` / ``blueprint.ctx`` once it has the start-up check of the guards.
_STARTUP_CHECK = "_sanic_cookies_login_startup_check"

#: Longer `next` values are dropped rather than echoed into a Location header.
MAX_NEXT_LENGTH = 2048

#: Characters that end an HTML attribute or start a tag (``"`` ``'`` `````` ``<`` ``>``),
#: and the backslash, which browsers read as ``/`` (so ``/\\evil`` is ``//evil``).
_UNSAFE = frozenset("\"'`<>\\")

#: Percent-decoding rounds tried: ``%252F`` is ``%2F`` after one and ``/`` after two.
_DECODE_ROUNDS = 3


def is_safe_path(value: object) -> bool:
    """Tell whether `value` is a same-site path, safe to redirect to and to echo into HTML.

    Accepted: ``/``-rooted paths with an optional query and fragment, such as
    ``/orders?page=2``. Refused, also once percent-decoded (up to three times)
    or Unicode-normalised (NFKC, which turns ``／`` into ``/``):

    * a scheme or host (``https://evil``, ``//evil``, ``javascript:``);
    * ``"`` ``'`` `````` ``<`` ``>``, which could end an HTML attribute or open a tag
      in a page that echoes the value;
    * backslashes (``/\\evil`` is ``//evil`` to browsers), control and
      whitespace characters (browsers drop tabs and newlines, turning
      ``/\\t/evil`` into ``//evil``; CR and LF would split a header);
    * paths that become ``//host`` once their dot segments are resolved
      (``/.//evil``, ``/a/..//evil``), as a server or proxy may normalise them.
    """
    if not isinstance(value, str) or not value or len(value) > MAX_NEXT_LENGTH:
        return False
    forms = [value]
    for _ in range(_DECODE_ROUNDS):
        decoded = unquote(forms[-1])
        if decoded == forms[-1]:
            break
        forms.append(decoded)
    else:
        return False  # still changing: encoded more deeply than any real link
    forms += [unicodedata.normalize("NFKC", form) for form in forms]
    if not all(_plain_rooted_path(form) for form in forms):
        return False
    parts = urlsplit(value)
    return not parts.scheme and not parts.netloc


def _plain_rooted_path(candidate: str) -> bool:
    if not candidate.startswith("/") or candidate.startswith("//"):
        return False
    for char in candidate:
        if char in _UNSAFE or char.isspace() or unicodedata.category(char)[0] in "CZ":
            return False
    path = candidate.split("?", 1)[0].split("#", 1)[0]
    return not _resolve_dots(path).startswith("//")


def _resolve_dots(path: str) -> str:
    """`path` with its ``.`` and ``..`` segments resolved (RFC 3986 5.2.4), empty ones kept."""
    kept: list[str] = []
    for segment in path.split("/")[1:]:
        if segment == ".":
            continue
        if segment == "..":
            if kept:
                kept.pop()
            continue
        kept.append(segment)
    return "/" + "/".join(kept)


def safe_next(request: Request, default: str = "/") -> str:
    """Where to go after login: the request's ``next`` parameter if it is safe, else `default`.

    Reads ``next`` from the query string, else from a submitted form; any
    value that is not a same-site relative path (see `is_safe_path`) is ignored.
    What it returns holds no character that could end an HTML attribute or
    split a header; still escape it where you echo it (``html.escape``), as
    any value put into a page.

    ::

        @app.post("/login")
        async def login(request):
            ...
            await auth.login_user(request, user)
            return redirect(safe_next(request))
    """
    value = request.args.get("next")
    if value is None and request.content_type.startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        try:
            form = request.form
            value = form.get("next") if form is not None else None
        except Exception:  # a malformed form is just "no next"
            value = None
    return value if is_safe_path(value) else default


def _find_request(args: tuple[Any, ...]) -> Request:
    # A function handler gets (request, ...); an HTTPMethodView method (self, request, ...).
    for arg in args[:2]:
        if isinstance(arg, Request):
            return arg
    raise TypeError("login_required: the decorated handler was not called with a Request")


class LoginGuard:
    """What `login_required` and `fresh_login_required` return.

    Decorate a handler with it, or run its `check` as request middleware to
    guard a whole blueprint::

        bp = Blueprint("account", url_prefix="/account")
        bp.on_request(login_required().check)

    Attributes:
        check: ``async check(request) -> HTTPResponse | None``: let the request
            through (None) or refuse it (a redirect response, or raise
            `Unauthorized`). An OPTIONS request it would refuse gets an
            empty 204 instead (CORS preflights carry no cookies; their CORS
            headers come from response middleware); the guarded handler
            does not run for it. It is a plain function, not a bound method,
            because Sanic's blueprint ``on_request`` silently ignores bound
            methods (it tells a middleware from a decorator call with
            `inspect.isfunction`).
    """

    check: Callable[[Request], Awaitable[HTTPResponse | None]]

    def __init__(self, session_name: str, redirect_to: str | None, max_age: float | None) -> None:
        if not isinstance(session_name, str):
            raise TypeError(
                "login_required takes arguments: write @login_required(), not @login_required"
            )
        if redirect_to is not None and (not isinstance(redirect_to, str) or not redirect_to):
            raise ConfigurationError(f"redirect_to must be a non-empty URL, got {redirect_to!r}")
        self.session_name = session_name
        self.redirect_to = redirect_to
        self.max_age = max_age

        async def check(request: Request) -> HTTPResponse | None:
            return await self._check(request)

        self.check = check

    def __call__(self, handler: H) -> H:
        """Guard `handler` (sync or async, function or HTTPMethodView method).

        Write it below the route decorator. Above it, it would wrap the handler the app
        already routes to, unguarded: the handler is marked, and an app that routes to
        it without this guard refuses to start (`ConfigurationError`).
        """
        # Marked before wrapping: functools.wraps copies the mark onto the wrapper too.
        setattr(handler, _WANTED_ATTRIBUTE, (*getattr(handler, _WANTED_ATTRIBUTE, ()), self))
        check_routes_at_startup(handler, _STARTUP_CHECK, _refuse_unguarded_routes)

        @functools.wraps(handler)
        async def guarded(*args: Any, **kwargs: Any) -> Any:
            request = _find_request(args)
            if is_websocket(request):  # upgraded already: a refusal closes the connection
                if not await guard_connection(self, request, args):
                    return None
            else:
                denied = await self._check(request)
                if denied is not None:
                    return denied
            result = handler(*args, **kwargs)
            if isawaitable(result):
                result = await result
            return result

        # Listed for the session middleware, which checks a websocket route's guards
        # before the upgrade (a refusal is then an HTTP 401, not a closed connection).
        setattr(guarded, GUARDS_ATTRIBUTE, (*getattr(handler, GUARDS_ATTRIBUTE, ()), self))
        return cast(H, guarded)

    def __repr__(self) -> str:
        fresh = "" if self.max_age is None else f"fresh (max_age={self.max_age:g}) "
        return f"@{fresh}login_required(session_name={self.session_name!r})"

    async def _check(self, request: Request) -> HTTPResponse | None:
        """See `check`.

        Raises:
            Unauthorized: Nobody is logged in (or not recently enough) and no
                ``redirect_to`` was given.
        """
        auth = self._auth_session(request)
        if await auth.current_user(request) is not None and await self._fresh(auth, request):
            return None
        if request.method == "OPTIONS":
            # A CORS preflight carries no cookies: a 401 would make the browser block the
            # real request, but the guarded handler must not run for it either.
            return empty()
        if self.redirect_to is None:
            raise Unauthorized("Login required" if self.max_age is None else "Fresh login required")
        return redirect(self._redirect_location(request))

    async def _fresh(self, auth: AuthSession, request: Request) -> bool:
        if self.max_age is None:
            return True
        info = await auth._login_info(request)
        return info is not None and now() - info.login_at <= self.max_age

    def _auth_session(self, request: Request) -> AuthSession:
        exts = getattr(request.app.ctx, "exts", None)
        auth = getattr(exts, self.session_name, None)
        if not isinstance(auth, AuthSession):
            raise ConfigurationError(
                f"login_required: the app has no AuthSession named {self.session_name!r}"
            )
        return auth

    def _redirect_location(self, request: Request) -> str:
        assert self.redirect_to is not None
        target = request.path
        if request.query_string:
            target += "?" + request.query_string
        if not is_safe_path(target):
            return self.redirect_to
        separator = "&" if "?" in self.redirect_to else "?"
        return f"{self.redirect_to}{separator}next={quote(target, safe='/')}"


async def _refuse_unguarded_routes(app: Sanic[Any, Any]) -> None:
    """Refuse to start when a route's handler is marked by a guard that does not wrap it."""
    for route, handler in route_handlers(app):
        wanted = getattr(handler, _WANTED_ATTRIBUTE, ())
        guarding = getattr(handler, GUARDS_ATTRIBUTE, ())
        missing = [guard for guard in wanted if guard not in guarding]
        if missing:
            raise ConfigurationError(
                f"{missing[0]!r} is above the route decorator of {route_label(route, handler)}, "
                "so the app routes to the unguarded handler and nobody's login would be "
                "checked: put the guard below the route decorator (@app.get(...), "
                "@app.websocket(...), @bp.route(...)), directly above the function"
            )


def login_required(
    session_name: str = "auth_session", *, redirect_to: str | None = None
) -> LoginGuard:
    """Guard a route: only logged-in users get through.

    Without a logged-in user the route answers 401 (`sanic.exceptions.Unauthorized`),
    or, with `redirect_to`, a 302 to ``<redirect_to>?next=<this path>``
    (``next`` is only ever a same-site path; pass it through `safe_next`
    after login). An OPTIONS request without a login (a CORS preflight carries
    no cookies) gets an empty 204, and the handler does not run: set CORS
    headers in response middleware.

    Works on sync and async handlers, `HTTPMethodView` methods and their
    ``decorators = [login_required()]``; for a blueprint, decorate each route
    or add ``bp.on_request(login_required().check)``.

    ::

        @app.get("/account")
        @login_required(redirect_to="/login")
        async def account(request): ...

    Args:
        session_name: The `AuthSession` to check (its ``session_name``).
        redirect_to: A login page URL; None: answer 401.
    """
    return LoginGuard(session_name, redirect_to, None)


def fresh_login_required(
    max_age: float = 900.0,
    session_name: str = "auth_session",
    *,
    redirect_to: str | None = None,
) -> LoginGuard:
    """Like `login_required`, but the login must also be at most `max_age` seconds old.

    For sensitive pages (changing the password or e-mail, payment details):
    a user logged in long ago, or remembered from an old login, must log in again.

    Args:
        max_age: Seconds since `login_user` within which a login counts as fresh.
        session_name: The `AuthSession` to check.
        redirect_to: A login page URL; None: answer 401.
    """
    try:
        seconds = _positive_seconds("max_age", max_age)
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from None
    return LoginGuard(session_name, redirect_to, seconds)
