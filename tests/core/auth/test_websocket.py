"""Sessions in websocket handlers, end to end: a real server, a real websocket client.

Every test runs on each backend of `AUTH_BACKENDS` (memory, a third-party one, two
client-side ones, Redis, PostgreSQL through asyncpg and SQLAlchemy). On a client-side
backend the session is the cookie, which a websocket cannot set: reads work, changes
raise `WebsocketSessionError` (docs/websockets.md).
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import pytest
from auth_support import build_app
from environment import require_module
from serving import serving
from websockets.exceptions import ConnectionClosed, InvalidStatus
from ws_support import HttpBrowser, add_websocket_routes

from sanic_cookies import AuthSession, Backend, ClientSideBackend
from sanic_cookies.clock import ManualClock

ALICE = {"id": "alice", "name": "Alice"}


class Recorder:
    """A store observer listing the operations the session makes (`Session.observe_store`)."""

    def __init__(self) -> None:
        self.operations: list[str] = []

    def observe(self, operation: str, backend: str, call: Any) -> Any:
        self.operations.append(operation)
        return call


@dataclasses.dataclass
class Site:
    """A served app with the websocket routes (`ws_support`)."""

    address: str
    auth: AuthSession
    recorder: Recorder  # every store call the session made

    def browser(self) -> HttpBrowser:
        return HttpBrowser(self.address)

    async def alice(self) -> HttpBrowser:
        """A browser logged in as alice."""
        browser = self.browser()
        await browser.login("alice")
        return browser


@pytest.fixture
async def site(auth_backend: Backend | str) -> AsyncIterator[Site]:
    app, auth = build_app(auth_backend)
    add_websocket_routes(app, auth)
    recorder = Recorder()
    auth.observe_store(recorder)
    async with serving(app) as address:
        yield Site(address, auth, recorder)


def client_side(auth: AuthSession) -> bool:
    return isinstance(auth.backend, ClientSideBackend)


async def test_each_block_reads_the_store_and_sees_a_logout_from_another_request(
    site: Site,
) -> None:
    browser = await site.alice()
    async with browser.websocket() as ws:
        assert await ws.result("whoami") == ALICE
        assert await ws.result("whoami-outside") == ALICE
        # Another request of the same browser logs out while the websocket stays open.
        await HttpBrowser(site.address, browser.cookie).request("POST", "/logout")
        # Outside a block first: nothing else has re-read the store since the logout.
        assert await ws.result("whoami-outside") is None
        assert await ws.result("whoami") is None
        assert await ws.result("cart") == []


async def test_a_block_sees_what_another_request_wrote(
    site: Site,
) -> None:
    browser = await site.alice()
    async with browser.websocket() as ws:
        assert await ws.result("cart") == []
        assert await ws.result("peek-cart") is None
        await browser.request("POST", "/cart", item="apple")
        # A client-side session lives in the cookie: the websocket holds the one it opened with.
        seen = None if client_side(site.auth) else ["apple"]
        assert await ws.result("peek-cart") == seen  # outside a block first, then in one
        assert await ws.result("cart") == (seen or [])


async def test_a_write_in_a_block_is_saved_when_it_ends(
    site: Site,
) -> None:
    browser = await site.alice()
    await browser.request("POST", "/cart", item="apple")
    async with browser.websocket() as ws:
        before = len(site.recorder.operations)
        answer = await ws.ask("add", "pear")
        writes = {"save", "revoke"} & set(site.recorder.operations[before:])
        if client_side(site.auth):
            assert answer["error"] == "WebsocketSessionError"
            assert "keeps the session in the cookie" in answer["message"]
            assert "over HTTP" in answer["message"]
            assert not writes
        else:
            assert answer == {"result": ["apple", "pear"]}
            assert writes == {"save"}
        # Seen by the next block of the websocket and by a plain HTTP request.
        expected = ["apple"] if client_side(site.auth) else ["apple", "pear"]
        assert await ws.result("cart") == expected
        assert (await browser.request("GET", "/cart")).json() == expected
    assert await browser.whoami() == ALICE


async def test_a_connection_closed_inside_a_block_discards_it_and_frees_the_lock(
    site: Site,
) -> None:
    browser = await site.alice()
    async with browser.websocket() as ws:
        assert await ws.result("hold", "pear") == "holding"  # the handler holds the lock now
    # The lock is free again (a held one would answer 503 after lock_timeout) and the
    # block's change was discarded, as an exception in a block discards it.
    added = await browser.request("POST", "/cart", item="apple")
    assert added.status_code == 200, added.text
    assert added.json() == ["apple"]
    if not client_side(site.auth):
        async with browser.websocket() as ws:
            assert await ws.result("cart") == ["apple"]


async def test_a_write_outside_a_block_is_refused(
    site: Site,
) -> None:
    browser = await site.alice()
    async with browser.websocket() as ws:
        await ws.result("cart")  # loaded once: the dict holds data outside the block too
        answer = await ws.ask("set-outside")
        assert answer["error"] == "WebsocketSessionError"
        assert "async with request.ctx.auth_session" in answer["message"]
        assert await ws.result("cart") == []


async def test_a_plain_read_outside_a_block_is_refused_not_stale(site: Site) -> None:
    # Review a1, F2: a plain read after a block returned what the block read, for the
    # life of the connection: a logout elsewhere was never seen (permission checks passed).
    browser = await site.alice()
    async with browser.websocket() as ws:
        assert await ws.result("whoami") == ALICE  # a block read the session
        await HttpBrowser(site.address, browser.cookie).request("POST", "/logout")
        answer = await ws.ask("plain-user")
        assert answer["error"] == "WebsocketSessionError", answer
        assert "peek(key)" in answer["message"] and ".load()" in answer["message"]
        assert await ws.result("load-user") is None  # load() reads the store now


async def test_a_plain_read_after_the_guard_is_refused(site: Site) -> None:
    # The guard read the session at the upgrade; a plain read later would keep that.
    browser = await site.alice()
    async with browser.websocket("/ws-private") as ws:
        assert (await ws.ask("plain-user"))["error"] == "WebsocketSessionError"
        assert await ws.result("load-user") == ALICE


async def test_an_in_place_change_outside_a_block_is_dropped_and_logged_once(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    # Review a1, F1: the next block carried it over what another request had stored.
    browser = await site.alice()
    await browser.request("POST", "/cart", item="apple")
    async with browser.websocket() as ws:
        assert await ws.result("append-outside", "outside") == ["apple", "outside"]
        await browser.request("POST", "/cart", item="pear")  # another request, meanwhile
        # A client-side session is the cookie the websocket opened with.
        expected = ["apple"] if client_side(site.auth) else ["apple", "pear"]
        assert await ws.result("cart") == expected  # a block starts from the store
        assert await ws.result("append-outside", "again") == [*expected, "again"]
        assert await ws.result("cart") == expected
    assert (await browser.request("GET", "/cart")).json() == ["apple", "pear"]
    dropped = [r for r in caplog.records if "were dropped" in r.getMessage()]
    assert len(dropped) == 1 and dropped[0].levelname == "WARNING"


async def test_a_refused_login_caught_in_a_block_leaves_the_data(site: Site) -> None:
    # Review a1, F6: login_user cleared the data before the refusal; caught, the block
    # then saved the cleared data.
    browser = await site.alice()
    await browser.request("POST", "/cart", item="apple")
    async with browser.websocket() as ws:
        assert await ws.result("login-caught", "bob") == "WebsocketSessionError"
        assert await ws.result("cart") == ["apple"]
        assert await ws.result("whoami") == ALICE
    assert (await browser.request("GET", "/cart")).json() == ["apple"]


async def test_current_user_calls_the_loader_on_every_call(auth_backend: Backend | str) -> None:
    # Review a1, F3: the loader's result was kept for the connection's life, so an
    # account disabled meanwhile was never noticed.
    disabled: set[str] = set()
    calls: list[str] = []

    def loader(user: Any) -> Any:
        calls.append(user["id"])
        return None if user["id"] in disabled else user

    app, auth = build_app(auth_backend, user_loader=loader)
    add_websocket_routes(app, auth)
    async with serving(app) as address:
        browser = HttpBrowser(address)
        await browser.login("alice")
        async with browser.websocket() as ws:
            calls.clear()
            assert await ws.result("whoami-outside") == ALICE
            assert await ws.result("whoami") == ALICE
            assert calls == ["alice", "alice"]
            disabled.add("alice")
            assert await ws.result("whoami-outside") is None
            assert await ws.result("whoami") is None


async def test_clear_in_a_block_removes_the_data_and_keeps_the_login(site: Site) -> None:
    # docs/websockets.md's table (review a1, F7): clear() is not logout.
    browser = await site.alice()
    await browser.request("POST", "/cart", item="apple")
    async with browser.websocket() as ws:
        answer = await ws.ask("clear")
        if client_side(site.auth):
            assert answer["error"] == "WebsocketSessionError"
            assert await ws.result("cart") == ["apple"]
        else:
            assert answer == {"result": None}
            assert await ws.result("cart") == []
        assert await ws.result("whoami") == ALICE
    assert await browser.whoami() == ALICE


async def test_no_session_is_created_for_a_websocket_without_a_cookie(
    site: Site,
) -> None:
    stranger = site.browser()
    async with stranger.websocket() as ws:
        assert await ws.result("whoami") is None
        for command, argument in [("add", "apple"), ("login", "mallory"), ("flash", "hi")]:
            answer = await ws.ask(command, argument)
            assert answer["error"] == "WebsocketSessionError", (command, answer)
            assert "a new session" in answer["message"]
            assert "over HTTP" in answer["message"]
        assert await ws.result("cart") == []
    assert site.recorder.operations == []  # no store call at all: nothing saved, nothing locked
    assert stranger.cookie is None


async def test_login_in_a_websocket_is_refused_and_changes_nothing(
    site: Site,
) -> None:
    browser = await site.alice()
    await browser.request("POST", "/cart", item="apple")
    async with browser.websocket() as ws:
        answer = await ws.ask("login", "bob")
        assert answer["error"] == "WebsocketSessionError"
        assert "new session id (login_user or regenerate)" in answer["message"]
        assert await ws.result("whoami") == ALICE
        assert await ws.result("cart") == ["apple"]  # login's clear() was discarded too
    assert await browser.whoami() == ALICE


async def test_logout_in_a_websocket(site: Site) -> None:
    browser = await site.alice()
    async with browser.websocket() as ws:
        answer = await ws.ask("logout")
        if client_side(site.auth):
            # The cookie cannot be expired from here; the browser stays logged in.
            assert answer["error"] == "WebsocketSessionError"
            assert await ws.result("whoami") == ALICE
        else:
            assert answer == {"result": None}
            assert await ws.result("whoami") is None
            # After a logout the websocket's session is anonymous: nothing new is created.
            assert (await ws.ask("add", "apple"))["error"] == "WebsocketSessionError"
    # The browser's cookie is dead on a server-side store (its record was deleted).
    assert await browser.whoami() == (ALICE if client_side(site.auth) else None)


async def test_an_expired_session_is_seen_by_the_next_block(
    site: Site, manual_clock: ManualClock
) -> None:
    browser = site.browser()
    await browser.login("alice", duration="600")  # an absolute lifetime of ten minutes
    async with browser.websocket() as ws:
        assert await ws.result("whoami") == ALICE
        manual_clock.advance(599)
        assert await ws.result("whoami") == ALICE
        assert await ws.result("whoami-outside") == ALICE
        manual_clock.advance(2)
        assert await ws.result("whoami-outside") is None
        assert await ws.result("whoami") is None
        assert (await ws.ask("add", "apple"))["error"] == "WebsocketSessionError"


async def test_login_required_refuses_the_upgrade_with_401(
    site: Site,
) -> None:
    browser = site.browser()
    with pytest.raises(InvalidStatus) as refused:
        async with browser.websocket("/ws-private"):
            pass
    assert refused.value.response.status_code == 401

    await browser.login("alice")
    async with browser.websocket("/ws-private") as ws:
        assert await ws.result("whoami") == ALICE
        logged_in = browser.cookie
        await HttpBrowser(site.address, logged_in).request("POST", "/logout")
        assert await ws.result("whoami") is None  # the open connection sees the logout

    with pytest.raises(InvalidStatus) as replayed:
        async with HttpBrowser(site.address, logged_in).websocket("/ws-private"):
            pass
    assert replayed.value.response.status_code == 401


#: The headers of a websocket handshake request (RFC 6455, section 4.1).
UPGRADE = {
    "connection": "Upgrade",
    "upgrade": "websocket",
    "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
    "sec-websocket-version": "13",
}


async def upgrade_refused(browser: HttpBrowser, path: str) -> Any:
    """The HTTP response that refused the websocket upgrade to `path`."""
    with pytest.raises(InvalidStatus) as refused:
        async with browser.websocket(path):
            pass
    return refused.value.response


async def test_every_kind_of_guard_refuses_the_upgrade_before_the_handshake(
    site: Site, manual_clock: ManualClock
) -> None:
    browser = site.browser()
    assert (await upgrade_refused(browser, "/ws-bp/feed")).status_code == 401
    assert (await upgrade_refused(browser, "/ws-fresh")).status_code == 401
    # (The websockets client follows redirects: send the handshake request by hand.)
    redirect = await browser.request("GET", "/ws-redirect", headers=UPGRADE)
    assert redirect.status_code == 302
    assert redirect.headers["location"] == "/login-page?next=/ws-redirect"

    await browser.login("alice")
    for path in ["/ws-bp/feed", "/ws-fresh", "/ws-redirect"]:
        async with browser.websocket(path) as ws:
            assert await ws.result("whoami") == ALICE
    manual_clock.advance(61)  # the login is no longer fresh
    assert (await upgrade_refused(browser, "/ws-fresh")).status_code == 401
    async with browser.websocket("/ws-bp/feed") as ws:
        assert await ws.result("whoami") == ALICE


async def test_a_guard_the_route_cannot_see_closes_the_upgraded_connection(
    site: Site,
) -> None:
    browser = site.browser()
    async with browser.websocket("/ws-hidden-guard") as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await ws.ask("whoami")
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1008, "Login required")

    await browser.login("alice")
    async with browser.websocket("/ws-hidden-guard") as ws:
        assert await ws.result("whoami") == ALICE


#: The backends whose stored expiry runs on the library's clock: on Redis and PostgreSQL
#: it runs on the server's, so `manual_clock` cannot make a refresh due there.
LIBRARY_CLOCK = ["memory", "custom", "client-side", "cookie"]


@pytest.mark.parametrize("auth_backend", LIBRARY_CLOCK, indirect=True)
async def test_a_read_does_not_extend_the_idle_timeout_an_http_request_does(
    site: Site, manual_clock: ManualClock
) -> None:
    # Only an HTTP response can renew the cookie too; the websocket leaves the refresh to it.
    browser = await site.alice()
    async with browser.websocket() as ws:
        manual_clock.advance(site.auth.config.refresh_after + 1)  # the sliding refresh is due
        before = len(site.recorder.operations)
        assert await ws.result("whoami") == ALICE
        assert await ws.result("whoami-outside") == ALICE
        assert not {"save", "touch"} & set(site.recorder.operations[before:])
        assert await browser.whoami() == ALICE
        assert {"save", "touch"} & set(site.recorder.operations[before:])  # the HTTP request did


@pytest.mark.parametrize("auth_backend", LIBRARY_CLOCK, indirect=True)
async def test_neither_reads_nor_writes_keep_an_idle_session_alive(
    site: Site, manual_clock: ManualClock
) -> None:
    idle = site.auth.config.expiry
    browser = site.browser()
    await browser.login("alice")
    async with browser.websocket() as ws:
        manual_clock.advance(idle - 10)
        assert await ws.result("whoami") == ALICE  # read: the idle timeout is not extended
        manual_clock.advance(20)
        assert await ws.result("whoami") is None
        assert await browser.whoami() is None

    await browser.login("bob")
    async with browser.websocket() as ws:
        manual_clock.advance(idle - 10)
        answer = await ws.ask("add", "apple")
        if client_side(site.auth):
            assert answer["error"] == "WebsocketSessionError"
            manual_clock.advance(20)
            assert await ws.result("whoami") is None
        else:
            assert answer == {"result": ["apple"]}  # written, with the expiry it had:
            manual_clock.advance(20)  # no cookie can follow, so the store must not outlive it
            assert await ws.result("whoami") is None
            assert await browser.whoami() is None


async def test_without_a_revocation_store_a_cookie_session_never_sees_a_logout() -> None:
    # docs/websockets.md, "On each backend": the encrypted cookie without `revocation=`.
    require_module("sanic_cookies.backends.cookie", "sanic-cookies-cookie")
    import base64
    import os

    from sanic_cookies.backends.cookie import CookieBackend

    key = base64.urlsafe_b64encode(os.urandom(32)).decode()
    backend = CookieBackend(keys=[key], allow_logged_out_cookie_replay=True)
    app, auth = build_app(backend)
    add_websocket_routes(app, auth)
    async with serving(app) as address:
        browser = HttpBrowser(address)
        await browser.login("alice")
        opened_with = browser.cookie
        async with browser.websocket() as ws:
            assert await ws.result("whoami") == ALICE
            await browser.request("POST", "/logout")  # another request of the same browser
            assert browser.cookie is None  # logged out over HTTP: its cookie was deleted
            assert await browser.whoami() is None
            # The websocket reads the cookie it opened with, which nothing can revoke.
            assert await ws.result("whoami-outside") == ALICE
            assert await ws.result("whoami") == ALICE
        # And a new websocket with a copy of that cookie is still alice's.
        async with HttpBrowser(address, opened_with).websocket() as ws:
            assert await ws.result("whoami") == ALICE
