"""The sanic-cookies demo: a visit counter, a login, a protected page, your sessions.

Run it with ``nox -s demo`` or ``python examples/demo.py`` and open the address it
prints (http://localhost:8000). Plain server-rendered HTML, no JavaScript.

Environment:

* ``SESSION_BACKEND``: where sessions live (default ``memory://``), e.g.
  ``redis://127.0.0.1:6379/0``, ``postgresql://postgres@127.0.0.1/test`` or
  ``cookie://`` (install the matching extra: ``pip install "sanic-cookies[redis]"``).
* ``SESSION_KEYS``: the encryption keys for ``cookie://`` (comma-separated; make
  one with ``python -m sanic_cookies keygen``).
* ``SESSION_REVOCATION``: the revocation store of ``cookie://`` (default ``memory://``).
* ``DEMO_HOST`` / ``DEMO_PORT``: where to listen (default 127.0.0.1:8000).

Two sessions sit side by side: a plain `Session` (cookie ``session``) counts your
visits whether or not you are logged in; an `AuthSession` (cookie ``auth_session``)
holds the login. Log in with any user name and the password ``demo``.

About CSRF: every state-changing action is a POST form carrying a CSRF token, and
`CSRFProtect` refuses a POST from another site before it looks at the token, the
login form included (SameSite=Lax cookies alone do not stop a forged login). The
"logged in" / "logged out" notices are flash messages.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime
from html import escape
from typing import Any
from urllib.parse import quote

from sanic import Request, Sanic
from sanic.response import HTTPResponse, html, redirect

from sanic_cookies import (
    AuthSession,
    CSRFProtect,
    Session,
    SessionInfo,
    UnsupportedOperation,
    csrf_token,
    flash,
    get_flashed_messages,
    login_required,
    safe_next,
)

PASSWORD = "demo"

STYLE = """
body { font: 16px/1.5 system-ui, sans-serif; max-width: 46rem; margin: 2rem auto; padding: 0 1rem; }
nav a, nav form { margin-right: 1rem; display: inline; }
table { border-collapse: collapse; } td, th { border: 1px solid #ccc; padding: .3rem .6rem; }
.note { color: #555; font-size: .9rem; } .error { color: #b00; } .count { font-size: 2rem; }
.flash { padding: .4rem .8rem; background: #eef6ee; border-left: 4px solid #4a4; }
button { font: inherit; cursor: pointer; }
"""


def create_app(name: str = "sanic_cookies_demo") -> Sanic[Any, Any]:
    """Build the demo app (its sessions use ``$SESSION_BACKEND``, default ``memory://``)."""
    app: Sanic[Any, Any] = Sanic(name)
    app.config.SESSION_BACKEND = os.environ.get("SESSION_BACKEND") or "memory://"
    if os.environ.get("SESSION_KEYS"):
        app.config.SESSION_KEYS = os.environ["SESSION_KEYS"]
    if app.config.SESSION_BACKEND.startswith("cookie"):
        # Logout must be final: cookie:// needs a revocation store. memory:// does for
        # this one-process demo; with several workers use redis:// or postgresql://.
        revocation = os.environ.get("SESSION_REVOCATION") or "memory://"
        app.config.SESSION_BACKEND_OPTIONS = {"revocation": revocation}
    Session(app)  # request.ctx.session: the visit counter, cookie "session"
    auth = AuthSession(app)  # request.ctx.auth_session: the login, cookie "auth_session"
    CSRFProtect(app)  # every POST checked; the token lives in the AuthSession

    @app.get("/")
    async def index(request: Request) -> HTTPResponse:
        async with request.ctx.session as sess:
            sess["visits"] = visits = sess.get("visits", 0) + 1
        user = await auth.current_user(request)
        greeting = (
            f"You are logged in as <strong id='user'>{escape(str(user))}</strong>."
            if user is not None
            else "You are not logged in."
        )
        body = f"""
        <h1>sanic-cookies demo</h1>
        <p>Visits in this browser session: <span class="count" id="visits">{visits}</span></p>
        <p class="note">Reload the page: the counter lives in a server-side session
        (backend <code>{escape(auth.backend.label)}</code>); your browser holds only a
        random 256-bit id in an HttpOnly, Secure, SameSite=Lax cookie.</p>
        <p>{greeting}</p>
        """
        return await render(request, body, user)

    @app.get("/login")
    async def login_form(request: Request) -> HTTPResponse:
        return await login_page(request, safe_next(request), error=None)

    @app.post("/login")
    async def login(request: Request) -> HTTPResponse:
        form: dict[str, Any] = request.form or {}
        username = (form.get("username") or "").strip()
        if not username or form.get("password") != PASSWORD or len(username) > 64:
            return await login_page(
                request,
                safe_next(request),
                error="Wrong user name or password (any name works; the password is “demo”).",
                status=401,
            )
        remember = form.get("remember") == "on"
        # A new session id, the anonymous login data dropped, the login time recorded.
        await auth.login_user(request, username, remember=remember)
        await flash(request, f"Logged in as {username}.", "success")
        return redirect(safe_next(request))

    @app.post("/logout")
    async def logout(request: Request) -> HTTPResponse:
        await auth.logout_user(request)
        await flash(request, "You are logged out.")  # kept in the visit counter's session
        return redirect("/")

    @app.get("/private")
    @login_required(redirect_to="/login")
    async def private(request: Request) -> HTTPResponse:
        user = await auth.current_user(request)
        since = await auth.login_time(request)
        body = f"""
        <h1>Private page</h1>
        <p>Hello <strong id="user">{escape(str(user))}</strong>! Only logged-in users see this
        page; others are sent to the login form and brought back here afterwards.</p>
        <p class="note">Logged in since {fmt(since)}.</p>
        """
        return await render(request, body, user)

    @app.get("/sessions")
    @login_required(redirect_to="/login")
    async def sessions(request: Request) -> HTTPResponse:
        user = await auth.current_user(request)
        try:
            infos = await auth.list_sessions(user, current=request)
        except UnsupportedOperation:
            body = f"""
            <h1>Your sessions</h1>
            <p>The <code>{escape(auth.backend.label)}</code> backend keeps sessions in
            the browser's cookie, so the server cannot list them (with its revocation
            store it can still end them all). Run the demo with a server-side backend
            (memory, Redis, PostgreSQL) for the list.</p>
            <form method="post" action="/sessions/logout-others">
              <p><button id="logout-others">Log out other sessions</button></p>
            </form>
            """
            return await render(request, body, user)
        token = await csrf_token(request)
        rows = "\n".join(session_row(info, token) for info in infos)
        body = f"""
        <h1>Your sessions</h1>
        <p>Every browser where <strong>{escape(str(user))}</strong> is logged in:</p>
        <table id="sessions">
          <tr><th>Device</th><th>IP address</th><th>Created</th><th>Last seen</th><th>Expires</th>
            <th>Remembered</th><th></th></tr>
          {rows}
        </table>
        <form method="post" action="/sessions/logout-others">
          {token_field(token)}
          <p><button id="logout-others">Log out other sessions</button></p>
        </form>
        <p class="note">Log out everywhere else after changing a password, or when a
        device is lost. "Last seen" moves when a session's expiry is refreshed, which
        happens at most every few minutes. Device and address are what the browser said
        when it logged in (hover a device for its full User-Agent).</p>
        """
        return await render(request, body, user)

    @app.post("/sessions/logout-others")
    @login_required(redirect_to="/login")
    async def logout_others(request: Request) -> HTTPResponse:
        user = await auth.current_user(request)
        await auth.logout_everywhere(user, keep=request)
        return redirect("/sessions")

    @app.post("/sessions/<handle:str>/logout")
    @login_required(redirect_to="/login")
    async def logout_one(request: Request, handle: str) -> HTTPResponse:
        user = await auth.current_user(request)
        await auth.logout_session(user, handle)
        return redirect("/sessions")

    return app


def fmt(when: datetime | None) -> str:
    return when.strftime("%Y-%m-%d %H:%M:%S UTC") if when is not None else "—"


def token_field(token: str) -> str:
    return f'<input type="hidden" name="csrf_token" value="{escape(token)}">'


async def render(request: Request, body: str, user: Any, status: int = 200) -> HTTPResponse:
    """`page` with the flashed notices, and a CSRF token for the logout button."""
    token = await csrf_token(request) if user is not None else None
    notices = await get_flashed_messages(request, with_categories=True)
    return page(body, user, status=status, token=token, notices=notices)


def session_row(info: SessionInfo, token: str) -> str:
    if info.current:
        action = "<strong class='current'>this browser</strong>"
    else:
        action = (
            f"<form method='post' action='/sessions/{quote(info.handle)}/logout'>"
            f"{token_field(token)}<button>Log out</button></form>"
        )
    # The User-Agent and a forwarded address are the client's own text: escaped, like
    # everything else this page echoes.
    return (
        f"<tr data-handle='{escape(info.handle)}'>"
        f"<td class='device' title='{escape(info.user_agent)}'>{escape(info.device)}</td>"
        f"<td class='ip'>{escape(info.ip or '—')}</td><td>{fmt(info.created)}</td>"
        f"<td>{fmt(info.last_seen)}</td><td>{fmt(info.expires)}</td>"
        f"<td>{'yes' if info.remember else 'no'}</td><td>{action}</td></tr>"
    )


def page(
    body: str,
    user: Any,
    status: int = 200,
    token: str | None = None,
    notices: list[tuple[str, str]] | None = None,
) -> HTTPResponse:
    if user is not None and token is not None:
        account = (
            "<a href='/sessions'>Your sessions</a>"
            f"<form method='post' action='/logout'>{token_field(token)}"
            "<button id='logout'>Log out</button></form>"
        )
    else:
        account = "<a href='/login' id='login-link'>Log in</a>"
    flashes = "".join(
        f"<p class='flash {escape(category)}'>{escape(message)}</p>"
        for category, message in notices or ()
    )
    return html(
        f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>sanic-cookies demo</title>
<style>{STYLE}</style></head>
<body>
<nav><a href="/">Counter</a><a href="/private">Private page</a>{account}</nav>
{flashes}
{body}
</body></html>""",
        status=status,
    )


async def login_page(
    request: Request, next_url: str, error: str | None, status: int = 200
) -> HTTPResponse:
    message = f"<p class='error' id='error'>{escape(error)}</p>" if error else ""
    body = f"""
    <h1>Log in</h1>
    {message}
    <form method="post" action="/login">
      {token_field(await csrf_token(request))}
      <input type="hidden" name="next" value="{escape(next_url)}">
      <p><label>User name <input name="username" id="username" autofocus></label></p>
      <p><label>Password <input name="password" id="password" type="password"></label></p>
      <p><label><input type="checkbox" name="remember" id="remember"> Remember me
      (a persistent cookie for 30 days; otherwise it ends with the browser)</label></p>
      <p><button id="submit">Log in</button></p>
    </form>
    <p class="note">This is a demo: <strong>any user name works, the password is
    “demo”</strong>. Every form carries a CSRF token, and a POST from another site is
    refused before its token is even looked at, so no site can log you in as someone
    else.</p>
    """
    return await render(request, body, None, status=status)


app = create_app()


def main() -> None:
    """Serve the demo on ``$DEMO_HOST:$DEMO_PORT`` (default 127.0.0.1:8000)."""
    host = os.environ.get("DEMO_HOST", "127.0.0.1")
    port = int(os.environ.get("DEMO_PORT", "8000"))
    # Show sanic-cookies' own log lines (logins, logouts, store errors): they name a
    # session by a short hash of its store key, never by its id.
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s"))
    lib_logger = logging.getLogger("sanic_cookies")
    lib_logger.addHandler(handler)
    lib_logger.setLevel(logging.INFO)
    shown = "localhost" if host in ("127.0.0.1", "0.0.0.0", "localhost", "::1", "::") else host

    @app.after_server_start
    async def announce(app: Sanic[Any, Any]) -> None:
        print(
            f"\nsanic-cookies demo on {app.config.SESSION_BACKEND}: "
            f"open http://{shown}:{port} in a browser\n"
            "(the cookies are Secure: browsers keep them on http://localhost; curl over "
            "plain http does not send them back)\n",
            flush=True,
        )

    app.run(host=host, port=port, single_process=True, motd=False, access_log=False)


if __name__ == "__main__":
    main()
