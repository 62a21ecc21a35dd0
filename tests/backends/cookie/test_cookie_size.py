"""The 4093-byte cookie limit: refused loudly, never a cookie the browser would drop."""

from __future__ import annotations

import logging
import random
from typing import Any

import pytest
from cookie_support import build_app, new_key, serve

from sanic_cookies import ConfigurationError, SessionTooLarge
from sanic_cookies.backends.cookie import MAX_COOKIE_SIZE, CookieBackend

pytestmark = pytest.mark.cookie

# Every attribute at its longest: the limit covers name, value and attributes together.
HEAVY = {
    "cookie_name": "a_rather_long_session_cookie_name",
    "domain": "accounts.subdomain.example-company.co.uk",
    "path": "/very/long/application/mount/point/for/sessions",
    "expiry": 99_999_999,
    "lifetime": 99_999_999,
}


@pytest.mark.parametrize("settings", [{}, HEAVY], ids=["defaults", "long-attributes"])
async def test_every_accepted_write_fits_and_the_rest_fail_loudly(
    settings: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    name = settings.get("cookie_name", "session")
    rng = random.Random(1234)
    # Sizes all over the range, dense around the limit (about 2.9 KB of random data fits).
    sizes = sorted({rng.randrange(0, 4000) for _ in range(60)} | set(range(2800, 3100, 7)))
    accepted: list[tuple[int, int]] = []
    refused: list[int] = []
    app = build_app(CookieBackend(keys=[new_key()]), **settings)
    async with serve(app) as client:
        for n in sizes:
            for route in ("/blob", "/blob-unlocked"):
                reply = await client.raw("POST", f"{route}?n={n}", {})
                if reply.status == 200:
                    (header,) = reply.set_cookies
                    assert header.startswith(f"{name}=")
                    assert len(header.encode()) <= MAX_COOKIE_SIZE, (n, len(header))
                    accepted.append((n, len(header.encode())))
                else:
                    # A developer's bug (too much data): an error response, and no cookie
                    # at all - the browser keeps its previous one.
                    assert reply.status == 500, (n, reply.status)
                    assert reply.set_cookies == [], (n, reply.set_cookies)
                    refused.append(n)
    assert accepted and refused
    # A clean threshold, up to the few bytes by which records differ: each request is a
    # new session, whose timestamps print with more or fewer digits (no cipher padding
    # hides that now, and the token length follows the data length to the byte).
    assert max(n for n, _ in accepted) < min(refused) + 8, "the limit is a clean threshold"
    # Not needlessly conservative: the largest accepted cookie is close to the limit.
    assert max(size for _, size in accepted) > MAX_COOKIE_SIZE - 120
    errors = [r for r in caplog.records if r.exc_info and r.exc_info[0] is SessionTooLarge]
    assert errors, "SessionTooLarge reaches the logs with its traceback"
    assert f"limit is {MAX_COOKIE_SIZE}" in str(errors[0].exc_info[1])  # type: ignore[index]


async def test_too_large_inside_async_with_raises_in_the_handler() -> None:
    caught: list[BaseException] = []
    app = build_app(CookieBackend(keys=[new_key()]))

    @app.post("/catch")
    async def catch(request: Any) -> Any:
        from sanic import json

        try:
            async with request.ctx.session as sess:
                sess["blob"] = "".join(random.choice("abcdefghij") for _ in range(8000))
        except SessionTooLarge as exc:
            caught.append(exc)
            return json({"size": exc.size, "limit": exc.limit})
        return json({})

    async with serve(app) as client:
        reply = await client.raw("POST", "/catch", {})
    assert reply.status == 200, "the handler saw the exception and could answer"
    assert reply.json["limit"] == MAX_COOKIE_SIZE and reply.json["size"] > MAX_COOKIE_SIZE
    assert reply.set_cookies == []


async def test_a_refused_write_keeps_the_previous_session(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR)
    app = build_app(CookieBackend(keys=[new_key()]))
    async with serve(app) as client:
        token = (await client.request("GET", "/mark", params={"m": "kept"})).cookie()
        assert token
        reply = await client.request("POST", "/blob", token, params={"n": "5000"})
        assert reply.status == 500 and reply.set_cookies == []
        again = await client.request("GET", "/whoami", token)
        assert again.json == {"m": "kept", "user": None, "new": False}


async def test_a_lower_max_cookie_size_is_honoured() -> None:
    app = build_app(CookieBackend(keys=[new_key()], max_cookie_size=1000))
    async with serve(app) as client:
        small = await client.request("POST", "/blob", None, params={"n": "100"})
        assert small.status == 200 and len(small.set_cookies[0]) <= 1000
        big = await client.request("POST", "/blob", None, params={"n": "800"})
        assert big.status == 500 and big.set_cookies == []


async def test_compressible_data_gets_no_more_room_than_random_data() -> None:
    # 1.0 deflated the plaintext, so repetitive data fitted far beyond the limit; that
    # made the length an oracle (see test_cookie_security). The limit is now on length.
    app = build_app(CookieBackend(keys=[new_key()]))

    @app.post("/repetitive")
    async def repetitive(request: Any) -> Any:
        from sanic import json

        async with request.ctx.session as sess:
            sess["blob"] = "a" * int(request.args.get("n", "0"))
        return json({})

    async with serve(app) as client:
        # One session for both (its creation time, inside the record, is then the same).
        token = (await client.request("GET", "/mark", params={"m": "x"})).cookie()
        for n in (1000, 2800, 2950, 3200, 5000):
            same = await client.request("POST", "/repetitive", token, params={"n": str(n)})
            random_data = await client.request("POST", "/blob", token, params={"n": str(n)})
            assert same.status == random_data.status, n
            if same.status == 200:
                assert len(same.set_cookies[0]) == len(random_data.set_cookies[0])
        assert (
            await client.request("POST", "/repetitive", token, params={"n": "5000"})
        ).status == 500


@pytest.mark.parametrize("bad", [0, 100, 5000, "4093", True, 4093.5])
def test_max_cookie_size_is_checked(bad: Any) -> None:
    with pytest.raises(ConfigurationError, match="max_cookie_size"):
        CookieBackend(keys=[new_key()], max_cookie_size=bad)


# Each setting that changes the Set-Cookie header's length, with a real session's token.
COOKIE_SHAPES = {
    "defaults": {},
    "no-max-age": {"session_cookie": True},
    "one-digit-max-age": {"expiry": 9, "lifetime": 9},
    "domain-and-path": {"domain": "accounts.example.com", "path": "/app"},
    "host-prefix-partitioned": {"host_prefix": True, "partitioned": True},
    "no-samesite": {"samesite": False, "httponly": False},
    "heavy": HEAVY,
}


@pytest.mark.parametrize("settings", COOKIE_SHAPES.values(), ids=COOKIE_SHAPES.keys())
async def test_the_size_checked_is_the_size_of_the_header_sent(settings: dict[str, Any]) -> None:
    # The check works the size out from the parts; it must be the rendered header's, to
    # the byte, and the limit must hold at exactly that size.
    app = build_app(CookieBackend(keys=[new_key()]), **settings)
    session = app.ctx.exts.session
    async with serve(app) as client:
        reply = await client.request("POST", "/blob", None, params={"n": "300"})
    assert reply.status == 200
    (header,) = reply.set_cookies
    attrs = dict(part.strip().partition("=")[::2] for part in header.split(";")[1:])
    max_age = int(attrs["Max-Age"]) if "Max-Age" in attrs else None
    assert (max_age is None) == bool(settings.get("session_cookie"))
    value = header.split(";", 1)[0].partition("=")[2]
    size = len(header.encode())
    assert session._template().size(value, max_age) == size
    session._check_cookie_size(value, max_age, size)  # fits exactly
    with pytest.raises(SessionTooLarge) as refused:
        session._check_cookie_size(value, max_age, size - 1)
    assert (refused.value.size, refused.value.limit) == (size, size - 1)
