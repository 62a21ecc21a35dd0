"""CSRF and flash messages in a real browser: the demo against a page of another site.

The attacker's page is served by Playwright's request interception at
http://attacker.test (a different site from http://localhost), so Chromium sends
what it sends for a real cross-site form post: ``Origin: http://attacker.test`` and
``Sec-Fetch-Site: cross-site``. Screenshots go to artifacts/browser/<test>/.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from demo_support import DemoServer
from test_demo_browser import Steps, cookie, log_in, path_of

pytestmark = pytest.mark.browser

ATTACKER = "http://attacker.test"
REFUSED = "refused by cross-site request forgery (CSRF) protection"


def forged_form(action: str, fields: dict[str, str]) -> str:
    inputs = "".join(f'<input type="hidden" name="{k}" value="{v}">' for k, v in fields.items())
    return (
        "<!doctype html><html><body onload='document.forms[0].submit()'>"
        f"<h1>Win a prize!</h1><form method='post' action='{action}'>{inputs}</form>"
        "</body></html>"
    )


async def serve_attacker(context: Any, html: str) -> None:
    async def handle(route: Any) -> None:
        await route.fulfill(status=200, content_type="text/html", body=html)

    await context.route(f"{ATTACKER}/**", handle)


async def submit_forged(page: Any, base: str, path: str) -> Any:
    """Open the attacker's page; return the demo's response to its auto-submitted form."""
    async with page.expect_response(lambda r: r.url == f"{base}{path}") as caught:
        await page.goto(f"{ATTACKER}/prize")
    response = await caught.value
    await page.wait_for_load_state()
    return response


async def test_a_cross_site_login_post_is_refused(
    browser: Any, demo: DemoServer, artifacts: Path
) -> None:
    """Login CSRF: another site cannot log this browser in as the attacker."""
    steps = Steps(artifacts)
    base = demo.url
    context = await browser.new_context()
    await serve_attacker(
        context,
        forged_form(f"{base}/login", {"username": "mallory", "password": "demo", "next": "/"}),
    )
    page = await context.new_page()
    response = await submit_forged(page, base, "/login")
    assert response.status == 403
    assert REFUSED in await page.inner_text("body")
    assert (await response.request.all_headers()).get("origin") == ATTACKER
    await steps.shot(page, "forged-login-refused")
    assert [c for c in await context.cookies() if c["name"] == "auth_session"] == []
    await page.goto(f"{base}/")
    assert "You are not logged in" in await page.inner_text("body")
    await context.close()
    # What Chromium sent (Playwright does not show the Sec-Fetch-* headers it adds).
    assert (
        "CSRF: refused POST /login: Sec-Fetch-Site is 'cross-site' and Origin "
        "'http://attacker.test' is not trusted"
    ) in demo.log


async def test_a_cross_site_post_cannot_act_for_a_logged_in_user(
    browser: Any, demo: DemoServer, artifacts: Path
) -> None:
    steps = Steps(artifacts)
    base = demo.url
    context = await browser.new_context()
    page = await context.new_page()
    await log_in(page, base, "alice")
    login_cookie = cookie(await context.cookies(), "auth_session")
    # A token of the right shape, but not this session's (the attacker cannot read it).
    token = "x" * 86
    await serve_attacker(context, forged_form(f"{base}/logout", {"csrf_token": token}))
    response = await submit_forged(page, base, "/logout")
    assert response.status == 403
    await steps.shot(page, "forged-logout-refused")
    assert cookie(await context.cookies(), "auth_session")["value"] == login_cookie["value"]
    await page.goto(f"{base}/private")
    assert await page.inner_text("#user") == "alice"
    await context.close()
    log = demo.log
    assert login_cookie["value"] not in log and token not in log


@pytest.mark.parametrize("demo_env", ["memory", "cookie"], indirect=True)
async def test_same_site_forms_work_and_notices_show_once(
    browser: Any, demo: DemoServer, artifacts: Path
) -> None:
    steps = Steps(artifacts)
    base = demo.url
    context = await browser.new_context()
    page = await context.new_page()

    # The login form carries a token, masked afresh on every page.
    await page.goto(f"{base}/login")
    first = await page.get_attribute("input[name=csrf_token]", "value")
    await page.reload()
    second = await page.get_attribute("input[name=csrf_token]", "value")
    assert first and second and first != second

    # Log in (a same-site form post, with its token): one notice after the redirect.
    await page.fill("#username", "alice")
    await page.fill("#password", "demo")
    await page.click("#submit")
    await page.wait_for_load_state()
    assert path_of(page, base) == "/"
    assert await page.locator(".flash").all_inner_texts() == ["Logged in as alice."]
    await steps.shot(page, "logged-in-notice")
    await page.reload()
    assert await page.locator(".flash").count() == 0
    await steps.shot(page, "notice-gone-after-reload")

    # Log out: the other notice, also once.
    await page.click("#logout")
    await page.wait_for_load_state()
    assert path_of(page, base) == "/"
    assert await page.locator(".flash").all_inner_texts() == ["You are logged out."]
    assert "You are not logged in" in await page.inner_text("body")
    await steps.shot(page, "logged-out-notice")
    await page.goto(f"{base}/private")
    assert path_of(page, base) == "/login?next=/private"
    assert await page.locator(".flash").count() == 0
    await context.close()
