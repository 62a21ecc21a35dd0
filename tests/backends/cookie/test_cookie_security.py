"""Issue 13's cookie-backend attacks, each through a real Sanic app.

* No length oracle: the token's length never depends on how well attacker-chosen data
  compresses next to a secret (1.0 deflated before encrypting: CRIME/BREACH).
* The token format: 1.0 tokens still work and are re-issued in the new format;
  tampering with the header, the key id or the ciphertext gives an anonymous session.
* Logout is final: an AuthSession refuses to run without a revocation store unless told
  that logged-out cookies may be replayed; a per-process store under several workers is
  refused; logout_everywhere works with a revocation store.
"""

from __future__ import annotations

import base64
import logging
import os
import secrets
import uuid
from typing import Any

import pytest
from cookie_support import (
    V1_KEY,
    V1_TOKEN,
    Client,
    build_app,
    decrypt_v2,
    new_key,
    serve,
)
from environment import require_module
from ports import free_port
from sanic import Request, Sanic, json
from sanic.response import HTTPResponse

from sanic_cookies import (
    AuthSession,
    Backend,
    ConfigurationError,
    Session,
    UnsupportedOperation,
    backend_from_url,
)
from sanic_cookies.backends.cookie import CookieBackend
from sanic_cookies.backends.memory import MemoryBackend

pytestmark = pytest.mark.cookie

ANONYMOUS = {"m": None, "user": None, "new": True}
HEX = "0123456789abcdef"


def _raw(token: str) -> bytearray:
    return bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))


def _token(raw: bytes) -> str:
    return base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")


# -- no compression oracle ------------------------------------------------------------------


def search_app(backend: CookieBackend) -> Sanic[Any, Any]:
    """The app of issue 13: a search term the attacker chooses, next to a CSRF secret."""
    app = build_app(backend)

    @app.get("/search")
    async def search(request: Request) -> HTTPResponse:
        async with request.ctx.session as sess:
            sess.setdefault("csrf", secrets.token_hex(16))
            sess["last_search"] = request.args.get("q", "")
        return json({})

    @app.get("/csrf")
    async def csrf(request: Request) -> HTTPResponse:
        async with request.ctx.session as sess:
            return json({"csrf": sess.get("csrf")})

    return app


async def test_a_right_guess_gives_a_token_as_long_as_a_wrong_one() -> None:
    async with serve(search_app(CookieBackend(keys=[new_key()]))) as client:
        token = (await client.request("GET", "/search", params={"q": ""})).cookie()
        assert token
        secret = (await client.request("GET", "/csrf", token)).json["csrf"]
        assert len(secret) == 32

        async def length(q: str) -> int:
            issued = (await client.request("GET", "/search", token, params={"q": q})).cookie()
            assert issued
            return len(issued)

        # The whole secret against a wrong guess of it (1.0: 290 against 311 characters).
        wrong = "".join(HEX[(HEX.index(c) + 7) % 16] for c in secret)
        assert await length(secret) == await length(wrong)
        # Byte by byte, as the attack goes: the known prefix and each candidate for the
        # next character, behind 0-15 filler characters (which move the compressed
        # length across the cipher's block boundaries, so that any difference shows).
        known = secret[:7]
        for filler in range(16):
            lengths = {c: await length("~" * filler + known + c) for c in HEX}
            assert len(set(lengths.values())) == 1, (filler, secret[7], lengths)


