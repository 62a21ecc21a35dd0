"""Cross-site websocket hijacking in headless Chromium: what the browser sends, what is refused.

The app runs in the test's loop (`serving`), logged in by Chromium itself (the app's
own ``Set-Cookie``: HttpOnly, SameSite=Lax). Pages that open a websocket to it come from
(`SCENARIOS`):

* the app's own origin;
* another origin of the same *site*: another port (a second server,
  ``http://localhost:<Q>``), or a sibling subdomain (``chat.wsorigin.test`` next to
  ``app.wsorigin.test``);
* another site: ``http://127.0.0.1:<Q>``, or ``www.elsewhere.test``.

``/ws`` is checked by `CSRFProtect`; ``/ws-exempt`` (``@csrf_exempt``) says who the
user is, which shows whether Chromium attached the cookie. A middleware records each
handshake's headers before any check.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from demo_support import launched
from sanic import Request, Sanic, html, redirect
from sanic.response import HTTPResponse
from serving import serving

from sanic_cookies import AuthSession, CSRFProtect, csrf_exempt

pytestmark = pytest.mark.browser

Sanic.test_mode = True  # several apps served in one process (no touch-up of the server code)

#: The page every origin serves: ``open(url)`` resolves to what the websocket got.
PAGE = """<!doctype html><title>ws</title><script>
function open_ws(url) {
  return new Promise((resolve) => {
    const ws = new WebSocket(url);
    ws.onmessage = (e) => { resolve("message " + e.data); ws.close(); };
    ws.onclose = (e) => resolve("closed " + e.code);
  });
}
</script>"""


@contextlib.asynccontextmanager
async def static_page(body: str) -> AsyncIterator[int]:
    """A second HTTP server on 127.0.0.1 answering every request with `body`; yields its port."""
    payload = body.encode()

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            head = (
                "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\n"
                f"content-length: {len(payload)}\r\nconnection: close\r\n\r\n"
            )
            writer.write(head.encode() + payload)
            await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()
        await server.wait_closed()


def chat_app(handshakes: list[dict[str, str]], *, secure: bool) -> Sanic[Any, Any]:
    app: Sanic[Any, Any] = Sanic(f"wsbrowser_{uuid.uuid4().hex}")
    auth = AuthSession(app, secure=secure)  # memory://; HttpOnly, SameSite=Lax by default
    CSRFProtect(app)

    @app.on_request(priority=10)  # before every check: what Chromium sent
    async def record(request: Request) -> None:
        if request.headers.get("upgrade", "").lower() == "websocket":
            handshakes.append({k.lower(): v for k, v in request.headers.items()})

    @app.get("/enter")
    async def enter(request: Request) -> HTTPResponse:
        await auth.login_user(request, "alice")  # a test app: a login without a form
        return redirect("/page")

    @app.get("/page")
    async def page(request: Request) -> HTTPResponse:
        return html(PAGE)

    async def whoami(request: Request, ws: Any) -> None:
        await ws.send(json.dumps(await auth.current_user(request)))

    @app.websocket("/ws")
    async def checked(request: Request, ws: Any) -> None:
        await whoami(request, ws)

    @app.websocket("/ws-exempt")
    @csrf_exempt
    async def exempt(request: Request, ws: Any) -> None:
        await whoami(request, ws)

    return app


@dataclasses.dataclass(frozen=True)
class Origins:
    """Where the app is and where the three pages come from (``{app}``: the app's port,
    ``{other}``: the second server's)."""

    app: str  # the app's origin (also the same-origin page)
    sibling: str  # another origin of the same site
    foreign: str  # another site
    secure: bool  # the session cookie is Secure (Chromium keeps one over http on localhost only)
    args: tuple[str, ...] = ()  # more Chromium arguments


SCENARIOS = {
    # Another port of the same host is the same site; 127.0.0.1 is another site.
    "ports": Origins(
        "http://localhost:{app}", "http://localhost:{other}", "http://127.0.0.1:{other}", True
    ),
    # A sibling subdomain is the same site; another domain is not (names resolved to
    # 127.0.0.1 by Chromium itself; over http there, the cookie cannot be Secure).
    "subdomains": Origins(
        "http://app.wsorigin.test:{app}",
        "http://chat.wsorigin.test:{app}",
        "http://www.elsewhere.test:{app}",
        False,
        ("--host-resolver-rules=MAP *.wsorigin.test 127.0.0.1, MAP *.elsewhere.test 127.0.0.1",),
    ),
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
async def test_chromium_cross_origin_websockets(
    chromium: str, caplog: pytest.LogCaptureFixture, scenario: str
) -> None:
    caplog.set_level(logging.INFO, "sanic_cookies")
    origins = SCENARIOS[scenario]
    handshakes: list[dict[str, str]] = []
    app = chat_app(handshakes, secure=origins.secure)
    async with (
        serving(app) as address,
        static_page(PAGE) as other,
        launched(chromium, origins.args) as browser,
    ):
        port = address.rsplit(":", 1)[1]
        own, sibling, foreign = (
            url.format(app=port, other=other)
            for url in (origins.app, origins.sibling, origins.foreign)
        )
        target = own.replace("http://", "ws://")
        context = await browser.new_context()
        page = await context.new_page()
        await page.goto(f"{own}/enter")
        (cookie,) = await context.cookies()
        assert (cookie["name"], cookie["sameSite"], cookie["secure"]) == (
            "auth_session",
            "Lax",
            origins.secure,
        )

        async def opened(origin: str, path: str) -> str:
            await page.goto(f"{origin}/page")
            result: str = await page.evaluate("(url) => open_ws(url)", f"{target}{path}")
            return result

        # The same origin: the checked websocket opens, with alice's session.
        assert await opened(own, "/ws") == 'message "alice"'
        # Another origin of the same site: Chromium attaches the Lax cookie (the exempt
        # route sees alice), so only the Origin check stops the hijack.
        assert await opened(sibling, "/ws-exempt") == 'message "alice"'
        assert await opened(sibling, "/ws") == "closed 1006"  # refused: no upgrade
        # Another site: Chromium does not attach the Lax cookie, and the Origin is refused.
        assert await opened(foreign, "/ws-exempt") == "message null"
        assert await opened(foreign, "/ws") == "closed 1006"
        await context.close()

    # What Chromium sent: an Origin on every handshake, no Sec-Fetch-* headers, and the
    # session cookie from this site's pages only.
    sent = [(h["origin"], "cookie" in h) for h in handshakes]
    assert sent == [
        (own, True),
        (sibling, True),
        (sibling, True),
        (foreign, False),
        (foreign, False),
    ]
    assert not [h for h in handshakes if any(k.startswith("sec-fetch-") for k in h)]
    host = own.removeprefix("http://")
    refusals = [r.getMessage() for r in caplog.records if r.getMessage().startswith("CSRF:")]
    assert refusals == [
        f"CSRF: refused GET /ws (websocket handshake): the Origin '{origin}' is not this "
        f"site ({host!r}) nor trusted"
        for origin in (sibling, foreign)
    ]
