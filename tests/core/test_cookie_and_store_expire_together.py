"""The browser's cookie and the stored session expire together (docs/configuration.md).

Each test checks a promise of docs/configuration.md ("How the timeouts combine") or
docs/websockets.md, found broken by a review of the change that made rewrites keep the
stored expiry until a refresh is due. Time is driven by `ManualClock`; the memory
backend keeps its TTLs on that clock.
"""

from __future__ import annotations

import httpx
from core_support import new_app
from sanic import Sanic, text
from serving import serving
from websockets.asyncio.client import connect

from sanic_cookies import Session
from sanic_cookies.clock import ManualClock

EXPIRY = 1000.0
REFRESH = 100.0  # the default would be the same: min(300, EXPIRY / 10)


def _max_age(set_cookie: str) -> int:
    for part in set_cookie.split(";"):
        name, _, value = part.strip().partition("=")
        if name.lower() == "max-age":
            return int(value)
    raise AssertionError(f"no Max-Age in {set_cookie!r}")


def _app(name: str) -> tuple[Sanic, Session]:
    app = new_app(name)
    session = Session(
        app, backend="memory://", expiry=EXPIRY, refresh_interval=REFRESH, secure=False
    )

    @app.post("/set/<value:str>")
    async def set_value(request, value):  # type: ignore[no-untyped-def]
        async with request.ctx.session as sess:
            sess["v"] = value
        return text("saved")

    @app.get("/get")
    async def get_value(request):  # type: ignore[no-untyped-def]
        async with request.ctx.session as sess:
            return text(str(sess.get("v")))

    @app.websocket("/live")
    async def live(request, ws):  # type: ignore[no-untyped-def]
        value = await ws.recv()
        async with request.ctx.session as sess:
            sess["v"] = value
        await ws.send("ok")

    return app, session


async def test_websocket_write_slides_the_store_and_http_writes_then_never_renew_the_cookie(
    manual_clock: ManualClock,
) -> None:
    """A websocket write that is "due" extends the store by a full `expiry` (no cookie can
    follow); HTTP writes within `refresh_interval` after it are then "not due" and send no
    Set-Cookie. The browser's cookie, still at the Max-Age of the first response, runs out
    40 s after the user's last HTTP write, while the stored session lives on ~950 s more.

    docs/configuration.md: "the cookie and the stored session always expire together" and
    "a session ends between `expiry - refresh_interval` and `expiry` seconds after its last
    use".
    """
    app, _ = _app("ws_slide")
    async with serving(app) as host, httpx.AsyncClient(base_url=f"http://{host}") as client:
        first = await client.post("/set/a")
        cookie_set_at = manual_clock.now()
        cookie_expires = cookie_set_at + _max_age(first.headers["set-cookie"])
        cookie = first.headers["set-cookie"].split(";")[0]

        manual_clock.advance(950)  # a refresh is due now
        async with connect(f"ws://{host}/live", additional_headers={"cookie": cookie}) as ws:
            await ws.send("b")
            assert await ws.recv() == "ok"

        manual_clock.advance(10)  # the user goes on over HTTP and changes the data
        last_use = manual_clock.now()
        write = await client.post("/set/c", headers={"cookie": cookie})
        assert write.status_code == 200
        new_cookie = write.headers.get("set-cookie")
        browser_expires = cookie_expires if new_cookie is None else last_use + _max_age(new_cookie)
        assert browser_expires - last_use >= EXPIRY - REFRESH, (
            f"the browser's cookie ends {browser_expires - last_use:.0f} s after the last use "
            f"(docs: between {EXPIRY - REFRESH:.0f} and {EXPIRY:.0f} s); "
            f"Set-Cookie sent: {new_cookie is not None}"
        )