async def test_equal_length_sessions_give_equal_length_tokens_whatever_their_content() -> None:
    key = new_key()
    app = build_app(CookieBackend(keys=[key]))

    @app.post("/store")
    async def store(request: Request) -> HTTPResponse:
        async with request.ctx.session as sess:
            sess["v"] = request.args.get("v")
        return json({})

    n = 1200
    contents = {
        "repetitive": "a" * n,
        "pattern": ("abcdefgh" * n)[:n],
        "random": base64.b64encode(os.urandom(n)).decode()[:n],
        "hex": secrets.token_hex(n)[:n],
    }
    # Plaintext length -> token lengths seen, over several sessions (whose records differ
    # in length by a byte or two: their creation times print with more or fewer digits).
    seen: dict[int, set[int]] = {}
    async with serve(app) as client:
        for _ in range(3):
            token = (await client.request("GET", "/mark", params={"m": "x"})).cookie()
            by_content = {}
            for name, value in contents.items():
                reply = await client.request("POST", "/store", token, params={"v": value})
                assert reply.status == 200
                issued = reply.cookie()
                assert issued
                by_content[name] = len(issued)
                seen.setdefault(len(decrypt_v2(issued, key)), set()).add(len(issued))
            # Within a session, the plaintexts have equal length: so do the tokens.
            assert len(set(by_content.values())) == 1, by_content
    assert all(len(lengths) == 1 for lengths in seen.values()), seen


# -- the token format through the app ---------------------------------------------------------


@pytest.mark.parametrize("path", ["/whoami", "/peek"])
async def test_a_1_0_token_still_logs_in_and_is_reissued_in_the_new_format(path: str) -> None:
    new = new_key()
    app = build_app(CookieBackend(keys=[new, V1_KEY]))
    async with serve(app) as client:
        reply = await client.request("GET", path, V1_TOKEN)
        assert reply.json == {"m": "from-1.0", "user": "ada", "new": False}
        reissued = reply.cookie()
        assert reissued, "the first use of a 1.0 token replaces it"
        assert _raw(reissued)[0] == 0x02
        decrypt_v2(reissued, new)  # sealed by the first (encrypting) key
        again = await client.request("GET", path, reissued)
        assert again.json == {"m": "from-1.0", "user": "ada", "new": False}
        assert again.cookie() is None, "a new-format token is not re-issued"
        # Writes keep the data, in the new format.
        written = await client.request("GET", "/mark", reissued, params={"m": "now-v2"})
        assert written.json["user"] == "ada" and _raw(written.cookie() or "")[0] == 0x02


async def test_a_1_0_token_under_a_retired_key_is_anonymous() -> None:
    async with serve(build_app(CookieBackend(keys=[new_key()]))) as client:
        assert (await client.request("GET", "/whoami", V1_TOKEN)).json == ANONYMOUS


@pytest.mark.parametrize(
    ("where", "offset"),
    [
        ("version", 0),
        ("key id", 1),
        ("key id", 4),
        ("issue time", 5),
        ("issue time", 12),
        ("nonce", 13),
        ("ciphertext", 30),
        ("tag", -1),
    ],
)
async def test_a_tampered_token_is_a_fresh_anonymous_session(where: str, offset: int) -> None:
    async with serve(build_app(CookieBackend(keys=[new_key()]))) as client:
        token = (await client.request("POST", "/login", params={"user": "ada"})).cookie()
        assert token
        assert (await client.request("GET", "/whoami", token)).json["user"] == "ada"
        for bit in (0x01, 0x80):
            raw = _raw(token)
            raw[offset] ^= bit
            reply = await client.request("GET", "/whoami", _token(raw))
            assert reply.status == 200 and reply.json == ANONYMOUS, (where, bit)
            assert reply.cookie() is None


async def test_a_token_relabelled_with_another_configured_key_id_is_refused() -> None:
    old, new = new_key(), new_key()
    async with serve(build_app(CookieBackend(keys=[old]))) as client:
        token = (await client.request("POST", "/login", params={"user": "ada"})).cookie()
        assert token
    async with serve(build_app(CookieBackend(keys=[new, old]))) as client:
        assert (await client.request("GET", "/whoami", token)).json["user"] == "ada"
        fresh = (await client.request("POST", "/login", params={"user": "bo"})).cookie()
        assert fresh
        raw = _raw(token)
        raw[1:5] = _raw(fresh)[1:5]  # claims the new key, sealed by the old one
        assert (await client.request("GET", "/whoami", _token(raw))).json == ANONYMOUS


