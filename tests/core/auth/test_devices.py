"""Device info in "your sessions": User-Agent label, client IP (behind proxies), store_ip=False,
1.0 records without it, and last_seen moving with the sliding refresh (real apps, every backend)."""

from __future__ import annotations

import time
from typing import Any

import msgspec
import pytest
from auth_support import Browser, SignedCookieBackend, build_app
from sanic import Request, json
from sanic.response import HTTPResponse

from sanic_cookies import AuthSession, ConfigurationError
from sanic_cookies._device import MAX_IP_LENGTH, MAX_USER_AGENT_LENGTH, client_device
from sanic_cookies._ids import store_key
from sanic_cookies._record import AuthInfo, decode_record, encode_record
from sanic_cookies.clock import ManualClock

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1"
)

PEER = "mockserver"  # request.client_ip under sanic-testing's ASGI client


def _with_raw_route(app: Any, auth: AuthSession) -> None:
    """``GET /raw?user=``: the stored records of a user, as the store holds them (hex)."""

    @app.get("/raw")
    async def raw(request: Request) -> HTTPResponse:
        stored = await auth.backend.list_user_sessions(request.args.get("user", ""))
        return json({key: bytes(item.value).hex() for key, item in stored.items()})

    @app.post("/as-1.0")
    async def as_10(request: Request) -> HTTPResponse:
        # Rewrite this session's record as 1.0 wrote it: the login without device fields.
        key = store_key(request.cookies.get("auth_session", ""))
        item = await auth.backend.load(key)
        assert item is not None
        record = msgspec.json.decode(item.value)
        record[5] = record[5][:4]  # user, user_id, login_at, remember
        await auth.backend.save(
            key, msgspec.json.encode(record), item.expires_at - time.time(), user_id=record[5][1]
        )
        return json({"rewritten": key[:16]})


async def _devices(browser: Browser) -> Any:
    response = await browser.get("/devices")
    assert response.status in (200, 501), response.text
    return response.json if response.status == 200 else None


async def test_each_session_shows_its_browser_and_address(make_app: Any) -> None:
    app, auth = make_app()
    laptop, phone = Browser(app), Browser(app)
    await laptop.post("/login", params={"user": "alice"}, headers={"user-agent": FIREFOX})
    await phone.post("/login", params={"user": "alice"}, headers={"user-agent": IPHONE})
    assert await laptop.whoami() == {"id": "alice", "name": "Alice"}
    devices = await _devices(laptop)
    if devices is None:  # client-side backends cannot list sessions
        assert not auth._listable()
        return
    assert len(devices) == 2
    by_label = {d["device"]: d for d in devices}
    assert set(by_label) == {"Firefox on Linux", "Safari on iOS"}
    assert by_label["Firefox on Linux"]["current"] is True
    assert by_label["Safari on iOS"]["current"] is False
    assert by_label["Firefox on Linux"]["user_agent"] == FIREFOX
    assert by_label["Safari on iOS"]["user_agent"] == IPHONE
    # The socket peer as Sanic reports it (no proxy configured): sanic-testing's ASGI
    # client names itself "mockserver" (not an address: kept as text).
    assert {d["ip"] for d in devices} == {PEER}


async def test_the_address_behind_a_trusted_proxy(make_app: Any) -> None:
    app, _auth = make_app()
    app.config.PROXIES_COUNT = 1
    browser = Browser(app)
    # The client put a forged entry first; the one proxy appended the real peer.
    headers = {"x-forwarded-for": "198.51.100.66, 203.0.113.7", "user-agent": FIREFOX}
    await browser.post("/login", params={"user": "alice"}, headers=headers)
    six = Browser(app)
    headers = {"x-forwarded-for": "2001:DB8:0:0::7", "user-agent": FIREFOX}
    await six.post("/login", params={"user": "alice"}, headers=headers)
    devices = await _devices(browser)
    if devices is None:
        return
    assert sorted(d["ip"] for d in devices) == ["2001:db8::7", "203.0.113.7"]


async def test_real_ip_header_is_honoured(make_app: Any) -> None:
    app, _auth = make_app()
    app.config.REAL_IP_HEADER = "x-real-ip"
    browser = Browser(app)
    headers = {"x-real-ip": "192.0.2.44", "x-forwarded-for": "198.51.100.66"}
    await browser.post("/login", params={"user": "alice"}, headers=headers)
    devices = await _devices(browser)
    if devices is None:
        return
    assert [d["ip"] for d in devices] == ["192.0.2.44"]


