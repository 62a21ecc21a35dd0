"""logout_everywhere, list_sessions and logout_session across several clients."""

from __future__ import annotations

import re
import time
from typing import Any

from auth_support import COOKIE, Browser

from sanic_cookies._ids import store_key


def _ends_cookies(auth: Any) -> bool:
    """cookie:// with a revocation store: ends a user's cookies, but cannot count them."""
    return getattr(auth.backend, "revocation", None) is not None


async def _logged_in(app: Any, user: str, n: int) -> list[Browser]:
    browsers = [Browser(app) for _ in range(n)]
    for browser in browsers:
        await browser.login(user)
    return browsers


async def test_logout_everywhere_ends_every_session_of_the_user_only(
    make_app: Any,
) -> None:
    app, auth = make_app()
    alice = await _logged_in(app, "alice", 3)
    bob = await _logged_in(app, "bob", 2)

    response = await alice[0].post("/logout-everywhere")
    if not auth.backend.supports_user_index and not _ends_cookies(auth):
        assert response.status == 501
        assert "per-user session index" in response.json["unsupported"]
        return
    assert response.json == {"ended": 0 if _ends_cookies(auth) else 3}
    for browser in alice:
        assert await browser.whoami() is None
        assert (await browser.get("/private")).status == 401
    for browser in bob:
        assert await browser.whoami() == {"id": "bob", "name": "Bob"}


async def test_logout_everywhere_can_keep_the_current_session(make_app: Any) -> None:
    app, auth = make_app()
    alice = await _logged_in(app, "alice", 3)
    response = await alice[1].post("/logout-everywhere", params={"keep": "1"})
    if not auth.backend.supports_user_index and not _ends_cookies(auth):
        assert response.status == 501
        return
    assert response.json == {"ended": 0 if _ends_cookies(auth) else 2}
    assert await alice[1].whoami() == {"id": "alice", "name": "Alice"}
    assert await alice[0].whoami() is None
    assert await alice[2].whoami() is None
    # Logging in again afterwards works normally.
    await alice[0].login("alice")
    assert await alice[0].whoami() == {"id": "alice", "name": "Alice"}


async def test_logout_everywhere_from_an_anonymous_admin_request(make_app: Any) -> None:
    app, auth = make_app()
    alice = await _logged_in(app, "alice", 2)
    response = await Browser(app).post("/logout-everywhere", params={"user": "alice"})
    if not auth.backend.supports_user_index and not _ends_cookies(auth):
        assert response.status == 501
        return
    assert response.json == {"ended": 0 if _ends_cookies(auth) else 2}
    assert [await b.whoami() for b in alice] == [None, None]


async def test_list_sessions_describes_each_device(make_app: Any) -> None:
    app, auth = make_app()
    before = time.time()
    alice = await _logged_in(app, "alice", 3)
    await alice[2].login("alice", remember="1")
    await _logged_in(app, "bob", 1)
    after = time.time()

    response = await alice[0].get("/devices")
    if not auth.backend.supports_user_index:
        assert response.status == 501
        return
    devices = response.json
    assert len(devices) == 3
    assert [d["current"] for d in devices].count(True) == 1
    assert sorted(d["remember"] for d in devices) == [False, False, True]
    secrets = {b.cookie for b in alice} | {store_key(b.cookie or "") for b in alice}
    for device in devices:
        assert re.fullmatch(r"[0-9a-f]{16}", device["handle"])
        assert not any(device["handle"] in s for s in secrets if not s.startswith(device["handle"]))
        assert device["handle"] not in {b.cookie for b in alice}
        assert before - 1 <= device["created"] <= device["login_at"] <= after + 1
        assert device["login_at"] <= device["last_seen"] <= after + 1
        assert device["expires"] > after
    current = next(d for d in devices if d["current"])
    assert store_key(alice[0].cookie or "").startswith(current["handle"])


async def test_logout_session_ends_one_device(make_app: Any) -> None:
    app, auth = make_app()
    alice = await _logged_in(app, "alice", 3)
    bob = (await _logged_in(app, "bob", 1))[0]
    response = await alice[0].get("/devices")
    if not auth.backend.supports_user_index:
        assert response.status == 501
        assert (await alice[0].post("/devices/end", params={"handle": "0" * 16})).status == 501
        return
    target = store_key(alice[1].cookie or "")[:16]
    assert target in {d["handle"] for d in response.json}

    # Bob cannot end Alice's session with her handle.
    assert (await bob.post("/devices/end", params={"handle": target})).json == {"ended": False}
    assert await alice[1].whoami() == {"id": "alice", "name": "Alice"}

    for junk in ["", "zz", target.upper(), target[:15], target + "0", store_key("x")]:
        assert (await alice[0].post("/devices/end", params={"handle": junk})).json == {
            "ended": False
        }

    assert (await alice[0].post("/devices/end", params={"handle": target})).json == {"ended": True}
    assert await alice[1].whoami() is None
    assert await alice[0].whoami() == {"id": "alice", "name": "Alice"}
    assert await alice[2].whoami() == {"id": "alice", "name": "Alice"}
    assert len((await alice[0].get("/devices")).json) == 2


async def test_a_logged_out_session_leaves_the_listing(make_app: Any) -> None:
    app, auth = make_app()
    alice = await _logged_in(app, "alice", 2)
    await alice[1].post("/logout")
    assert alice[1].cookie is None
    response = await alice[0].get("/devices")
    if auth.backend.supports_user_index:
        assert len(response.json) == 1
    # An old cookie of the logged-out device does not come back through the listing.
    assert COOKIE not in alice[1].jar
