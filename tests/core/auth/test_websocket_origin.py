"""Cross-site websocket hijacking: `CSRFProtect` checks the ``Origin`` of a handshake.

A real server in the test's loop (`serving`), a real websocket client (``websockets``)
sending the ``Origin`` header a browser would send from each page, with alice's session
cookie, as a browser attaches it whatever page opens the websocket. On the memory
backend and on Redis (a server-side store). What Chromium itself sends is in
tests/browser/test_websocket_browser.py.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from sanic import Request, Sanic, html
from sanic.response import HTTPResponse
from serving import serving
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from sanic_cookies import (
    AuthSession,
    Backend,
    ConfigurationError,
    CSRFError,
    CSRFProtect,
    csrf_exempt,
    csrf_protect,
    login_required,
)
from sanic_cookies.testing import login_as

#: The memory backend and one server-side store (the shared Redis), of `AUTH_BACKENDS`.
pytestmark = pytest.mark.parametrize("auth_backend", ["memory", "redis"], indirect=True)

REFUSED = "refused by cross-site request forgery (CSRF) protection"
EVIL = "https://evil.example"
TRUSTED = ["https://admin.example.com", "https://*.partner.example"]


class StoreCalls:
    """A store observer counting the session's store calls (`Session.observe_store`)."""

    def __init__(self) -> None:
        self.count = 0

    def observe(self, operation: str, backend: str, call: Any) -> Any:
        self.count += 1
        return call


def build(auth_backend: Backend | str, **csrf: Any) -> tuple[Sanic[Any, Any], AuthSession]:
    """An app with `CSRFProtect(**csrf)` and websockets answering who the user is.

    ``/ws`` (checked), ``/ws-private`` (``login_required``), ``/ws-exempt``
    (``csrf_exempt``), ``/ws-protected`` (``csrf_protect``).
    """
    app: Sanic[Any, Any] = Sanic(f"wsorigin_{uuid.uuid4().hex}")
    auth = AuthSession(app, backend=auth_backend)
    CSRFProtect(app, **csrf)

    async def whoami(request: Request, ws: Any) -> None:
        async with request.ctx.auth_session:
            await ws.send(json.dumps(await auth.current_user(request)))

    @app.websocket("/ws")
    async def plain(request: Request, ws: Any) -> None:
        await whoami(request, ws)

    @app.websocket("/ws-private")
    @login_required()
    async def private(request: Request, ws: Any) -> None:
        await whoami(request, ws)

    @app.websocket("/ws-exempt")
    @csrf_exempt
    async def exempt(request: Request, ws: Any) -> None:
        await whoami(request, ws)

    @app.websocket("/ws-protected")
    @csrf_protect
    async def protected(request: Request, ws: Any) -> None:
        await whoami(request, ws)

    return app, auth


@dataclasses.dataclass
class Site:
    address: str
    cookie: str  # alice's session cookie, "auth_session=..."
    calls: StoreCalls

    @contextlib.asynccontextmanager
    async def open(
        self, path: str, origin: str | None, **headers: str
    ) -> AsyncIterator[ClientConnection]:
        """A websocket to `path` with alice's cookie and `origin` (None: no Origin)."""
        sent = {"cookie": self.cookie, **headers}
        if origin is not None:
            sent["origin"] = origin
        async with connect(f"ws://{self.address}{path}", additional_headers=sent) as ws:
            yield ws

    async def user(self, path: str, origin: str | None, **headers: str) -> Any:
        """Who the websocket at `path` says the user is."""
        async with self.open(path, origin, **headers) as ws:
            return json.loads(await ws.recv())

    async def refusal(self, path: str, origin: str | None, **headers: str) -> tuple[int, str]:
        """The HTTP status and body of a refused handshake (fails if it upgrades)."""
        try:
            async with self.open(path, origin, **headers):
                pass
        except InvalidStatus as refused:
            return refused.response.status_code, bytes(refused.response.body or b"").decode()
        raise AssertionError(f"{path} upgraded from Origin {origin!r}")

    @property
    def own(self) -> str:
        return f"http://{self.address}"


@contextlib.asynccontextmanager
async def site_of(app: Sanic[Any, Any], auth: AuthSession) -> AsyncIterator[Site]:
    calls = StoreCalls()
    auth.observe_store(calls)
    async with serving(app) as address:
        cookies = await login_as(app, "alice")
        yield Site(address, f"auth_session={cookies['auth_session']}", calls)