# -- logout is final: start-up checks ---------------------------------------------------------


def auth_app(
    backend: Backend | str | None = None, **config: Any
) -> tuple[Sanic[Any, Any], AuthSession]:
    """An app with an AuthSession (secure=False: the test client speaks http)."""
    app: Sanic[Any, Any] = Sanic(f"cka_{uuid.uuid4().hex}")
    for name, value in config.items():
        app.config[name] = value
    auth = AuthSession(app, backend=backend, secure=False)

    @app.post("/login")
    async def login(request: Request) -> HTTPResponse:
        await auth.login_user(request, {"id": request.args.get("user")})
        return json({})

    @app.post("/logout")
    async def logout(request: Request) -> HTTPResponse:
        await auth.logout_user(request)
        return json({})

    @app.get("/me")
    async def me(request: Request) -> HTTPResponse:
        return json({"user": await auth.current_user(request)})

    @app.post("/everywhere")
    async def everywhere(request: Request) -> HTTPResponse:
        user = await auth.current_user(request) or {"id": request.args.get("user")}
        keep = request if request.args.get("keep") == "1" else None
        try:
            return json({"ended": await auth.logout_everywhere(user, keep=keep)})
        except UnsupportedOperation as exc:
            return json({"unsupported": str(exc)}, status=501)

    @app.get("/devices")
    async def devices(request: Request) -> HTTPResponse:
        try:
            await auth.list_sessions(await auth.current_user(request))
        except UnsupportedOperation as exc:
            return json({"unsupported": str(exc)}, status=501)
        return json({})

    return app, auth


class AuthClient:
    """Requests with the AuthSession's cookie ("auth_session") carried by hand."""

    def __init__(self, client: Client) -> None:
        self.client = client

    async def call(self, method: str, path: str, token: str | None = None, **params: str) -> Any:
        headers = {"cookie": f"auth_session={token}"} if token else {}
        self.client._http.cookies.clear()  # only the cookie given is sent
        return await self.client._http.request(method, path, headers=headers, params=params)

    async def login(self, user: str) -> str:
        response = await self.call("POST", "/login", user=user)
        assert response.status_code == 200
        token = response.cookies.get("auth_session")
        assert token
        return str(token)

    async def me(self, token: str) -> Any:
        response = await self.call("GET", "/me", token)
        assert response.status_code == 200, response.text
        return response.json()["user"]


async def test_auth_session_without_revocation_refuses_to_start() -> None:
    app, _ = auth_app(CookieBackend(keys=[new_key()]))
    with pytest.raises(ConfigurationError) as caught:
        async with serve(app):
            pass
    message = str(caught.value)
    assert "after the logout" in message and "revocation" in message
    assert "allow_logged_out_cookie_replay" in message


async def test_the_refusal_names_the_auth_sessions_own_options_and_following_it_works() -> None:
    # The 0.4 several-sessions shape: a plain Session on memory next to an AuthSession on
    # cookie://. SESSION_BACKEND_OPTIONS would reach the memory backend too, so the hint
    # names the AuthSession's own setting (review 14, item 4).
    app, _ = auth_app("cookie://", SESSION_KEYS=[new_key()])
    Session(app, secure=False)
    with pytest.raises(ConfigurationError) as caught:
        async with serve(app):
            pass
    assert "AUTH_SESSION_BACKEND_OPTIONS = {'revocation'" in str(caught.value)
    app, _ = auth_app(
        "cookie://",
        SESSION_KEYS=[new_key()],
        AUTH_SESSION_BACKEND_OPTIONS={
            "revocation": "memory://?max_entries=none",
            "single_process": True,
        },
    )
    Session(app, secure=False)
    async with serve(app) as client:
        login = await client.raw("POST", "/login?user=ann", {})
        assert login.status == 200


