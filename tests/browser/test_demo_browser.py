"""The demo in a real browser: login, counter, cookie attributes, logging out other sessions.

Each step saves a screenshot to artifacts/browser/<test>/NN-step.png.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
from demo_support import BACKENDS, DemoServer

pytestmark = pytest.mark.browser


class Steps:
    """Numbered screenshots of one test."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.n = 0

    async def shot(self, page: Any, name: str) -> Path:
        self.n += 1
        path = self.directory / f"{self.n:02d}-{name}.png"
        await page.screenshot(path=str(path), full_page=True)
        return path


async def visits(page: Any) -> int:
    return int(await page.inner_text("#visits"))


async def log_in(page: Any, base: str, user: str, *, remember: bool = False) -> None:
    await page.goto(f"{base}/login")
    await page.fill("#username", user)
    await page.fill("#password", "demo")
    if remember:
        await page.check("#remember")
    await page.click("#submit")
    await page.wait_for_load_state()


def cookie(cookies: list[dict[str, Any]], name: str) -> dict[str, Any]:
    found = [c for c in cookies if c["name"] == name]
    assert len(found) == 1, f"expected one {name!r} cookie, browser holds {cookies}"
    return found[0]


def path_of(page: Any, base: str) -> str:
    url: str = page.url
    assert url.startswith(base), url
    return url[len(base) :]


@pytest.mark.parametrize("demo_env", BACKENDS, indirect=True)
async def test_login_counter_cookies_and_logout_other_sessions(
    browser: Any, demo: DemoServer, artifacts: Path
) -> None:
    steps = Steps(artifacts)
    base = demo.url
    laptop = await browser.new_context()
    page = await laptop.new_page()

    # 1. First visit: a counter in a server-side session.
    await page.goto(f"{base}/")
    assert await visits(page) == 1
    assert "You are not logged in" in await page.inner_text("body")
    await steps.shot(page, "first-visit")

    # 2. The counter survives reloads.
    await page.reload()
    await page.reload()
    assert await visits(page) == 3
    await steps.shot(page, "counter-after-reloads")

    # 3. The protected page sends us to the login form, remembering where we were going.
    await page.goto(f"{base}/private")
    assert path_of(page, base) == "/login?next=/private"
    assert "password is “demo”" in await page.inner_text("body")
    await steps.shot(page, "login-required-redirect")

    # 4. A wrong password is refused on the page.
    await page.fill("#username", "alice")
    await page.fill("#password", "wrong")
    await page.click("#submit")
    assert "Wrong user name or password" in await page.inner_text("#error")
    await steps.shot(page, "wrong-password")

    # 5. Log in: back to the protected page.
    await page.fill("#username", "alice")
    await page.fill("#password", "demo")
    await page.click("#submit")
    await page.wait_for_load_state()
    assert path_of(page, base) == "/private"
    assert await page.inner_text("#user") == "alice"
    await steps.shot(page, "logged-in-private-page")

    # 6. The visit counter (a separate, anonymous Session) outlived the login.
    await page.goto(f"{base}/")
    assert await visits(page) == 4
    assert await page.inner_text("#user") == "alice"
    await steps.shot(page, "counter-after-login")

    # 7. The cookies as the browser stored them: HttpOnly, Secure (localhost), SameSite=Lax.
    jar = await laptop.cookies()
    counter_cookie = cookie(jar, "session")
    login_cookie = cookie(jar, "auth_session")
    for c in (counter_cookie, login_cookie):
        assert c["httpOnly"] is True
        assert c["secure"] is True
        assert c["sameSite"] == "Lax"
        assert c["path"] == "/"
        assert c["domain"] == "localhost"  # host-only: no Domain attribute was sent
    # The counter's cookie is persistent (Max-Age 30 days); a login without
    # "remember me" is a browser-session cookie.
    assert counter_cookie["expires"] > time.time() + 29 * 86400
    assert login_cookie["expires"] == -1
    # HttpOnly: page scripts cannot read either cookie.
    assert await page.evaluate("document.cookie") == ""
    await steps.shot(page, "cookie-attributes")

    # 8. A second browser logs in as the same user, with "remember me".
    phone = await browser.new_context()
    phone_page = await phone.new_page()
    await log_in(phone_page, base, "alice", remember=True)
    assert path_of(phone_page, base) == "/"
    await phone_page.goto(f"{base}/private")
    assert await phone_page.inner_text("#user") == "alice"
    remembered = cookie(await phone.cookies(), "auth_session")
    assert remembered["expires"] > time.time() + 29 * 86400  # remember me: persistent
    await steps.shot(phone_page, "second-browser-logged-in")

    # 9. The first browser lists both sessions, its own marked.
    await page.goto(f"{base}/sessions")
    rows = page.locator("#sessions tr[data-handle]")
    assert await rows.count() == 2
    assert await page.locator("#sessions .current").count() == 1
    assert "this browser" in await page.inner_text("#sessions")
    await steps.shot(page, "your-sessions")

    # 10. "Log out other sessions".
    await page.click("#logout-others")
    await page.wait_for_load_state()
    assert path_of(page, base) == "/sessions"
    assert await page.locator("#sessions tr[data-handle]").count() == 1
    await steps.shot(page, "after-logout-other-sessions")

    # 11. The second browser lost its login on its next request.
    await phone_page.reload()
    assert path_of(phone_page, base) == "/login?next=/private"
    await steps.shot(phone_page, "second-browser-logged-out")

    # 12. The first browser is still logged in.
    await page.goto(f"{base}/private")
    assert await page.inner_text("#user") == "alice"

    # 13. Logging out deletes the login cookie; replaying the old cookie does not log in.
    old_login = cookie(await laptop.cookies(), "auth_session")
    await page.click("#logout")
    await page.wait_for_load_state()
    assert path_of(page, base) == "/"
    assert "You are not logged in" in await page.inner_text("body")
    assert [c for c in await laptop.cookies() if c["name"] == "auth_session"] == []
    await steps.shot(page, "logged-out")
    await laptop.add_cookies([{**old_login}])
    await page.goto(f"{base}/private")
    assert path_of(page, base) == "/login?next=/private"
    await steps.shot(page, "old-cookie-replayed")

    await phone.close()
    await laptop.close()
    assert_no_secrets_in_log(demo, [counter_cookie, login_cookie, remembered, old_login])