async def test_the_forwarded_header_with_its_secret(make_app: Any) -> None:
    app, _ = make_app()
    app.config.FORWARDED_SECRET = "s3cret"
    trusted, forged = Browser(app), Browser(app)
    await trusted.post(
        "/login",
        params={"user": "alice"},
        headers={"forwarded": 'for="[2001:db8::9]";secret=s3cret'},
    )
    await forged.post(
        "/login", params={"user": "alice"}, headers={"forwarded": "for=192.0.2.99;secret=guess"}
    )
    devices = await _devices(trusted)
    if devices is None:
        return
    assert sorted(d["ip"] for d in devices) == ["2001:db8::9", PEER]


async def test_forwarded_headers_are_ignored_without_proxy_settings(make_app: Any) -> None:
    app, _auth = make_app()
    browser = Browser(app)
    await browser.post(
        "/login", params={"user": "alice"}, headers={"x-forwarded-for": "198.51.100.66"}
    )
    devices = await _devices(browser)
    if devices is None:
        return
    assert [d["ip"] for d in devices] == [PEER]


@pytest.mark.parametrize("how", ["argument", "config"])
async def test_store_ip_false_stores_no_address(make_app: Any, how: str) -> None:
    app, auth = make_app(store_ip=False) if how == "argument" else make_app()
    if how == "config":
        app.config.AUTH_SESSION_STORE_IP = False
    _with_raw_route(app, auth)
    app.config.PROXIES_COUNT = 1
    browser = Browser(app)
    headers = {"x-forwarded-for": "203.0.113.7", "user-agent": FIREFOX}
    await browser.post("/login", params={"user": "alice"}, headers=headers)
    assert await browser.whoami() == {"id": "alice", "name": "Alice"}
    devices = await _devices(browser)
    if devices is None:
        return
    assert auth.store_ip is False
    assert [(d["ip"], d["device"]) for d in devices] == [(None, "Firefox on Linux")]
    raw = (await browser.get("/raw", params={"user": "alice"})).json
    assert len(raw) == 1
    value = bytes.fromhex(next(iter(raw.values())))
    assert b"203.0.113" not in value and PEER.encode() not in value
    record = decode_record(value)
    assert record is not None and record.auth is not None
    assert record.auth.ip == "" and record.auth.ua == FIREFOX


async def test_nothing_is_recorded_in_a_client_side_cookie() -> None:
    # The session cannot be listed there, so the device would only grow the cookie.
    backend = SignedCookieBackend()
    app, _auth = build_app(backend)
    app.config.PROXIES_COUNT = 1
    browser = Browser(app)
    headers = {"user-agent": FIREFOX, "x-forwarded-for": "203.0.113.7"}
    await browser.post("/login", params={"user": "alice"}, headers=headers)
    assert await browser.whoami() == {"id": "alice", "name": "Alice"}
    stored = await backend.decode_cookie(browser.cookie or "")
    assert stored is not None
    record = decode_record(stored.value)
    assert record is not None and record.auth is not None
    assert (record.auth.ua, record.auth.ip) == ("", "")
    assert b"Firefox" not in stored.value and b"203.0.113.7" not in stored.value


def test_store_ip_must_be_a_bool() -> None:
    with pytest.raises(ConfigurationError, match="store_ip"):
        build_app("memory://", store_ip="no")


async def test_a_session_from_1_0_without_device_fields_still_works(make_app: Any) -> None:
    app, auth = make_app()
    _with_raw_route(app, auth)
    browser = Browser(app)
    await browser.post("/login", params={"user": "alice"}, headers={"user-agent": FIREFOX})
    if not auth._listable():
        return  # the record is in the cookie: nothing to rewrite in a store
    assert (await browser.post("/as-1.0")).status == 200
    raw = (await browser.get("/raw", params={"user": "alice"})).json
    assert FIREFOX.encode().hex() not in next(iter(raw.values()))
    assert await browser.whoami() == {"id": "alice", "name": "Alice"}
    devices = await _devices(browser)
    assert devices is not None and len(devices) == 1
    assert devices[0]["current"] is True
    assert (devices[0]["device"], devices[0]["user_agent"], devices[0]["ip"]) == (
        "Unknown browser",
        "",
        None,
    )


