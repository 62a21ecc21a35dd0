"""Fixes from the outside review of issue 13, through real Sanic apps.

* F1: a per-process revocation store (``memory://``) is refused when the app is served
  over ASGI (the ASGI server's worker count is invisible to the app), unless the app
  declares ``single_process=True``. The review ran ``uvicorn --workers 2`` with it and
  replayed a logged-out cookie: accepted 21 times in 40, with no warning.
* A token whose ttl or deadline is inf or NaN is refused (it read as a login that never
  expires), and such a token is never written.
"""

from __future__ import annotations

import math
import uuid
from typing import Any

import msgspec
import pytest
from cookie_support import build_app, decrypt_v2, new_key, serve
from sanic import Request, Sanic, json
from sanic.response import HTTPResponse

from sanic_cookies import AuthSession, ConfigurationError, served_over_asgi
from sanic_cookies.backends.cookie import CookieBackend
from sanic_cookies.backends.cookie._keys import build_keyring, parse_keys
from sanic_cookies.backends.cookie._token import _Payload, pack_plaintext, seal
from sanic_cookies.backends.memory import MemoryBackend
from sanic_cookies.clock import now

pytestmark = pytest.mark.cookie


def _auth_app(**config: Any) -> Sanic[Any, Any]:
    """The review's app: cookie:// with a revocation store from SESSION_BACKEND_OPTIONS."""
    app: Sanic[Any, Any] = Sanic(f"ckr_{uuid.uuid4().hex}")
    app.config.SESSION_BACKEND = "cookie://"
    app.config.SESSION_KEYS = [new_key()]
    for name, value in config.items():
        app.config[name] = value
    auth = AuthSession(app, secure=False)

    @app.post("/login")
    async def login(request: Request) -> HTTPResponse:
        await auth.login_user(request, {"id": "ann"})
        return json({})

    return app


# -- F1: memory:// revocation under an ASGI server ------------------------------------------


async def test_a_memory_revocation_store_is_refused_over_asgi() -> None:
    # The test client serves the app over ASGI, as uvicorn does: Sanic's own worker count
    # is 0 there and no multiplexer exists, so the count the check used to read was 1.
    app = _auth_app(SESSION_BACKEND_OPTIONS={"revocation": "memory://"})
    with pytest.raises(ConfigurationError) as caught:
        async with serve(app):
            pass
    message = str(caught.value)
    assert "ASGI" in message and "memory" in message
    assert "redis://" in message and "postgresql://" in message
    assert "single_process=True" in message


async def test_a_plain_session_is_refused_too() -> None:
    # A plain Session's destroy() revokes through the same store.
    backend = CookieBackend(keys=[new_key()], revocation=MemoryBackend(max_entries=None))
    with pytest.raises(ConfigurationError, match="single_process=True"):
        async with serve(build_app(backend)):
            pass


async def test_declaring_a_single_process_allows_it() -> None:
    app = _auth_app(SESSION_BACKEND_OPTIONS={"revocation": "memory://", "single_process": True})
    async with serve(app) as client:
        reply = await client.request("POST", "/login")
        assert reply.status == 200, reply.text


async def test_several_sanic_workers_are_refused_even_when_declared_single() -> None:
    app = _auth_app(SESSION_BACKEND_OPTIONS={"revocation": "memory://", "single_process": True})
    app.state.workers = 2
    with pytest.raises(ConfigurationError, match="2 workers"):
        async with serve(app):
            pass


def test_single_process_must_be_a_bool() -> None:
    with pytest.raises(ConfigurationError, match="single_process must be True or False"):
        CookieBackend(keys=[new_key()], single_process="yes")  # type: ignore[arg-type]


def test_asgi_detection(monkeypatch: pytest.MonkeyPatch) -> None:
    """The detection itself: an app called by an ASGI server, and a Sanic worker process."""
    app: Sanic[Any, Any] = Sanic(f"ckd_{uuid.uuid4().hex}")
    monkeypatch.delenv("SANIC_WORKER_NAME", raising=False)
    monkeypatch.setattr(Sanic, "_app_registry", {app.name: app})
    assert not served_over_asgi()
    app.asgi = True  # what Sanic.__call__ does when an ASGI server calls the app
    assert served_over_asgi()
    # In a Sanic worker the Session reads the real count from Sanic's multiplexer.
    monkeypatch.setenv("SANIC_WORKER_NAME", "Sanic-Server-0-0")
    assert not served_over_asgi()