async def test_the_same_from_the_documented_configuration() -> None:
    app, _ = auth_app(None, SESSION_BACKEND="cookie://", SESSION_KEYS=[new_key()])
    with pytest.raises(ConfigurationError, match="without a revocation store"):
        async with serve(app):
            pass


async def test_opting_into_replay_starts_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="sanic_cookies.backends.cookie")
    app, _ = auth_app(
        None,
        SESSION_BACKEND="cookie://",
        SESSION_KEYS=[new_key()],
        SESSION_BACKEND_OPTIONS={"allow_logged_out_cookie_replay": True},
    )
    async with serve(app) as plain:
        client = AuthClient(plain)
        token = await client.login("dan")
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1
        assert "keeps working until it expires" in warnings[0].getMessage()
        # What the warning says: the logged-out copy still works.
        await client.call("POST", "/logout", token)
        assert await client.me(token) == {"id": "dan"}
        # And logging out everywhere is not available (no state to do it with).
        response = await client.call("POST", "/everywhere", token)
        assert response.status_code == 501
        assert "revocation store" in response.json()["unsupported"]


@pytest.mark.parametrize("bad", ["yes", 1, None])
def test_the_opt_out_is_a_bool(bad: Any) -> None:
    with pytest.raises(ConfigurationError, match="allow_logged_out_cookie_replay"):
        CookieBackend(keys=[new_key()], allow_logged_out_cookie_replay=bad)


async def test_a_plain_session_without_revocation_still_starts() -> None:
    # Only AuthSession promises final logout; a plain Session keeps 1.0's behaviour.
    async with serve(build_app(CookieBackend(keys=[new_key()]))) as client:
        assert (await client.request("GET", "/mark", params={"m": "x"})).status == 200


def _redis_revocation(request: pytest.FixtureRequest) -> Backend:
    require_module("sanic_cookies.backends.redis", "sanic-cookies-redis")
    url = request.getfixturevalue("redis_url")
    prefix = request.getfixturevalue("redis_key_prefix")
    return backend_from_url(f"{url}?prefix={prefix}cksec{secrets.token_hex(4)}:")


@pytest.mark.parametrize("kind", ["auth", "plain"])
async def test_a_per_process_revocation_store_is_refused_under_several_workers(kind: str) -> None:
    backend = CookieBackend(
        keys=[new_key()], revocation=MemoryBackend(max_entries=None), single_process=True
    )
    app = auth_app(backend)[0] if kind == "auth" else build_app(backend)
    app.state.workers = 2
    with pytest.raises(ConfigurationError) as caught:
        async with serve(app):
            pass
    message = str(caught.value)
    assert "2 workers" in message and "memory" in message and "redis://" in message


async def test_a_per_process_revocation_store_is_fine_with_one_worker() -> None:
    app, _ = auth_app(
        CookieBackend(
            keys=[new_key()], revocation=MemoryBackend(max_entries=None), single_process=True
        )
    )
    app.state.workers = 1
    async with serve(app) as plain:
        assert await AuthClient(plain).login("ann")


async def test_a_shared_revocation_store_runs_under_several_workers(
    request: pytest.FixtureRequest,
) -> None:
    app, _ = auth_app(CookieBackend(keys=[new_key()], revocation=_redis_revocation(request)))
    app.state.workers = 2
    async with serve(app) as plain:
        client = AuthClient(plain)
        token = await client.login("ann")
        assert await client.me(token) == {"id": "ann"}


# -- logout is final: logout_everywhere -------------------------------------------------------


@pytest.fixture(params=["memory", "redis"])
def revocation(request: pytest.FixtureRequest) -> Backend:
    if request.param == "memory":
        return MemoryBackend(max_entries=None)
    return _redis_revocation(request)


async def test_logout_is_final_with_a_revocation_store(revocation: Backend) -> None:
    app, _ = auth_app(CookieBackend(keys=[new_key()], revocation=revocation, single_process=True))
    async with serve(app) as plain:
        client = AuthClient(plain)
        token = await client.login("eve")
        copy = token  # taken by an attacker before the logout
        await client.call("POST", "/logout", token)
        assert await client.me(copy) is None


