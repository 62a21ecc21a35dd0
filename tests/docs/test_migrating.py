"""The claims docs/migrating.md makes in prose and tables, each checked here.

The guide's code blocks run in test_docs_examples.py; this file checks what the blocks'
check scripts cannot see (what reached Redis, which cookies were sent) and the claims of
the prose and tables. Claims covered by other tests are listed at the end, with the test.
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import json
import os
import uuid
from pathlib import Path
from typing import Any

import pytest
from docs_runner import ROOT, Block, Browser, parse_page
from sanic import Request, Sanic, text
from sanic.response import HTTPResponse
from test_docs_examples import (  # noqa: F401 - fixtures
    _rewrite,
    _setup_requirements,
    _with_query,
    docs_database,
    docs_redis_prefix,
)

from sanic_cookies import AuthSession, ConfigurationError, Session, SessionDict

PAGE = ROOT / "docs" / "migrating.md"


@pytest.fixture(autouse=True)
def _fresh_sanic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Sanic.test_mode = True
    Sanic._app_registry.clear()


def _block(app_name: str) -> Block:
    """The guide's Python block that builds ``Sanic("<app_name>")``."""
    found = [b for b in parse_page(PAGE) if b.is_python and f'Sanic("{app_name}")' in b.code]
    assert len(found) == 1, app_name
    return found[0]


def _run(block: Block, request: pytest.FixtureRequest, **redis_query: str) -> dict[str, Any]:
    """Execute `block` as the docs runner does (URLs on the test servers); its namespace."""
    rewrites = _setup_requirements(block, request)
    if redis_query and "redis" in rewrites:
        rewrites["redis"] = _with_query(rewrites["redis"], redis_query)
    namespace: dict[str, Any] = {"__name__": "__docs__"}
    exec(compile(_rewrite(block.code, rewrites), block.id, "exec"), namespace)
    return namespace


async def _get(app: Sanic[Any, Any], browser: Browser, path: str) -> Any:
    client = app.asgi_client
    client.cookies.clear()
    _, response = await client.get(path, headers=browser.header())
    browser.receive(response.headers.get_list("set-cookie"))
    return response


# -- What Sanic 25 forced ----------------------------------------------------------------------


def test_sanic_25_needs_an_app_name() -> None:
    with pytest.raises(TypeError, match="name"):
        Sanic()  # type: ignore[call-arg]


def test_the_intro_and_the_sanic_25_table() -> None:
    import sanic.exceptions
    from sanic.cookies.response import CookieJar

    from sanic_cookies._ids import is_session_id

    assert not hasattr(sanic.exceptions, "abort")  # 0.4.3 fails at import
    assert not hasattr(CookieJar, "__setitem__") and not hasattr(CookieJar, "__delitem__")
    assert not is_session_id(uuid.uuid4().hex)  # a 0.4 session id is no session here
    app = Sanic("forced")
    with pytest.raises(AttributeError, match="ctx"):
        app.exts = object()  # type: ignore[attr-defined]
    assert not hasattr(app, "extensions")


async def test_requests_are_not_dicts_and_sessions_live_on_ctx() -> None:
    app = Sanic("not_a_dict")
    Session(app)
    seen: list[str] = []

    @app.get("/")
    async def handler(request: Request) -> HTTPResponse:
        try:
            request["session"]  # type: ignore[index]
        except TypeError:
            seen.append("not a dict")
        seen.append(type(request.ctx.session).__name__)
        return text("ok")

    await app.asgi_client.get("/")
    assert seen == ["not a dict", "SessionDict"]


async def test_a_handler_returning_none_answers_500() -> None:
    app = Sanic("returns_none")
    Session(app)

    @app.get("/")
    async def handler(request: Request) -> None:
        async with request.ctx.session as sess:
            sess["foo"] = "bar"

    _, response = await app.asgi_client.get("/")
    assert response.status == 500


# -- plain access ------------------------------------------------------------------------------