async def test_log_out_one_session_from_another(
    browser: Any, demo: DemoServer, artifacts: Path
) -> None:
    steps = Steps(artifacts)
    base = demo.url
    contexts = [await browser.new_context() for _ in range(3)]
    pages = [await c.new_page() for c in contexts]
    for page in pages:
        await log_in(page, base, "bob")
    desk, laptop, phone = pages

    await desk.goto(f"{base}/sessions")
    assert await desk.locator("#sessions tr[data-handle]").count() == 3
    await steps.shot(desk, "three-sessions")

    # Find the laptop's row: the one the laptop itself marks as current.
    await laptop.goto(f"{base}/sessions")
    laptop_handle = await laptop.locator("#sessions tr:has(.current)").get_attribute("data-handle")
    assert laptop_handle and re.fullmatch(r"[0-9a-f]{16}", laptop_handle)

    await desk.reload()
    await desk.locator(f"#sessions tr[data-handle='{laptop_handle}'] button").click()
    await desk.wait_for_load_state()
    assert await desk.locator("#sessions tr[data-handle]").count() == 2
    await steps.shot(desk, "laptop-logged-out-from-desk")

    await laptop.goto(f"{base}/private")
    assert path_of(laptop, base) == "/login?next=/private"
    await phone.goto(f"{base}/private")
    assert await phone.inner_text("#user") == "bob"
    await steps.shot(laptop, "laptop-lost-login")
    for c in contexts:
        await c.close()


async def test_login_never_redirects_off_site(
    browser: Any, demo: DemoServer, artifacts: Path
) -> None:
    steps = Steps(artifacts)
    base = demo.url
    context = await browser.new_context()
    page = await context.new_page()
    await page.goto(f"{base}/login?next=https://evil.example/steal")
    await page.fill("#username", "carol")
    await page.fill("#password", "demo")
    await page.click("#submit")
    await page.wait_for_load_state()
    assert path_of(page, base) == "/"
    assert await page.inner_text("#user") == "carol"
    await steps.shot(page, "next-ignored")
    await context.close()


@pytest.mark.parametrize("demo_env", ["cookie"], indirect=True)
async def test_cookie_backend_demo(browser: Any, demo: DemoServer, artifacts: Path) -> None:
    """On cookie:// the demo works, except the sessions page, which says why it cannot."""
    steps = Steps(artifacts)
    base = demo.url
    context = await browser.new_context()
    page = await context.new_page()
    await page.goto(f"{base}/")
    await page.reload()
    assert await visits(page) == 2
    await log_in(page, base, "dana")
    await page.goto(f"{base}/private")
    assert await page.inner_text("#user") == "dana"
    jar = await context.cookies()
    for c in (cookie(jar, "session"), cookie(jar, "auth_session")):
        assert (c["httpOnly"], c["secure"], c["sameSite"]) == (True, True, "Lax")
    await steps.shot(page, "cookie-backend-logged-in")
    await page.goto(f"{base}/sessions")
    assert "cannot list them" in await page.inner_text("body")
    await steps.shot(page, "cookie-backend-no-session-list")
    await page.click("#logout")
    await page.wait_for_load_state()
    await page.goto(f"{base}/private")
    assert path_of(page, base) == "/login?next=/private"
    await page.goto(f"{base}/")
    # Two visits, then "/" after login and after logout: the counter outlived both.
    assert await visits(page) == 5
    await steps.shot(page, "cookie-backend-logged-out")
    await context.close()
    assert_no_secrets_in_log(demo, jar)


def assert_no_secrets_in_log(demo: DemoServer, cookies: list[dict[str, Any]]) -> None:
    """The demo's log (sanic-cookies logs at INFO there) never shows a session id."""
    log = demo.log
    assert "sanic_cookies INFO" in log, "the demo logged nothing from sanic_cookies"
    for c in cookies:
        assert c["value"] and c["value"] not in log, f"cookie {c['name']} value found in the log"