async def test_logout_everywhere_ends_every_copy_of_every_session(revocation: Backend) -> None:
    app, _ = auth_app(CookieBackend(keys=[new_key()], revocation=revocation, single_process=True))
    async with serve(app) as plain:
        client = AuthClient(plain)
        alice = [await client.login("alice") for _ in range(3)]
        bob = await client.login("bob")
        response = await client.call("POST", "/everywhere", alice[0])
        assert response.status_code == 200 and response.json() == {"ended": 0}
        for token in alice:
            assert await client.me(token) is None
        assert await client.me(bob) == {"id": "bob"}
        # Logging in again afterwards works.
        again = await client.login("alice")
        assert await client.me(again) == {"id": "alice"}


async def test_logout_everywhere_can_keep_the_current_session(revocation: Backend) -> None:
    app, _ = auth_app(CookieBackend(keys=[new_key()], revocation=revocation, single_process=True))
    async with serve(app) as plain:
        client = AuthClient(plain)
        alice = [await client.login("alice") for _ in range(3)]
        response = await client.call("POST", "/everywhere", alice[1], keep="1")
        assert response.status_code == 200
        assert [await client.me(t) for t in alice] == [None, {"id": "alice"}, None]
        # An admin (anonymous request) ending alice's sessions ends the kept one too.
        await client.call("POST", "/everywhere", None, user="alice")
        assert await client.me(alice[1]) is None


async def test_listing_a_users_cookie_sessions_is_unsupported(revocation: Backend) -> None:
    app, _ = auth_app(CookieBackend(keys=[new_key()], revocation=revocation, single_process=True))
    async with serve(app) as plain:
        client = AuthClient(plain)
        token = await client.login("alice")
        response = await client.call("GET", "/devices", token)
        assert response.status_code == 501
        message = response.json()["unsupported"]
        assert "per-user session index" in message and "logout_everywhere" in message


TWO_WORKER_APP = """
import sys
from sanic import Sanic, text
from sanic_cookies import AuthSession

app = Sanic("cookie_two_workers")
app.config.SESSION_BACKEND = "cookie://"
app.config.SESSION_KEYS = sys.argv[2]
app.config.SESSION_BACKEND_OPTIONS = {"revocation": "memory://"}
AuthSession(app)

@app.get("/")
async def index(request):
    return text("up")

if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(sys.argv[1]), workers=2, access_log=False)
"""


@pytest.mark.slow
async def test_a_real_two_worker_server_refuses_a_memory_revocation_store(tmp_path: Any) -> None:
    # 1.0 started, and accepted a logged-out token in about half of the replays.
    import asyncio
    import contextlib
    import signal
    import subprocess
    import sys

    import httpx

    script = tmp_path / "two_workers.py"
    script.write_text(TWO_WORKER_APP)
    port = free_port()
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(script),
            str(port),
            new_key(),
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
            # Its own process group: on a failed start Sanic kills its whole group.
            start_new_session=True,
        )
    answered = False
    try:
        async with httpx.AsyncClient() as client:
            for _ in range(600):  # Sanic's main process stays up; the workers refuse
                if "lives in one process" in log.read_text(errors="replace"):
                    break
                with contextlib.suppress(httpx.TransportError):
                    reply = await client.get(f"http://127.0.0.1:{port}/", timeout=1)
                    answered = answered or reply.is_success
                if proc.returncode is not None:
                    break
                await asyncio.sleep(0.1)
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 20)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        with contextlib.suppress(ProcessLookupError):  # any worker left in its group
            os.killpg(proc.pid, signal.SIGKILL)
    output = log.read_text(errors="replace")
    assert "ConfigurationError" in output and "runs 2 workers" in output, output[-3000:]
    assert not answered, "the app served requests with a per-process revocation store"