async def test_plain_access_on_memory_warns_once_per_line_without_warn_lock_false(
    request: pytest.FixtureRequest,
) -> None:
    block = _block("plain_access")
    code = block.code.replace("Session(app, warn_lock=False)", "Session(app)")
    assert code != block.code
    namespace: dict[str, Any] = {"__name__": "__docs__"}
    exec(compile(code, block.id, "exec"), namespace)
    app = namespace["app"]
    with pytest.warns(RuntimeWarning) as caught:
        response = await _get(app, Browser(), "/")
    assert response.text == "1"
    lines = [w.lineno for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(lines) == 2 and len(set(lines)) == 2  # two lines touch the session: two warnings


async def test_plain_access_on_redis_without_autoload_is_a_500_naming_both_fixes(
    request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> None:
    block = _block("plain_on_redis")
    namespace = _run(block, request)
    app = namespace["app"]
    app.config.SESSION_AUTOLOAD = False
    browser = Browser()
    assert (await _get(app, browser, "/")).status == 500
    assert "SessionNotLoaded" in caplog.text
    assert "await request.ctx.session.load()" in caplog.text
    assert "SESSION_AUTOLOAD = True" in caplog.text


@pytest.mark.parametrize("autoload", [False, True])
async def test_plain_access_on_cookie_with_a_redis_revocation_store_needs_autoload(
    autoload: bool, redis_url: str, redis_key_prefix: str
) -> None:
    # migrating.md and backend-cookie.md: such a cookie:// session is like Redis for plain
    # access; without autoload even a first visit with no cookie is a 500.
    app = Sanic(f"plain_cookie_{uuid.uuid4().hex}")
    app.config.SESSION_KEYS = base64.urlsafe_b64encode(os.urandom(32)).decode()
    revocation = f"{redis_url}?prefix={redis_key_prefix}{uuid.uuid4().hex}:"
    Session(
        app,
        backend="cookie://",
        backend_options={"revocation": revocation},
        warn_lock=False,
        autoload=autoload,
    )

    @app.get("/")
    async def index(request: Request) -> HTTPResponse:
        request.ctx.session["visits"] = request.ctx.session.get("visits", 0) + 1
        return text(str(request.ctx.session["visits"]))

    browser = Browser()
    first = await _get(app, browser, "/")  # no cookie yet
    if not autoload:
        assert first.status == 500
        return
    assert first.text == "1"
    assert (await _get(app, browser, "/")).text == "2"


def test_is_modified_and_session_name_exist() -> None:
    assert isinstance(inspect.getattr_static(SessionDict, "is_modified"), property)
    session = Session(Sanic("named"), session_name="my_1st_sess")
    assert session.session_name == "my_1st_sess"


# -- the 0.4 README examples: what their check scripts cannot see ----------------------------


async def test_several_interfaces_write_to_redis_too(
    request: pytest.FixtureRequest, redis_url: str, redis_key_prefix: str
) -> None:
    import redis.asyncio as aioredis

    prefix = f"{redis_key_prefix}migrating:{uuid.uuid4().hex[:8]}:"
    namespace = _run(_block("several_interfaces"), request, prefix=prefix)
    app = namespace["app"]
    assert (await _get(app, Browser(), "/")).status == 200
    client = aioredis.Redis.from_url(redis_url)
    try:
        keys = [k async for k in client.scan_iter(match=prefix + "*")]
        assert len(keys) >= 1  # the session, written to the secondary
        await client.delete(*keys)
    finally:
        await client.aclose()


async def test_several_sessions_send_their_own_cookies(request: pytest.FixtureRequest) -> None:
    app = _run(_block("several_sessions"), request)["app"]
    browser = Browser()
    assert (await _get(app, browser, "/")).status == 200
    assert set(browser.cookies) == {"INCOOKIE", "SESSION", "SECURE_SESSION"}


def test_a_fernet_key_works_and_a_0_4_cookie_reads_as_anonymous() -> None:
    from cryptography.fernet import Fernet

    from sanic_cookies.backends.cookie import CookieBackend

    key = Fernet.generate_key()
    backend = CookieBackend(keys=[key.decode()])
    old = Fernet(key).encrypt(json.dumps({"foo": "bar"}).encode()).decode()  # 0.4's token

    async def check() -> None:
        token = await backend.encode_cookie(b"value", 60)
        assert await backend.decode_cookie(token) is not None
        assert await backend.decode_cookie(old) is None

    asyncio.run(check())


# -- the names table -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "setting",
    ["encoder", "decoder", "sid_factory", "store_factory", "comment", "auth_key"],
)
def test_removed_settings_are_refused(setting: str) -> None:
    with pytest.raises(ConfigurationError, match="Unknown session setting"):
        Session(Sanic(f"gone_{setting}"), **{setting: None})


def test_renamed_and_kept_names() -> None:
    app = Sanic("names")
    session = Session(app, master_interface="memory://", session_name="sess")
    session.add_interface("memory://")
    assert app.ctx.exts.sess is session
    assert not hasattr(session, "set_master_interface")
    assert not hasattr(session, "refresh_sid")
    assert hasattr(SessionDict, "regenerate") and hasattr(SessionDict, "clear")
    assert not hasattr(SessionDict, "reset")
    assert session.config.cookie_name == "session"
    assert session.config.httponly is True and session.config.secure is True
    assert AuthSession(app).config.cookie_name == "auth_session"
    for name in ("domain", "path", "samesite", "session_cookie", "warn_lock", "expiry"):
        assert name in session.config.__dataclass_fields__
    login = inspect.signature(AuthSession.login_user)
    assert [p.name for p in login.parameters.values()] == [
        "self",
        "request",
        "user",
        "remember",
        "duration",
        "keep_data",
    ]
    assert list(inspect.signature(AuthSession.logout_user).parameters) == ["self", "request"]
    assert inspect.iscoroutinefunction(AuthSession.current_user)


# -- logout on the cookie backend, as described ----------------------------------------------


def _cookie_app(name: str, **options: Any) -> Sanic[Any, Any]:
    import base64
    import os

    app = Sanic(name)
    app.config.SESSION_KEYS = base64.urlsafe_b64encode(os.urandom(32)).decode()
    Session(app, backend="cookie://", backend_options=options)

    @app.get("/set")
    async def set_(request: Request) -> HTTPResponse:
        async with request.ctx.session as sess:
            sess["user"] = "ada"
        return text("set")

    @app.get("/logout")
    async def logout(request: Request) -> HTTPResponse:
        async with request.ctx.session as sess:
            sess.destroy()
        return text("out")

    @app.get("/who")
    async def who(request: Request) -> HTTPResponse:
        async with request.ctx.session as sess:
            return text(str(sess.get("user")))

    return app


@pytest.mark.parametrize("revocation", [False, True])
async def test_cookie_logout_without_and_with_a_revocation_store(revocation: bool) -> None:
    options = {"revocation": "memory://", "single_process": True} if revocation else {}
    app = _cookie_app(f"cookie_logout_{revocation}", **options)
    browser = Browser()
    await _get(app, browser, "/set")
    copy = dict(browser.cookies)  # a copy of the cookie, taken before logout
    await _get(app, browser, "/logout")
    assert browser.deleted == {"session"}  # a deletion cookie, either way
    assert (await _get(app, browser, "/who")).text == "None"
    replayed = Browser()
    replayed.cookies = copy
    # Without a revocation store the copy still works until it expires; with one, it does not.
    assert (await _get(app, replayed, "/who")).text == ("None" if revocation else "ada")


async def test_auth_session_on_cookie_without_revocation_refuses_to_start() -> None:
    import base64
    import os

    app = Sanic("auth_cookie_refused")
    app.config.SESSION_KEYS = base64.urlsafe_b64encode(os.urandom(32)).decode()
    AuthSession(app, backend="cookie://")

    @app.get("/")
    async def index(request: Request) -> HTTPResponse:
        return text("started")

    with pytest.raises(ConfigurationError):
        await app.asgi_client.get("/")

    allowed = Sanic("auth_cookie_opted_out")
    allowed.config.SESSION_KEYS = app.config.SESSION_KEYS
    AuthSession(
        allowed,
        backend="cookie://",
        backend_options={"allow_logged_out_cookie_replay": True},
    )

    @allowed.get("/")
    async def started(request: Request) -> HTTPResponse:
        return text("started")

    _, response = await allowed.asgi_client.get("/")
    assert response.text == "started"


# Claims checked elsewhere:
# - the memory backend's sweeper starts and stops with the server: tests/core/backends/
#   test_memory.py::test_sweeper_starts_and_stops_with_the_server_on_its_own;
# - login rotates the id on every backend: tests/core/auth/test_login.py,
#   tests/core/test_third_party_backend.py;
# - the lock works across processes: tests/backends/redis/test_redis_multiprocess.py,
#   tests/backends/postgres/test_multiprocess.py;
# - an unknown or forged cookie gives a fresh session: tests/core/test_untrusted_cookies.py;
# - a store error answers 503 and deletes nothing: tests/core/test_backend_failures.py;
# - expiry slides with reads, lifetime is absolute: tests/core/test_expiry.py;
# - samesite=None means Lax, samesite=False omits it: tests/core/test_cookie_attributes.py;
# - plain access on every backend: tests/core/test_plain_access.py and
#   tests/backends/*/test_*_plain_access.py; the 0.4 table: tests/backends/postgres/
#   test_table_check.py; autoload's cost: bench/run.py --callgrind --targets redis-autoload.
