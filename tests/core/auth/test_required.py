"""login_required, fresh_login_required, safe_next: guards and redirects that stay on the site."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import pytest
from auth_support import Browser, build_app
from hypothesis import given
from hypothesis import strategies as st
from sanic_testing.testing import ASGI_HOST, ASGI_PORT

from sanic_cookies import ConfigurationError, fresh_login_required, is_safe_path, login_required
from sanic_cookies.clock import ManualClock

SITE = "https://shop.example"

GUARDED = {
    "/private": None,
    "/private-sync": "sync ok",
    "/cbv": "cbv ok",
    "/cbv-decorators": "cbv decorators ok",
    "/bp/private": "blueprint ok",
    "/bp-routes/private": "blueprint route ok",
}


@pytest.mark.parametrize("path", list(GUARDED))
async def test_401_then_200_after_login_then_401_after_logout(make_app: Any, path: str) -> None:
    app, _ = make_app()
    browser = Browser(app)
    assert (await browser.get(path)).status == 401
    await browser.login("alice")
    response = await browser.get(path)
    assert response.status == 200
    if GUARDED[path] is not None:
        assert response.text == GUARDED[path]
    await browser.post("/logout")
    assert (await browser.get(path)).status == 401


async def test_blueprint_middleware_guards_only_its_blueprint(make_app: Any) -> None:
    app, _ = make_app()
    browser = Browser(app)
    assert (await browser.get("/bp-routes/public")).status == 200
    assert (await browser.get("/whoami")).status == 200


@pytest.mark.parametrize("path", ["/options-ok", "/bp/options"])
async def test_options_without_a_login_gets_an_empty_204_not_the_handler(
    make_app: Any, path: str
) -> None:
    # A CORS preflight carries no cookies: not refused (the browser would block the
    # real request), but the guarded handler must not run for it either.
    app, _ = make_app()
    browser = Browser(app)
    response = await browser.request("OPTIONS", path)
    assert response.status == 204 and response.text == ""
    assert (await browser.get(path)).status == 401
    await browser.login("alice")
    response = await browser.request("OPTIONS", path)
    assert response.status == 200 and response.text.endswith("OPTIONS ok")


async def test_options_with_a_stale_login_gets_the_204_too(
    make_app: Any, manual_clock: ManualClock
) -> None:
    app, _ = make_app()
    browser = Browser(app)
    await browser.login("alice")
    assert (await browser.request("OPTIONS", "/fresh-options")).text == "fresh OPTIONS ok"
    manual_clock.advance(3)  # logged in, but not freshly
    response = await browser.request("OPTIONS", "/fresh-options")
    assert response.status == 204 and response.text == ""
    assert (await browser.get("/fresh-options")).status == 401


async def test_response_middleware_sets_cors_headers_on_the_preflight_204(
    make_app: Any,
) -> None:
    # The handler never runs for an anonymous preflight: CORS headers come from
    # response middleware, which runs on the guard's 204 (decorated route and blueprint).
    app, _ = make_app()

    @app.on_response
    async def cors(request: Any, response: Any) -> None:
        response.headers["access-control-allow-origin"] = SITE

    browser = Browser(app)
    for path in ("/options-ok", "/bp/options"):
        response = await browser.request("OPTIONS", path, headers={"origin": SITE})
        assert response.status == 204
        assert response.headers["access-control-allow-origin"] == SITE


async def test_redirect_carries_next_and_login_follows_it_back(make_app: Any) -> None:
    app, _ = make_app()
    browser = Browser(app)
    response = await browser.get("/private-redirect?tab=orders&page=2")
    assert response.status == 302
    location = response.headers["location"]
    assert location == "/login-page?next=" + quote("/private-redirect?tab=orders&page=2", safe="/")

    next_value = dict(part.split("=", 1) for part in urlsplit(location).query.split("&"))["next"]
    login = await browser.post(f"/login?user=alice&next={next_value}")
    assert login.headers["location"] == "/private-redirect?tab=orders&page=2"
    assert (await browser.get(login.headers["location"])).text == "redirect ok"


EVIL_NEXT = [
    "//evil.com",
    "//evil.com/path",
    "///evil.com",
    "https://evil.com",
    "http:evil.com",
    "https:/evil.com",
    "/\\evil.com",
    "\\\\evil",
    "\\/evil.com",
    "javascript:alert(1)",
    "JavaScript:alert(document.cookie)",
    "data:text/html,<script>alert(1)</script>",
    "/\t/evil.com",
    "/\n/evil.com",
    "/ /evil.com",
    " //evil.com",
    "%2F%2Fevil.com",
    "/%2F/evil.com",
    "/%2f%2fevil.com",
    "/%5Cevil.com",
    "%5C%5Cevil.com",
    "/%09/evil.com",
    "evil.com",
    "",
    "/\u3000/evil.com",
    "/\u200b/evil.com",
]


def _stays_on_site(location: str) -> bool:
    # What a browser does: strip tabs/newlines, turn backslashes into slashes, resolve.
    cleaned = location.replace("\t", "").replace("\n", "").replace("\r", "").replace("\\", "/")
    return urlsplit(urljoin(SITE + "/login", cleaned)).netloc == urlsplit(SITE).netloc


@pytest.mark.parametrize("evil", EVIL_NEXT)
@pytest.mark.parametrize("encode", [True, False], ids=["param", "raw"])
async def test_login_never_redirects_off_site(evil: str, encode: bool) -> None:
    app, _ = build_app("memory://")
    browser = Browser(app)
    if encode:
        response = await browser.post("/login", params={"user": "alice", "next": evil})
    else:
        # Existing %-escapes go through as they are (decoded once by the server).
        raw = quote(evil, safe="%/\\:@!$'()*+,;=")
        response = await browser.post(f"/login?user=alice&next={raw}")
    assert response.status == 302
    location = response.headers["location"]
    assert location == "/", f"{evil!r} led to {location!r}"


async def test_a_double_slash_request_path_is_not_echoed_as_next() -> None:
    app, _ = build_app("memory://")

    @app.get("/<rest:path>")
    @login_required(redirect_to="/login-page")
    async def catch_all(request: Any, rest: str) -> Any:
        raise AssertionError("not logged in: unreachable")

    browser = Browser(app)
    response = await browser.get(f"http://{ASGI_HOST}:{ASGI_PORT}//evil.com/x")
    assert response.status == 302
    assert response.headers["location"] == "/login-page"


async def test_redirect_to_with_a_query_appends_next() -> None:
    app, _ = build_app("memory://")

    @app.get("/guarded")
    @login_required(redirect_to="/login?lang=en")
    async def guarded(request: Any) -> Any:
        raise AssertionError("unreachable")

    response = await Browser(app).get("/guarded")
    assert response.headers["location"] == "/login?lang=en&next=/guarded"


@pytest.mark.parametrize(
    "good",
    ["/", "/account", "/a/b?c=d&e=f", "/search?q=%2F%2F", "/caf%C3%A9", "/p#frag", "/café"],
)
def test_safe_paths_are_accepted(good: str) -> None:
    assert is_safe_path(good)


@pytest.mark.parametrize("evil", EVIL_NEXT)
def test_evil_paths_are_refused(evil: str) -> None:
    assert not is_safe_path(evil)


@given(st.text(max_size=40))
def test_any_accepted_path_stays_on_site(value: str) -> None:
    if is_safe_path(value):
        assert _stays_on_site(value)
        assert _stays_on_site(quote(value, safe=":/%#?&=@[]!$&'()*+,;"))  # as sanic's redirect


async def test_fresh_login_required_expires(make_app: Any, manual_clock: ManualClock) -> None:
    app, _ = make_app()
    browser = Browser(app)
    assert (await browser.get("/fresh")).status == 401
    await browser.login("alice")
    manual_clock.advance(2)
    assert (await browser.get("/fresh")).status == 200  # fresh for 2 s, inclusive
    manual_clock.advance(0.2)
    assert (await browser.get("/fresh")).status == 401  # still logged in, but not freshly
    assert (await browser.get("/private")).status == 200
    await browser.login("alice")
    assert (await browser.get("/fresh")).status == 200


async def test_fresh_login_required_can_redirect() -> None:
    app, _ = build_app("memory://")

    @app.get("/pay")
    @fresh_login_required(60, redirect_to="/reauth")
    async def pay(request: Any) -> Any:
        return None

    response = await Browser(app).get("/pay")
    assert response.status == 302 and response.headers["location"] == "/reauth?next=/pay"


def test_decorator_misuse_is_reported() -> None:
    with pytest.raises(TypeError, match=r"@login_required\(\)"):

        @login_required  # type: ignore[arg-type]
        async def handler(request: Any) -> None: ...

    with pytest.raises(ConfigurationError):
        fresh_login_required(0)
    with pytest.raises(ConfigurationError):
        fresh_login_required(True)
    with pytest.raises(ConfigurationError):
        login_required(redirect_to="")


async def test_guard_names_a_missing_auth_session() -> None:
    app, _ = build_app("memory://")

    @app.get("/wrong")
    @login_required("no_such_session")
    async def wrong(request: Any) -> None: ...

    response = await Browser(app).get("/wrong")
    assert response.status == 500


BLUEPRINT_IN_A_FRESH_PROCESS = """
import asyncio, sys
from sanic import Blueprint, Sanic, text
from sanic_cookies import AuthSession, login_required

Sanic.test_mode = True
app = Sanic("fresh_process_blueprint")
AuthSession(app)
bp = Blueprint("account", url_prefix="/account")
bp.on_request(login_required().check)

@bp.get("/")
async def account(request):
    return text("secret")

app.blueprint(bp)

async def main():
    _, response = await app.asgi_client.get("/account/")
    sys.stdout.write(str(response.status))

asyncio.run(main())
"""


def test_blueprint_guard_works_in_a_fresh_process() -> None:
    # Sanic's blueprint on_request ignores a callable that is not a plain function
    # unless some earlier call flipped its lazy-registration flag, so only a fresh
    # interpreter shows whether `check` really registers.
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-c", BLUEPRINT_IN_A_FRESH_PROCESS],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.stdout == "401", result.stderr[-2000:]