@pytest.fixture
async def site(auth_backend: Backend | str) -> AsyncIterator[Site]:
    app, auth = build(auth_backend, trusted_origins=TRUSTED)
    async with site_of(app, auth) as served:
        yield served


@pytest.fixture
def csrf_log(caplog: pytest.LogCaptureFixture) -> Iterator[list[str]]:
    """The ``CSRF:`` lines the library logs (filled in as the test runs)."""
    caplog.set_level(logging.INFO, "sanic_cookies")
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.getMessage().startswith("CSRF:"):
                lines.append(record.getMessage())

    handler = Collect()
    logging.getLogger("sanic_cookies").addHandler(handler)
    try:
        yield lines
    finally:
        logging.getLogger("sanic_cookies").removeHandler(handler)


async def test_a_page_of_this_site_opens_the_websocket(site: Site, csrf_log: list[str]) -> None:
    assert await site.user("/ws", site.own) == "alice"
    assert await site.user("/ws-private", site.own) == "alice"
    assert await site.user("/ws-protected", site.own) == "alice"
    assert csrf_log == []


@pytest.mark.parametrize(
    "origin",
    ["https://admin.example.com", "https://shop.partner.example", "https://a.b.partner.example"],
)
async def test_a_trusted_origin_opens_the_websocket(site: Site, origin: str) -> None:
    assert await site.user("/ws", origin) == "alice"


@pytest.mark.parametrize(
    "origin",
    [
        EVIL,
        "null",  # a sandboxed frame, a data: page
        "https://partner.example",  # "*." matches subdomains only
        "https://admin.example.com:8443",  # another port is another origin
        "http://admin.example.com",  # another scheme too
        "https://evil-admin.example.com",
    ],
)
async def test_a_cross_site_page_is_refused_before_the_upgrade(
    site: Site, csrf_log: list[str], origin: str
) -> None:
    before = site.calls.count
    status, body = await site.refusal("/ws", origin)
    assert status == 403
    assert REFUSED in body
    assert "alice" not in body and site.cookie.split("=")[1] not in body
    # One log line, the same shape as any CSRF refusal, without the cookie.
    assert len(csrf_log) == 1
    assert csrf_log[0].startswith("CSRF: refused GET /ws (websocket handshake): ")
    assert repr(origin) in csrf_log[0]
    assert site.cookie.split("=")[1] not in csrf_log[0]
    # Refused before the session was read: no store call at all.
    assert site.calls.count == before


async def test_another_port_of_this_host_is_another_origin(site: Site) -> None:
    host, port = site.address.rsplit(":", 1)
    status, _ = await site.refusal("/ws", f"http://{host}:{int(port) + 1}")
    assert status == 403
    # localhost and 127.0.0.1 are different sites, whatever they resolve to.
    status, _ = await site.refusal("/ws", f"http://localhost:{port}")
    assert status == 403


async def test_a_cross_site_handshake_gets_403_before_the_login_guard(site: Site) -> None:
    # The origin check runs before the login guard: the answer does not depend on a login.
    stranger = dataclasses.replace(site, cookie="auth_session=not-a-session")
    assert (await stranger.refusal("/ws-private", EVIL))[0] == 403
    assert (await stranger.refusal("/ws-private", site.own))[0] == 401
    assert (await site.refusal("/ws-private", EVIL))[0] == 403


async def test_sec_fetch_site_decides_when_sent(site: Site) -> None:
    # Chromium sends no Sec-Fetch-* headers on a handshake (the browser test checks it);
    # a browser that does is judged by them, as for a POST.
    refused = await site.refusal("/ws", site.own, **{"sec-fetch-site": "same-site"})
    assert refused[0] == 403
    assert await site.user("/ws", site.own, **{"sec-fetch-site": "same-origin"}) == "alice"


async def test_an_exempt_route_accepts_any_origin(site: Site, csrf_log: list[str]) -> None:
    assert await site.user("/ws-exempt", EVIL) == "alice"
    assert await site.user("/ws-exempt", "null") == "alice"
    assert csrf_log == []


async def test_a_handshake_without_origin_over_plain_http_passes(site: Site) -> None:
    # Not a browser (browsers always send Origin on a handshake); the rule for a POST
    # without Origin, Sec-Fetch-Site or Referer over plain HTTP.
    assert await site.user("/ws", None) == "alice"
    assert await site.user("/ws-private", None) == "alice"


