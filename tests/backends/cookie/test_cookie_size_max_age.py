"""The cookie backend's size check must measure the Set-Cookie header the response sends.

Found by a review: the check measured ``Max-Age=int(ttl)`` while the response sends
``Max-Age=max(1, ceil(expires - now))``. With a fractional TTL (the absolute lifetime
caps it: ``deadline - now``) the header sent had one digit more than the one measured
(999.5 s: checked ``Max-Age=999``, sent ``Max-Age=1000``), so a header one byte over
``max_cookie_size`` went out; with under a second left the check measured a deletion
cookie (``Max-Age=0`` adds ``Expires``) and refused a header that fits.
"""

from __future__ import annotations

import itertools
import uuid
from typing import Any

import pytest
from sanic import Sanic, text

from sanic_cookies import Session, SessionTooLarge
from sanic_cookies.backends.cookie import CookieBackend
from sanic_cookies.clock import ManualClock, use_clock

KEY = "77Dcw0TWX16lgNCTZi64V37M4KBEz4Iqrvu-w0KnpYQ="
_names = itertools.count()


def set_cookies(response: Any) -> list[str]:
    return [v for k, v in response.headers.items() if k.lower() == "set-cookie"]


def cookie_header(name: str, value: str) -> dict[str, str]:
    return {"cookie": f"{name}={value}"}


def new_app(prefix: str) -> Sanic[Any, Any]:
    return Sanic(f"{prefix}{next(_names)}_{uuid.uuid4().hex}")


pytestmark = pytest.mark.cookie

START = 1_800_000_000.0
SIZE = 2000  # bytes of session data: a cookie of about 2.9 KB


def _app(limit: int):  # type: ignore[no-untyped-def]
    app = new_app("sizecheck")
    Session(
        app,
        backend=CookieBackend(keys=[KEY], max_cookie_size=limit),
        expiry=7200,
        lifetime=7200,
        secure=False,
    )

    @app.get("/w")
    async def w(request):  # type: ignore[no-untyped-def]
        try:
            async with request.ctx.session as s:
                s["v"] = "x" * SIZE
                s["n"] = s.get("n", 0) + 1
        except SessionTooLarge as exc:
            return text(f"too large {exc.size}", status=413)
        return text("ok")

    return app


async def _second_write(limit: int, left: float) -> tuple[int, list[str]]:
    """Write at creation, then again when `left` seconds of the lifetime remain."""
    with use_clock(ManualClock(START)) as clock:
        app = _app(limit)
        _, first = await app.asgi_client.get("/w")
        assert first.status == 200
        token = first.cookies.get("session")
        clock.advance(7200 - left)
        _, second = await app.asgi_client.get("/w", headers=cookie_header("session", token))
        return second.status, set_cookies(second)


@pytest.mark.parametrize("left", [999.5, 9.25])
async def test_header_over_the_limit_by_the_rounded_up_max_age_is_refused(left: float) -> None:
    status, headers = await _second_write(4093, left)
    assert status == 200 and len(headers) == 1
    sent = len(headers[0].encode())
    assert f"Max-Age={int(left) + 1};" in headers[0]  # rounded up: one digit more
    # The same request against a limit one byte under what was sent must be refused.
    status, headers = await _second_write(sent - 1, left)
    assert status == 413, f"sent a {[len(h) for h in headers]}-byte Set-Cookie over {sent - 1}"


async def test_header_under_the_limit_with_under_a_second_left_is_accepted() -> None:
    status, headers = await _second_write(4093, 0.5)
    assert status == 200 and len(headers) == 1
    sent = len(headers[0].encode())
    assert "Max-Age=1;" in headers[0]
    # Exactly at the limit: must be accepted (it is measured as a deletion cookie).
    status, headers = await _second_write(sent, 0.5)
    assert status == 200, headers
