"""CSRF protection end to end, through real apps on every backend of `AUTH_BACKENDS`.

Each test plays a browser (`Browser`: its own cookie jar) and, where it matters, an
attacker's page (an ``Origin`` / ``Sec-Fetch-Site`` of another site).
"""

from __future__ import annotations

import logging

import pytest
from auth_support import Browser
from web_support import build_web_app

from sanic_cookies import Backend

SAME = {"sec-fetch-site": "same-origin"}
CROSS = {"sec-fetch-site": "cross-site", "origin": "https://evil.example"}
REFUSED = "refused by cross-site request forgery (CSRF) protection"


async def token_of(browser: Browser) -> str:
    response = await browser.get("/form")
    assert response.status == 200, response.text
    return str(response.text)


def csrf_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("CSRF:")]


async def test_a_post_without_the_token_gets_403_and_one_log_line(
    auth_backend: Backend | str, caplog: pytest.LogCaptureFixture
) -> None:
    app, _ = build_web_app(auth_backend)
    browser = Browser(app)
    token = await token_of(browser)
    caplog.set_level(logging.INFO, "sanic_cookies")
    response = await browser.post("/action", headers=SAME)
    assert response.status == 403
    assert REFUSED in response.text
    assert token not in response.text
    lines = csrf_lines(caplog)
    assert lines == [
        "CSRF: refused POST /action: no token in the X-CSRF-Token header or csrf_token field"
    ]


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
async def test_every_unsafe_method_needs_the_token_from_the_header(
    auth_backend: Backend | str, method: str
) -> None:
    app, _ = build_web_app(auth_backend)
    browser = Browser(app)
    token = await token_of(browser)
    refused = await browser.request(method, "/action", headers=SAME)
    assert refused.status == 403
    accepted = await browser.request(method, "/action", headers={**SAME, "X-CSRF-Token": token})
    assert (accepted.status, accepted.text) == (200, "done")


async def test_the_form_field_carries_the_token_and_each_page_gets_a_new_mask(
    auth_backend: Backend | str, caplog: pytest.LogCaptureFixture
) -> None:
    app, _ = build_web_app(auth_backend)
    browser = Browser(app)
    first, second = await token_of(browser), await token_of(browser)
    assert first != second  # masked afresh (BREACH), the same secret underneath
    caplog.set_level(logging.INFO, "sanic_cookies")
    for token in (first, second):
        response = await browser.post("/action", data={"csrf_token": token}, headers=SAME)
        assert (response.status, response.text) == (200, "done")
    wrong = first[:-2] + ("AA" if not first.endswith("AA") else "BB")
    for bad in (wrong, "", "x" * 86, "é" * 86, first + "=", "A" * 10_000):
        response = await browser.post("/action", data={"csrf_token": bad}, headers=SAME)
        assert response.status == 403, bad
    assert all(first not in line and second not in line for line in csrf_lines(caplog))
    assert len(csrf_lines(caplog)) == 6


async def test_a_token_works_only_with_its_own_session(auth_backend: Backend | str) -> None:
    app, _ = build_web_app(auth_backend)
    victim, attacker = Browser(app), Browser(app)
    await token_of(victim)
    attackers_token = await token_of(attacker)
    response = await victim.post("/action", headers={**SAME, "X-CSRF-Token": attackers_token})
    assert response.status == 403
    # No session at all: nothing to compare with.
    response = await Browser(app).post("/action", headers={**SAME, "X-CSRF-Token": attackers_token})
    assert response.status == 403


@pytest.mark.parametrize(
    "headers",
    [
        CROSS,
        {"sec-fetch-site": "same-site", "origin": "https://other.localhost"},
        {"origin": "https://evil.example"},
        {"origin": "null"},
    ],
    ids=["cross-site", "same-site", "foreign-origin", "null-origin"],
)
async def test_a_cross_site_request_is_refused_even_with_a_valid_token(
    auth_backend: Backend | str, headers: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    app, _ = build_web_app(auth_backend)
    browser = Browser(app)
    token = await token_of(browser)
    caplog.set_level(logging.INFO, "sanic_cookies")
    response = await browser.post("/action", headers={**headers, "X-CSRF-Token": token})
    assert response.status == 403
    [line] = csrf_lines(caplog)
    assert "Origin" in line or "Sec-Fetch-Site" in line  # refused before the token
    assert token not in line


async def test_a_trusted_origin_may_post_with_the_token(auth_backend: Backend | str) -> None:
    app, _ = build_web_app(auth_backend, trusted_origins=["https://*.partner.example"])
    browser = Browser(app)
    token = await token_of(browser)
    partner = {"sec-fetch-site": "cross-site", "origin": "https://shop.partner.example"}
    response = await browser.post("/action", headers={**partner, "X-CSRF-Token": token})
    assert response.status == 200
    # Trusted origin, no token: still refused.
    assert (await browser.post("/action", headers=partner)).status == 403


async def test_login_csrf_a_cross_site_login_post_is_refused_without_any_session(
    auth_backend: Backend | str,
) -> None:
    """1.0.0's demo logged the victim in as the attacker; SameSite=Lax does not stop it."""
    app, _ = build_web_app(auth_backend)
    victim = Browser(app)
    response = await victim.post("/login", params={"user": "mallory"}, headers=CROSS)
    assert response.status == 403
    assert victim.jar == {} and response.headers.get_list("set-cookie") == []
    # Not cross-site, but no session and so no token: refused as well.
    response = await victim.post("/login", params={"user": "mallory"})
    assert response.status == 403
    assert victim.jar == {}
    # The real login form works.
    token = await token_of(victim)
    response = await victim.post(
        "/login", params={"user": "alice"}, headers={**SAME, "X-CSRF-Token": token}
    )
    assert response.status == 302
    assert (await victim.get("/whoami")).json == {"user": "alice"}


@pytest.mark.parametrize("keep", ["0", "1"], ids=["login", "login-keep-data"])
async def test_login_replaces_the_token(auth_backend: Backend | str, keep: str) -> None:
    app, _ = build_web_app(auth_backend)
    browser = Browser(app)
    before = await token_of(browser)
    login = await browser.post(
        "/login", params={"user": "alice", "keep": keep}, headers={**SAME, "X-CSRF-Token": before}
    )
    assert login.status == 302
    stale = await browser.post("/action", headers={**SAME, "X-CSRF-Token": before})
    assert stale.status == 403
    after = await token_of(browser)
    fresh = await browser.post("/action", headers={**SAME, "X-CSRF-Token": after})
    assert fresh.status == 200


async def test_logout_ends_the_token(auth_backend: Backend | str) -> None:
    app, _ = build_web_app(auth_backend)
    browser = Browser(app)
    await browser.post("/login", headers={**SAME, "X-CSRF-Token": await token_of(browser)})
    token = await token_of(browser)
    replay = browser.clone()  # the logged-in cookie, kept by an attacker
    response = await browser.post("/logout", headers={**SAME, "X-CSRF-Token": token})
    assert response.status == 200
    for who in (browser, replay):
        response = await who.post("/action", headers={**SAME, "X-CSRF-Token": token})
        assert response.status == 403


async def test_an_exempt_route_takes_cross_site_posts(auth_backend: Backend | str) -> None:
    app, _ = build_web_app(auth_backend)
    response = await Browser(app).post("/hook", headers=CROSS)
    assert (response.status, response.text) == (200, "hooked")
