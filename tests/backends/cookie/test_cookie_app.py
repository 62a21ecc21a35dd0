"""The cookie backend inside a real Sanic app: keys from config, rotation, expiry, logout."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import pytest
from cookie_support import build_app, new_key, serve
from environment import require_module
from sanic import Sanic

from sanic_cookies import Backend, ConfigurationError, backend_from_url
from sanic_cookies.backends.cookie import CookieBackend
from sanic_cookies.backends.memory import MemoryBackend
from sanic_cookies.clock import ManualClock

pytestmark = pytest.mark.cookie

ANONYMOUS = {"m": None, "user": None, "new": True}


def config_app(keys: Any, **config: Any) -> Sanic[Any, Any]:
    """An app configured the documented way: SESSION_BACKEND=cookie:// and SESSION_KEYS."""
    app = build_app(None)
    app.config.SESSION_BACKEND = "cookie://"
    if keys is not None:
        app.config.SESSION_KEYS = keys
    for name, value in config.items():
        app.config[name] = value
    return app


def under(keys: list[str]) -> CookieBackend:
    return CookieBackend(keys=keys)


async def decodes(token: str, keys: list[str]) -> bool:
    return await under(keys).decode_cookie(token) is not None


# -- configuration ------------------------------------------------------------------------


async def test_round_trip_with_keys_from_config() -> None:
    app = config_app([new_key()])
    async with serve(app) as client:
        first = await client.request("GET", "/mark", params={"m": "hello"})
        token = first.cookie()
        assert token and token.startswith("A"), "a version-2 token (byte 0x02)"
        header = first.set_cookie_header()
        for attribute in ("HttpOnly", "Secure", "SameSite=Lax", "Max-Age=2592000", "Path=/"):
            assert attribute in header
        again = await client.request("GET", "/whoami", token)
        assert again.json == {"m": "hello", "user": None, "new": False}
        assert again.cookie() is None, "an unchanged session is not rewritten"


async def test_keys_as_one_comma_separated_string() -> None:
    old, new = new_key(), new_key()
    legacy = await under([old]).encode_cookie(b"{}", 60)
    app = config_app(f"{new}, {old}")
    async with serve(app) as client:
        token = (await client.request("GET", "/mark", params={"m": "x"})).cookie()
        assert token
    assert await decodes(token, [new]) and not await decodes(token, [old])
    assert await decodes(legacy, [new, old])


@pytest.mark.parametrize(
    ("keys", "complaint"),
    [
        (None, "SESSION_KEYS"),
        ([], "empty"),
        (["not-a-key"], "SESSION_KEYS[0]"),
        ([new_key(), new_key()[:-2]], "SESSION_KEYS[1]"),
    ],
)
async def test_missing_or_bad_keys_fail_at_start_up(keys: Any, complaint: str) -> None:
    app = config_app(keys)
    with pytest.raises(ConfigurationError) as caught:
        async with serve(app):
            pass
    message = str(caught.value)
    assert complaint in message
    assert "python -m sanic_cookies keygen" in message


async def test_session_keys_never_reach_a_server_side_backend() -> None:
    app = config_app([new_key()])
    app.config.SESSION_BACKEND = "memory://"
    async with serve(app) as client:
        reply = await client.request("GET", "/mark", params={"m": "x"})
        assert reply.status == 200 and reply.cookie()


async def test_revocation_from_backend_options() -> None:
    app = config_app(
        [new_key()], SESSION_BACKEND_OPTIONS={"revocation": "memory://", "single_process": True}
    )
    async with serve(app) as client:
        token = (await client.request("GET", "/mark", params={"m": "x"})).cookie()
        assert token
        await client.request("POST", "/logout", token)
        assert (await client.request("GET", "/whoami", token)).json == ANONYMOUS


# -- key rotation end to end --------------------------------------------------------------


