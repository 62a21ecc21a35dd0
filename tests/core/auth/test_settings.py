"""AuthSession settings: its own config prefix, next to a plain Session on the same app."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from auth_support import Browser
from sanic import Request, Sanic, json

from sanic_cookies import AuthSession, ConfigurationError, Session


def _app() -> Sanic[Any, Any]:
    return Sanic(f"settings_{uuid.uuid4().hex}")


def test_session_settings_do_not_leak_into_the_auth_session() -> None:
    app = _app()
    app.config.SESSION_COOKIE_NAME = "plain"
    app.config.SESSION_EXPIRY = 999
    app.config.AUTH_SESSION_LIFETIME = 3600
    session = Session(app)
    auth = AuthSession(app)
    assert session.config.cookie_name == "plain" and session.config.expiry == 999
    assert auth.config.cookie_name == "auth_session"
    assert auth.config.expiry == 30 * 60
    assert auth.config.lifetime == 3600


def test_arguments_beat_config_and_errors_name_the_right_setting() -> None:
    app = _app()
    app.config.AUTH_SESSION_EXPIRY = 100
    assert AuthSession(app, expiry=50).config.expiry == 50
    other = _app()
    other.config.AUTH_SESSION_EXPIRY = -1
    with pytest.raises(ConfigurationError, match="AUTH_SESSION_EXPIRY"):
        AuthSession(other)


def test_a_second_auth_session_gets_its_own_cookie_and_prefix() -> None:
    app = _app()
    app.config.ADMIN_SESSION_EXPIRY = 120
    AuthSession(app)
    admin = AuthSession(app, session_name="admin_session")
    assert admin.config.cookie_name == "admin_session"
    assert admin.config.expiry == 120
    assert app.ctx.exts.admin_session is admin


@pytest.mark.parametrize(
    "kwargs",
    [
        {"remember_duration": 0},
        {"remember_duration": True},
        {"remember_expiry": -1},
        {"remember_duration": 1000 * 86400},  # past 400 days (review F4)
        {"remember_expiry": 401 * 86400},
        {"lifetime": 401 * 86400},
        {"user_loader": "not callable"},
        {"user_id": 42},
    ],
)
def test_bad_arguments_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        AuthSession(**kwargs)


async def test_auth_session_backend_setting(auth_backend: Any) -> None:
    app = _app()
    app.config.AUTH_SESSION_BACKEND = auth_backend
    app.config.SESSION_BACKEND = "nonexistent-scheme://"  # must not be used for auth
    auth = AuthSession(app, secure=False)

    @app.post("/in")
    async def login(request: Request) -> Any:
        await auth.login_user(request, 7)
        return json(None)

    @app.get("/me")
    async def me(request: Request) -> Any:
        return json(await auth.current_user(request))

    browser = Browser(app)
    await browser.post("/in")
    assert "secure" not in browser.last_set["auth_session"]
    assert (await browser.get("/me")).json == 7
    expected = auth_backend if not isinstance(auth_backend, str) else None
    if expected is not None:
        assert auth.backend is expected


async def test_plain_session_and_auth_session_side_by_side() -> None:
    app = _app()
    Session(app)
    auth = AuthSession(app)

    @app.post("/both")
    async def both(request: Request) -> Any:
        async with request.ctx.session as sess:
            sess["theme"] = "dark"
        await auth.login_user(request, {"id": 1})
        return json(None)

    @app.get("/both")
    async def read(request: Request) -> Any:
        async with request.ctx.session as sess:
            theme = sess.get("theme")
        return json({"theme": theme, "user": await auth.current_user(request)})

    browser = Browser(app)
    await browser.post("/both")
    assert set(browser.jar) == {"session", "auth_session"}
    assert (await browser.get("/both")).json == {"theme": "dark", "user": {"id": 1}}
    await browser.post("/logout-missing")  # 404, cookies untouched
    assert set(browser.jar) == {"session", "auth_session"}


def test_logins_last_at_most_400_days() -> None:
    # Review of issue 13 (F4): the cookie backend keeps a user's "log out everywhere"
    # 400 days (browsers keep a cookie no longer), so a longer login came back after it.
    app = _app()
    app.config.AUTH_SESSION_LIFETIME = 401 * 86400
    with pytest.raises(ConfigurationError) as caught:
        AuthSession(app)
    message = str(caught.value)
    assert "AUTH_SESSION_LIFETIME" in message and "400 days" in message
    with pytest.raises(ConfigurationError, match=r"remember_duration .*400 days"):
        AuthSession(_app(), remember_duration=1000 * 86400)
    longest = AuthSession(_app(), remember_duration=400 * 86400, lifetime=400 * 86400)
    assert longest.remember_duration == longest.config.lifetime == 400 * 86400


async def test_auth_settings_set_to_none_keep_the_auth_defaults() -> None:
    app = _app()
    app.config.AUTH_SESSION_EXPIRY = None
    app.config.AUTH_SESSION_SAMESITE = None
    app.config.AUTH_SESSION_SECURE = None
    auth = AuthSession(app)

    @app.post("/in")
    async def login(request: Request) -> Any:
        await auth.login_user(request, 7)
        return json(None)

    browser = Browser(app)
    assert (await browser.post("/in")).status == 200
    attrs = browser.last_set["auth_session"]
    assert attrs["samesite"] == "Lax" and "secure" in attrs
    assert auth.config.expiry == 30 * 60  # the AuthSession default, not a plain Session's


async def test_auth_session_backend_options_apply_to_a_backend_url_argument() -> None:
    # configuration.md: AUTH_SESSION_BACKEND_OPTIONS are the options of the AuthSession's
    # backend, also when that backend is given as backend= (review 14, item 4).
    app = _app()
    app.config.AUTH_SESSION_BACKEND_OPTIONS = {"max_entries": 5}
    auth = AuthSession(app, backend="memory://", secure=False)

    @app.post("/in")
    async def login(request: Request) -> Any:
        await auth.login_user(request, 7)
        return json(None)

    browser = Browser(app)
    assert (await browser.post("/in")).status == 200
    assert auth.backend.max_entries == 5  # type: ignore[attr-defined]


def test_an_option_meant_for_another_backend_is_a_configuration_error() -> None:
    # The 0.4 several-sessions shape: a plain Session on memory and the options of the
    # AuthSession's cookie backend in SESSION_BACKEND_OPTIONS (review 14, item 4).
    app = _app()
    app.config.SESSION_BACKEND_OPTIONS = {"revocation": "redis://127.0.0.1:6379/0"}
    Session(app)

    @app.get("/")
    async def index(request: Request) -> Any:
        return json(None)

    with pytest.raises(ConfigurationError, match=r"memory://.*revocation.*BACKEND_OPTIONS"):
        app.test_client.get("/")
