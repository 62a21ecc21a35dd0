"""`login_as`: log a test client in without going through the login form."""

from __future__ import annotations

from typing import Any

from sanic import Sanic

from .._auth import AuthSession
from .._errors import ConfigurationError

__all__ = ["cookie_header", "login_as"]


async def login_as(
    app: Sanic[Any, Any],
    user: Any,
    *,
    session_name: str = "auth_session",
    remember: bool = False,
    duration: float | None = None,
) -> dict[str, str]:
    """Create a session logged in as `user`, straight in the app's backend.

    The session is the same as one `AuthSession.login_user` makes (same
    record, timeouts and user index), so the app cannot tell the difference.
    Works before the app has started (the backend is opened for the call and
    then reused by the server) and while it runs; with any server-side
    backend, also from another process than the server's.

    Returns:
        The cookie to send, as ``{cookie name: session id}``.

    The product's cookies are ``Secure``, which the cookie jars of httpx and
    sanic-testing do not send back over plain http; so pass the cookie yourself,
    per request as a header, or once into the client's jar (a cookie set by
    hand is not Secure, so the jar sends it)::

        cookies = await login_as(app, {"id": 7, "name": "ada"})
        _, resp = await app.asgi_client.get("/account", headers=cookie_header(cookies))
        # or: app.asgi_client.cookies.update(cookies), then plain requests

    A cookie the app sets later in the test (a rotation at a new login, say)
    is Secure again: to follow those, send ``headers=`` with the new value, or
    give the test app ``secure=False``.

    Args:
        app: The application, with an `AuthSession` attached.
        user: The user to store, as `login_user` would.
        session_name: The `AuthSession`'s name.
        remember: Make it a remembered login.
        duration: The login's lifetime in seconds, as in `login_user`.
    """
    auth = getattr(getattr(app.ctx, "exts", None), session_name, None)
    if not isinstance(auth, AuthSession):
        raise ConfigurationError(
            f"login_as: app {app.name!r} has no AuthSession named {session_name!r}"
        )
    sid = await auth._issue_login(user, remember=remember, duration=duration)
    return {auth._cookie_key(): sid}


def cookie_header(cookies: dict[str, str]) -> dict[str, str]:
    """Turn ``{name: value}`` (from `login_as`) into a ``Cookie`` request header."""
    return {"Cookie": "; ".join(f"{name}={value}" for name, value in cookies.items())}