async def test_key_rotation_end_to_end() -> None:
    old, new = new_key(), new_key()
    async with serve(config_app([old])) as client:
        written_old = (await client.request("GET", "/mark", params={"m": "before"})).cookie()
        assert written_old
    # Rotation: the new key prepended. Old sessions still load...
    async with serve(config_app([new, old])) as client:
        reply = await client.request("GET", "/whoami", written_old)
        assert reply.json == {"m": "before", "user": None, "new": False}
        # ...and their next write re-encrypts them under the new key.
        rewritten = (
            await client.request("GET", "/mark", written_old, params={"m": "after"})
        ).cookie()
        assert rewritten
        assert await decodes(rewritten, [new]) and not await decodes(rewritten, [old])
    # The old key dropped: what was not rewritten becomes anonymous; the rest lives on.
    async with serve(config_app([new])) as client:
        assert (await client.request("GET", "/whoami", written_old)).json == ANONYMOUS
        reply = await client.request("GET", "/whoami", rewritten)
        assert reply.json == {"m": "after", "user": None, "new": False}


# -- expiry is in the token ---------------------------------------------------------------


async def test_idle_timeout_is_enforced_on_decrypt(clock: ManualClock) -> None:
    app = build_app(CookieBackend(keys=[new_key()]), expiry=3600)
    async with serve(app) as client:
        token = (await client.request("GET", "/mark", params={"m": "x"})).cookie()
        assert token
        clock.advance(3590)
        assert (await client.request("GET", "/whoami", token)).json["m"] == "x"
        clock.advance(20)  # the browser would have dropped it (Max-Age); a replay is refused
        assert (await client.request("GET", "/whoami", token)).json == ANONYMOUS


async def test_absolute_lifetime_is_enforced_however_active(clock: ManualClock) -> None:
    app = build_app(CookieBackend(keys=[new_key()]), expiry=600, lifetime=1000)
    async with serve(app) as client:
        token = (await client.request("GET", "/mark", params={"m": "0"})).cookie()
        for step in range(1, 4):  # a write every 300 s keeps the idle timeout away
            clock.advance(300)
            token = (await client.request("GET", "/mark", token, params={"m": str(step)})).cookie()
            assert token
        assert (await client.request("GET", "/whoami", token)).json["m"] == "3"
        clock.advance(101)  # 1001 s since creation
        assert (await client.request("GET", "/whoami", token)).json == ANONYMOUS


@pytest.mark.parametrize("path", ["/peek", "/whoami"])
async def test_read_only_use_refreshes_the_cookie(clock: ManualClock, path: str) -> None:
    keys = [new_key()]
    app = build_app(CookieBackend(keys=keys), expiry=3600, refresh_interval=60)
    async with serve(app) as client:
        token = (await client.request("GET", "/mark", params={"m": "x"})).cookie()
        assert token
        clock.advance(30)
        assert (await client.request("GET", path, token)).cookie() is None, "not yet due"
        clock.advance(60)
        refreshed = (await client.request("GET", path, token)).cookie()
        assert refreshed and refreshed != token
        clock.advance(3600 - 60)  # past the first token's idle timeout
        assert (await client.request("GET", "/whoami", token)).json == ANONYMOUS
        assert (await client.request("GET", "/whoami", refreshed)).json["m"] == "x"


# -- login, logout, revocation --------------------------------------------------------------


def _memory() -> Backend:
    return MemoryBackend(max_entries=None)


def _redis(request: pytest.FixtureRequest) -> Backend:
    require_module("sanic_cookies.backends.redis", "sanic-cookies-redis")
    url = request.getfixturevalue("redis_url")
    prefix = request.getfixturevalue("redis_key_prefix")
    return backend_from_url(f"{url}?prefix={prefix}ckrev{secrets.token_hex(4)}:")


REVOCATION_STORES: dict[str, Callable[[pytest.FixtureRequest], Backend]] = {
    "memory": lambda request: _memory(),
    "redis": _redis,
}


