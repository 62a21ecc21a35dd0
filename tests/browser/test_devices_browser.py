"""The demo's sessions page in headless Chromium: each login labelled by its browser.

Two browser contexts (two "devices", each with its own User-Agent) log in as the
same user; the sessions page lists two labelled rows, one marked as this browser.
A context whose User-Agent is markup sees it shown as text. Screenshots go to
artifacts/browser/<test>/.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from demo_support import BACKENDS, DemoServer

pytestmark = pytest.mark.browser

FIREFOX_LINUX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
SAFARI_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1"
)


async def log_in(page: Any, base: str, user: str) -> None:
    await page.goto(f"{base}/login")
    await page.fill("#username", user)
    await page.fill("#password", "demo")
    await page.click("#submit")
    await page.wait_for_load_state()


async def rows(page: Any) -> list[dict[str, Any]]:
    found = []
    for row in await page.locator("#sessions tr[data-handle]").all():
        found.append(
            {
                "device": await row.locator(".device").inner_text(),
                "user_agent": await row.locator(".device").get_attribute("title"),
                "ip": await row.locator(".ip").inner_text(),
                "current": await row.locator(".current").count() == 1,
            }
        )
    return found


@pytest.mark.parametrize("demo_env", BACKENDS, indirect=True)
async def test_two_devices_are_listed_with_their_labels(
    browser: Any, demo: DemoServer, artifacts: Path
) -> None:
    base = demo.url
    laptop = await browser.new_context(user_agent=FIREFOX_LINUX)
    phone = await browser.new_context(
        user_agent=SAFARI_IPHONE, viewport={"width": 390, "height": 844}
    )
    laptop_page, phone_page = await laptop.new_page(), await phone.new_page()
    await log_in(laptop_page, base, "dora")
    await log_in(phone_page, base, "dora")

    await laptop_page.goto(f"{base}/sessions")
    await laptop_page.screenshot(path=str(artifacts / "01-laptop-sessions.png"), full_page=True)
    seen = await rows(laptop_page)
    assert sorted((r["device"], r["current"]) for r in seen) == [
        ("Firefox on Linux", True),
        ("Safari on iOS", False),
    ]
    assert {r["user_agent"] for r in seen} == {FIREFOX_LINUX, SAFARI_IPHONE}
    # The demo listens on loopback with no proxy in front: Sanic sees the socket's peer.
    assert {r["ip"] for r in seen} == {"127.0.0.1"}

    # The phone sees the same two sessions, its own marked.
    await phone_page.goto(f"{base}/sessions")
    await phone_page.screenshot(path=str(artifacts / "02-phone-sessions.png"), full_page=True)
    assert sorted((r["device"], r["current"]) for r in await rows(phone_page)) == [
        ("Firefox on Linux", False),
        ("Safari on iOS", True),
    ]
    await laptop.close()
    await phone.close()


async def test_a_user_agent_made_of_markup_is_shown_as_text(
    browser: Any, demo: DemoServer, artifacts: Path
) -> None:
    base = demo.url
    hostile = '<img src=x onerror="window.pwned=1"><script>window.pwned=1</script>\'"'
    attacker = await browser.new_context(user_agent=hostile)
    attacker_page = await attacker.new_page()
    await log_in(attacker_page, base, "erin")
    victim = await browser.new_context(user_agent=FIREFOX_LINUX)
    page = await victim.new_page()
    await log_in(page, base, "erin")

    await page.goto(f"{base}/sessions")
    await page.screenshot(path=str(artifacts / "01-sessions.png"), full_page=True)
    assert await page.evaluate("window.pwned") is None
    seen = await rows(page)
    assert sorted(r["device"] for r in seen) == ["Firefox on Linux", "Unknown browser"]
    assert hostile in {r["user_agent"] for r in seen}  # the whole string, as an attribute value
    assert await page.locator("#sessions img, #sessions script").count() == 0
    await attacker.close()
    await victim.close()
