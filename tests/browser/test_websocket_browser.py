"""Cross-site websocket hijacking in headless Chromium: what the browser sends, what is refused.

The app runs in the test's loop (`serving`) at ``http://localhost:<P>``, logged in by
Chromium itself (the app's own ``Set-Cookie``: Secure, HttpOnly, SameSite=Lax). Pages
that call ``new WebSocket("ws://localhost:<P>/...")`` are opened from:

* the app itself, ``http://localhost:<P>``: the same origin;
* a second server, ``http://localhost:<Q>``: another origin of the same *site*
  (a site ignores the port, like a sibling subdomain);
* the same second server as ``http://127.0.0.1:<Q>``: another site.

``/ws`` is checked by `CSRFProtect`; ``/ws-exempt`` (``@csrf_exempt``) says who the
user is, which shows whether Chromium attached the cookie. A middleware records each
handshake's headers before any check.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sanic import Request, Sanic, html, redirect
from sanic.response import HTTPResponse
from serving import serving

from sanic_cookies import AuthSession, CSRFProtect, csrf_exempt

pytestmark = pytest.mark.browser

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


def chat_app(handshakes: list[dict[str, str]]) -> Sanic[Any, Any]:
    app: Sanic[Any, Any] = Sanic(f"wsbrowser_{uuid.uuid4().hex}")
    auth = AuthSession(app)  # memory://, the default cookie: Secure, HttpOnly, SameSite=Lax
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


async def test_chromium_cross_origin_websockets(
    browser: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "sanic_cookies")
    handshakes: list[dict[str, str]] = []
    app = chat_app(handshakes)
    async with serving(app) as address, static_page(PAGE) as other:
        port = address.rsplit(":", 1)[1]
        target = f"ws://localhost:{port}"
        context = await browser.new_context()
        page = await context.new_page()
        await page.goto(f"http://localhost:{port}/enter")
        (cookie,) = await context.cookies()
        assert (cookie["name"], cookie["sameSite"], cookie["secure"]) == (
            "auth_session",
            "Lax",
            True,
        )

        async def opened(origin: str, path: str) -> str:
            await page.goto(f"{origin}/page")
            result: str = await page.evaluate("(url) => open_ws(url)", f"{target}{path}")
            return result

        # The same origin: the checked websocket opens, with alice's session.
        own = f"http://localhost:{port}"
        assert await opened(own, "/ws") == 'message "alice"'
        # Another origin of the same site (another port): Chromium attaches the Lax cookie
        # (the exempt route sees alice), so only the Origin check stops the hijack.
        sibling = f"http://localhost:{other}"
        assert await opened(sibling, "/ws-exempt") == 'message "alice"'
        assert await opened(sibling, "/ws") == "closed 1006"  # refused: no upgrade
        # Another site: Chromium does not attach the Lax cookie, and the Origin is refused.
        foreign = f"http://127.0.0.1:{other}"
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
    refusals = [r.getMessage() for r in caplog.records if r.getMessage().startswith("CSRF:")]
    assert refusals == [
        f"CSRF: refused GET /ws (websocket handshake): the Origin '{origin}' is not this "
        f"site ('localhost:{port}') nor trusted"
        for origin in (sibling, foreign)
    ]