@pytest.fixture(params=list(REVOCATION_STORES))
def revocation(request: pytest.FixtureRequest) -> Backend:
    return REVOCATION_STORES[request.param](request)


async def test_login_rotates_and_revokes_the_anonymous_token(revocation: Backend) -> None:
    app = build_app(CookieBackend(keys=[new_key()], revocation=revocation, single_process=True))
    async with serve(app) as client:
        anonymous = (await client.request("GET", "/mark", params={"m": "cart"})).cookie()
        assert anonymous
        login = await client.request("POST", "/login", anonymous, params={"user": "ann"})
        logged_in = login.cookie()
        assert logged_in and logged_in != anonymous
        reply = await client.request("GET", "/whoami", logged_in)
        assert reply.json == {"m": "cart", "user": "ann", "new": False}
        # The pre-login cookie (say, planted by an attacker) no longer leads anywhere.
        assert (await client.request("GET", "/whoami", anonymous)).json == ANONYMOUS


async def test_cookie_replayed_after_logout_is_anonymous(revocation: Backend) -> None:
    app = build_app(CookieBackend(keys=[new_key()], revocation=revocation, single_process=True))
    async with serve(app) as client:
        await client.request("GET", "/whoami")
        first = (await client.request("GET", "/mark", params={"m": "a"})).cookie()
        logged_in = (await client.request("POST", "/login", first, params={"user": "bob"})).cookie()
        later = (await client.request("GET", "/mark", logged_in, params={"m": "b"})).cookie()
        latest = (await client.request("GET", "/mark", later, params={"m": "c"})).cookie()
        assert logged_in and later and latest
        other = (await client.request("POST", "/login", None, params={"user": "eve"})).cookie()
        out = await client.request("POST", "/logout", latest)
        assert out.cookie() == "", "logout sends a deletion cookie"
        assert "Max-Age=0" in out.set_cookie_header()
        # Every copy of the session, also those taken before its last writes, is dead.
        for token in (logged_in, later, latest):
            assert (await client.request("GET", "/whoami", token)).json == ANONYMOUS
        # Other sessions are untouched.
        assert (await client.request("GET", "/whoami", other)).json["user"] == "eve"


async def test_logout_with_a_stale_copy_ends_the_newer_tokens_too(revocation: Backend) -> None:
    app = build_app(CookieBackend(keys=[new_key()], revocation=revocation, single_process=True))
    async with serve(app) as client:
        stale = (await client.request("POST", "/login", None, params={"user": "cy"})).cookie()
        newer = (await client.request("GET", "/mark", stale, params={"m": "x"})).cookie()
        assert stale and newer
        await client.request("POST", "/logout", stale)
        assert (await client.request("GET", "/whoami", newer)).json == ANONYMOUS


async def test_without_revocation_a_copied_cookie_outlives_logout() -> None:
    # Documented limitation of a store-less backend: the copy lives until it expires.
    app = build_app(CookieBackend(keys=[new_key()]))
    async with serve(app) as client:
        token = (await client.request("POST", "/login", None, params={"user": "dan"})).cookie()
        out = await client.request("POST", "/logout", token)
        assert out.cookie() == ""
        assert (await client.request("GET", "/whoami", token)).json["user"] == "dan"


class _DownStore(MemoryBackend):
    async def load(self, key: str) -> Any:
        raise ConnectionError("revocation store down")


async def test_revocation_store_down_answers_503_not_a_session() -> None:
    app = build_app(
        CookieBackend(
            keys=[new_key()], revocation=_DownStore(max_entries=None), single_process=True
        )
    )
    async with serve(app) as client:
        token = (await client.request("GET", "/mark", params={"m": "x"})).cookie()
        assert token
        reply = await client.request("GET", "/whoami", token)
        assert reply.status == 503
        assert reply.cookie() is None
        # Garbage never reaches the store: still a fresh session.
        assert (await client.request("GET", "/whoami", "garbage")).json == ANONYMOUS