async def test_behind_a_tls_proxy_a_handshake_without_origin_needs_a_referer(
    auth_backend: Backend | str,
) -> None:
    # wss:// (the proxy says https): the rule for an HTTPS POST without Origin applies.
    app, auth = build(auth_backend)
    app.config.PROXIES_COUNT = 1
    async with site_of(app, auth) as site:
        tls = {"x-forwarded-for": "203.0.113.7", "x-forwarded-proto": "https"}
        assert (await site.refusal("/ws", None, **tls))[0] == 403
        assert await site.user("/ws", f"https://{site.address}", **tls) == "alice"
        assert await site.user("/ws", None, referer=f"https://{site.address}/chat", **tls) == (
            "alice"
        )
        # An http:// page of this host opening wss:// is refused (it could be anyone's).
        assert (await site.refusal("/ws", site.own, **tls))[0] == 403


async def test_with_protect_all_off_only_csrf_protect_routes_are_checked(
    auth_backend: Backend | str,
) -> None:
    app, auth = build(auth_backend, protect_all=False)
    async with site_of(app, auth) as site:
        assert await site.user("/ws", EVIL) == "alice"
        assert (await site.refusal("/ws-protected", EVIL))[0] == 403
        assert await site.user("/ws-protected", site.own) == "alice"


async def test_verify_by_hand_checks_only_the_origin_of_a_handshake(
    auth_backend: Backend | str,
) -> None:
    app: Sanic[Any, Any] = Sanic(f"wsorigin_{uuid.uuid4().hex}")
    AuthSession(app, backend=auth_backend)
    csrf = CSRFProtect(app, protect_all=False)
    results: list[str] = []

    @app.websocket("/ws")
    async def checked_by_hand(request: Request, ws: Any) -> None:
        try:
            await csrf.verify(request)  # no token: a handshake cannot carry one
            results.append("passed")
        except Exception as exc:
            results.append(type(exc).__name__)
        await ws.send("done")

    async with serving(app) as address:
        for origin in (f"http://{address}", EVIL):
            url = f"ws://{address}/ws"
            async with connect(url, additional_headers={"origin": origin}) as ws:
                assert await ws.recv() == "done"
    assert results == ["passed", "CSRFError"]


def unprotected_app(auth_backend: Backend | str, *, above: bool) -> Sanic[Any, Any]:
    """An app without `CSRFProtect` whose websocket ``/ws`` is marked `csrf_protect`."""
    app: Sanic[Any, Any] = Sanic(f"wsorigin_{uuid.uuid4().hex}")
    AuthSession(app, backend=auth_backend)

    async def handler(request: Request, ws: Any) -> None:
        await ws.send("unchecked")

    if above:
        csrf_protect(app.websocket("/ws")(handler))
    else:
        app.websocket("/ws")(csrf_protect(handler))
    return app


async def test_csrf_protect_above_a_websocket_route_without_csrfprotect_refuses_to_start(
    auth_backend: Backend | str,
) -> None:
    app = unprotected_app(auth_backend, above=True)
    with pytest.raises(
        ConfigurationError, match=r"@csrf_protect on .*handler \(route .*\) needs CSRFProtect"
    ):
        await app.asgi_client.get("/")


async def test_csrf_protect_below_a_websocket_route_without_csrfprotect_never_runs_it(
    auth_backend: Backend | str,
) -> None:
    app = unprotected_app(auth_backend, above=False)
    async with serving(app) as address:
        url = f"ws://{address}/ws"
        async with connect(url, additional_headers={"origin": EVIL}) as ws:
            with pytest.raises(ConnectionClosed):  # the check failed: "unchecked" never sent
                await ws.recv()


async def test_a_custom_csrf_page_answers_a_refused_handshake_before_any_session(
    auth_backend: Backend | str,
) -> None:
    app, auth = build(auth_backend)

    @app.exception(CSRFError)
    async def custom_page(request: Request, exception: Exception) -> HTTPResponse:
        attached = hasattr(request.ctx, "auth_session")
        return html(f"This page cannot connect (session attached: {attached})", status=403)

    async with site_of(app, auth) as site:
        assert await site.refusal("/ws", EVIL) == (
            403,
            "This page cannot connect (session attached: False)",
        )