# -- non-finite ttl / deadline ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("ttl", "deadline"),
    [
        (math.inf, math.inf),
        (math.nan, math.nan),
        (60.0, math.inf),
        (math.inf, 2e9),
        (60.0, math.nan),
    ],
    ids=["inf-inf", "nan-nan", "deadline-inf", "ttl-inf", "deadline-nan"],
)
async def test_a_token_that_never_expires_is_refused(ttl: float, deadline: float) -> None:
    key = new_key()
    app = build_app(CookieBackend(keys=[key]), secure=False)
    async with serve(app) as client:
        issued = await client.request("GET", "/mark", params={"m": "mine"})
        token = issued.cookie()
        assert token
        assert (await client.request("GET", "/whoami", token)).json["m"] == "mine"
        # A key holder mints the same session with a non-finite ttl / deadline.
        payload = msgspec.msgpack.decode(decrypt_v2(token, key), type=_Payload)
        forged_plaintext = msgspec.msgpack.encode(
            _Payload(sid=payload.sid, ttl=ttl, deadline=deadline, value=payload.value)
        )
        keyring = build_keyring(parse_keys([key]))
        forged = seal(keyring, forged_plaintext, int(now() * 1000))
        reply = await client.request("GET", "/whoami", forged)
        assert reply.status == 200, reply.text
        assert reply.json == {"m": None, "user": None, "new": True}


@pytest.mark.parametrize("bad", [math.inf, -math.inf, math.nan])
def test_a_non_finite_token_is_never_written(bad: float) -> None:
    with pytest.raises(ValueError, match="finite"):
        pack_plaintext(b"\x00" * 16, bad, 2e9, b"{}")
    with pytest.raises(ValueError, match="finite"):
        pack_plaintext(b"\x00" * 16, 60.0, bad, b"{}")


# -- F4: no login outlives the per-user "log out everywhere" record ----------------------------


def _everywhere_app() -> tuple[Sanic[Any, Any], AuthSession]:
    app: Sanic[Any, Any] = Sanic(f"cke_{uuid.uuid4().hex}")
    backend = CookieBackend(
        keys=[new_key()], revocation=MemoryBackend(max_entries=None), single_process=True
    )
    auth = AuthSession(app, backend=backend, secure=False)

    @app.post("/login")
    async def login(request: Request) -> HTTPResponse:
        try:
            await auth.login_user(
                request, "ann", remember=True, duration=float(request.args["days"][0]) * 86400
            )
        except ValueError as exc:
            return json({"refused": str(exc)}, status=400)
        return json({})

    @app.post("/everywhere")
    async def everywhere(request: Request) -> HTTPResponse:
        return json({"ended": await auth.logout_everywhere("ann")})

    @app.get("/me")
    async def me(request: Request) -> HTTPResponse:
        return json({"user": await auth.current_user(request)})

    return app, auth


async def test_a_login_cannot_outlive_logout_everywhere(manual_clock: Any) -> None:
    app, _ = _everywhere_app()
    async with serve(app) as client:
        # The review's 1000-day login, which worked again after day 400, is refused.
        reply = await client.raw("POST", "/login?days=1000", {})
        assert reply.status == 400 and "400 days" in reply.json["refused"]
        reply = await client.raw("POST", "/login?days=400", {})
        assert reply.status == 200, reply.text
        token = reply.set_cookie_header("auth_session").split(";", 1)[0]
        manual_clock.advance(60)
        assert (await client.raw("POST", "/everywhere", {})).status == 200
        # The longest login allowed stays logged out for as long as it could live.
        manual_clock.advance(400 * 86400 - 120)
        reply = await client.raw("GET", "/me", {"cookie": token})
        assert reply.status == 200 and reply.json == {"user": None}