def test_records_read_both_ways_across_the_upgrade() -> None:
    # A 1.0 record, as 1.0 encoded it (the login has no device fields).
    old = b'[{"n":1},1700000000.0,1700043200.0,1800.0,false,[{"id":"a"},"a",1700000000.0,false]]'
    record = decode_record(old)
    assert record is not None and record.auth is not None
    assert (record.auth.ua, record.auth.ip) == ("", "")
    # A record of this version, read by 1.0's struct (rolling deploys, rollbacks).

    class AuthInfo10(msgspec.Struct, array_like=True, omit_defaults=True):
        user: Any
        user_id: str
        login_at: float
        remember: bool = False

    new = AuthInfo(user="a", user_id="a", login_at=1.0, ua=FIREFOX, ip="192.0.2.1")
    assert msgspec.json.decode(msgspec.json.encode(new), type=AuthInfo10) == AuthInfo10(
        user="a", user_id="a", login_at=1.0
    )
    # Written back, it reads the same.
    assert decode_record(encode_record(record)) == record


async def test_strange_headers_are_capped_and_cleaned(make_app: Any) -> None:
    app, _auth = make_app()
    app.config.PROXIES_COUNT = 1
    browser = Browser(app)
    long_ua = FIREFOX + " " + "é" * 1000
    # Bytes no text header should hold (not UTF-8, a C1 control): cleaned, never a 500.
    headers = {"user-agent": b"\x85\xfe" + long_ua.encode(), "x-forwarded-for": "_" + "h" * 200}
    await browser.post("/login", params={"user": "alice"}, headers=headers)
    assert await browser.whoami() == {"id": "alice", "name": "Alice"}
    devices = await _devices(browser)
    if devices is None:
        return
    (device,) = devices
    assert 250 <= len(device["user_agent"]) <= MAX_USER_AGENT_LENGTH
    assert device["user_agent"].isprintable() and FIREFOX in device["user_agent"]
    assert device["device"] == "Firefox on Linux"
    assert device["ip"] == ("_" + "h" * 200)[:MAX_IP_LENGTH]


async def test_no_user_agent_is_an_unknown_browser(make_app: Any) -> None:
    app, _auth = make_app()
    browser = Browser(app)
    await browser.post("/login", params={"user": "alice"}, headers={"user-agent": ""})
    devices = await _devices(browser)
    if devices is None:
        return
    assert [(d["device"], d["user_agent"]) for d in devices] == [("Unknown browser", "")]


async def test_last_seen_moves_with_the_sliding_refresh(manual_clock: ManualClock) -> None:
    app, _auth = build_app("memory://", expiry=1800, refresh_interval=60)
    browser = Browser(app)
    await browser.post("/login", params={"user": "alice"}, headers={"user-agent": FIREFOX})
    (first,) = await _devices(browser)
    assert abs(first["last_seen"] - first["login_at"]) < 1

    manual_clock.advance(30)  # within refresh_interval: no write, last_seen unchanged
    assert await browser.whoami() is not None
    (second,) = await _devices(browser)
    assert second["last_seen"] == pytest.approx(first["last_seen"], abs=1)

    manual_clock.advance(570)  # 600 s after login: the refresh write moves it
    assert await browser.whoami() is not None
    (third,) = await _devices(browser)
    assert third["last_seen"] == pytest.approx(first["last_seen"] + 600, abs=2)
    assert third["login_at"] == first["login_at"] and third["device"] == "Firefox on Linux"


@pytest.mark.parametrize(
    ("header", "kept"),
    [
        ("Firefox\x00/1", "Firefox/1"),
        ("a\udcffb", "ab"),  # a lone surrogate (undecodable byte under surrogateescape)
        ("tab\there", "tabhere"),
        ("x" * 300, "x" * MAX_USER_AGENT_LENGTH),
    ],
)
def test_user_agent_cleaning(header: str, kept: str) -> None:
    request = type("R", (), {"headers": {"user-agent": header}, "client_ip": ""})()
    assert client_device(request, store_ip=True) == (kept, "")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("client_ip", "kept"),
    [
        ("192.0.2.1", "192.0.2.1"),
        ("[2001:DB8::0:1]", "2001:db8::1"),
        ("_hidden", "_hidden"),
        ("/run/app.sock", "/run/app.sock"),
        ("_" + "x" * 100, ("_" + "x" * 100)[:MAX_IP_LENGTH]),
        ("bad\x00ip", "badip"),
    ],
)
def test_ip_normalising(client_ip: str, kept: str) -> None:
    request = type("R", (), {"headers": {}, "client_ip": client_ip})()
    assert client_device(request, store_ip=True) == ("", kept)  # type: ignore[arg-type]
    assert client_device(request, store_ip=False) == ("", "")  # type: ignore[arg-type]