async def test_websocket_write_makes_the_store_outlive_the_cookie(
    manual_clock: ManualClock,
) -> None:
    """The same path, seen from the store: after the browser's cookie has expired (its
    Max-Age has run out) the stored session is still there, openable by anyone holding a
    copy of the cookie value. docs/configuration.md: "always expire together"."""
    app, _ = _app("ws_outlive")
    async with serving(app) as host, httpx.AsyncClient(base_url=f"http://{host}") as client:
        first = await client.post("/set/a")
        cookie_expires = manual_clock.now() + _max_age(first.headers["set-cookie"])
        cookie = first.headers["set-cookie"].split(";")[0]

        manual_clock.advance(950)
        async with connect(f"ws://{host}/live", additional_headers={"cookie": cookie}) as ws:
            await ws.send("b")
            assert await ws.recv() == "ok"

        manual_clock.advance(
            cookie_expires - manual_clock.now() + 1
        )  # the browser dropped the cookie
        # A copy of the cookie value (the browser no longer sends it) still opens the session.
        replay = await client.get("/get", headers={"cookie": cookie})
        assert replay.text == "None", (
            f"the stored session outlives the browser's cookie: it still holds {replay.text!r}"
        )


async def test_max_age_is_measured_from_the_response_not_the_write(
    manual_clock: ManualClock,
) -> None:
    """The store's expiry is fixed when the block writes (t + expiry); the cookie's
    Max-Age is `expiry` counted from when the response is made. A handler that works on
    after its block (here 50 s) would give a cookie that outlives the store by that long,
    and rewrites keep the stored expiry, so no later one would correct it."""
    app = new_app("late_response")
    Session(app, backend="memory://", expiry=EXPIRY, refresh_interval=REFRESH, secure=False)

    @app.post("/slow")
    async def slow(request):  # type: ignore[no-untyped-def]
        async with request.ctx.session as sess:
            sess["v"] = 1
        manual_clock.advance(50)  # the handler goes on (a slow upstream call, say)
        return text("ok")

    async with serving(app) as host, httpx.AsyncClient(base_url=f"http://{host}") as client:
        written_at = manual_clock.now()
        response = await client.post("/slow")
        responded_at = manual_clock.now()
        cookie_expires = responded_at + _max_age(response.headers["set-cookie"])
        store_expires = written_at + EXPIRY
        assert cookie_expires <= store_expires + 1, (
            f"the cookie outlives the stored session by {cookie_expires - store_expires:.0f} s"
        )


async def test_a_write_after_a_streamed_response_keeps_the_stored_expiry(
    manual_clock: ManualClock,
) -> None:
    """A streaming handler's block writes after its response went out (the response
    middleware ran at `request.respond()`): no cookie can follow, so the write must not
    push the stored expiry out, or the next HTTP write (then not due) would never renew
    the browser's cookie."""
    app, _ = _app("stream_slide")

    @app.post("/stream/<value:str>")
    async def stream(request, value):  # type: ignore[no-untyped-def]
        async with request.ctx.session as sess:
            response = await request.respond(content_type="text/plain")
            sess["v"] = value
        await response.send("saved")
        await response.eof()

    async with serving(app) as host, httpx.AsyncClient(base_url=f"http://{host}") as client:
        first = await client.post("/set/a")
        cookie_expires = manual_clock.now() + _max_age(first.headers["set-cookie"])
        cookie = first.headers["set-cookie"].split(";")[0]

        manual_clock.advance(950)  # a refresh is due now
        streamed = await client.post("/stream/b", headers={"cookie": cookie})
        assert streamed.text == "saved" and "set-cookie" not in streamed.headers

        manual_clock.advance(10)
        last_use = manual_clock.now()
        write = await client.post("/set/c", headers={"cookie": cookie})
        new_cookie = write.headers.get("set-cookie")
        browser_expires = cookie_expires if new_cookie is None else last_use + _max_age(new_cookie)
        assert browser_expires - last_use >= EXPIRY - REFRESH
        assert (await client.get("/get", headers={"cookie": cookie})).text == "c"
