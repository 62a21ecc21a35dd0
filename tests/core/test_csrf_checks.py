"""The CSRF origin check case by case, and the per-app / per-route switches (memory backend).

The origin rules are driven through a real Sanic app, so ``request.host`` and
``request.scheme`` are Sanic's own (HTTPS comes from a trusted proxy's
``X-Forwarded-Proto``). The end-to-end tests on every backend are in
tests/core/auth/test_csrf.py.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from sanic import Blueprint, Request, Sanic, json, text
from sanic.response import HTTPResponse
from sanic.views import HTTPMethodView
from views_modules import views_module

from sanic_cookies import (
    AuthSession,
    ConfigurationError,
    CSRFError,
    CSRFProtect,
    SanicCookiesError,
    Session,
    _compat,
    csrf_exempt,
    csrf_protect,
    csrf_token,
)
from sanic_cookies._csrf_token import mask, matches, new_secret

Sanic.test_mode = True

HOST = "shop.test"
TRUSTED = ["https://partner.example", "https://*.example.org"]


def origin_app() -> tuple[Sanic[Any, Any], CSRFProtect]:
    app: Sanic[Any, Any] = Sanic(f"origin_{uuid.uuid4().hex}")
    app.config.PROXIES_COUNT = 1  # trust X-Forwarded-Proto from one proxy
    Session(app)
    protect = CSRFProtect(app, trusted_origins=TRUSTED)

    @app.get("/verdict")
    async def verdict(request: Request) -> HTTPResponse:
        return json({"refusal": protect.origins.refusal(request)})

    return app, protect


HTTPS = {"x-forwarded-proto": "https", "x-forwarded-for": "203.0.113.9"}
CASES: list[tuple[str, dict[str, str], bool]] = [
    ("no-headers-http", {}, True),  # not a browser: the token decides
    ("no-headers-https", HTTPS, False),  # Django: HTTPS needs a Referer then
    ("referer-same-https", {**HTTPS, "referer": f"https://{HOST}/form?secret=1"}, True),
    ("referer-http-on-https", {**HTTPS, "referer": f"http://{HOST}/form"}, False),
    ("referer-other-https", {**HTTPS, "referer": "https://evil.example/"}, False),
    ("referer-trusted-https", {**HTTPS, "referer": "https://partner.example/p"}, True),
    ("referer-garbage-https", {**HTTPS, "referer": "::::"}, False),
    ("referer-ignored-on-http", {"referer": "https://evil.example/"}, True),
    ("origin-same", {"origin": f"http://{HOST}"}, True),
    ("origin-same-case", {"origin": f"HTTP://{HOST.upper()}"}, True),
    ("origin-https-behind-proxy", {"origin": f"https://{HOST}"}, True),
    ("origin-http-to-https", {**HTTPS, "origin": f"http://{HOST}"}, False),
    ("origin-other-port", {"origin": f"http://{HOST}:8443"}, False),
    ("origin-other", {"origin": "http://evil.example"}, False),
    ("origin-null", {"origin": "null"}, False),
    ("origin-garbage", {"origin": "shop.test"}, False),
    ("origin-trusted", {"origin": "https://partner.example"}, True),
    ("origin-trusted-wildcard", {"origin": "https://a.b.example.org"}, True),
    ("origin-wildcard-not-apex", {"origin": "https://example.org"}, False),
    ("origin-wildcard-lookalike", {"origin": "https://evilexample.org"}, False),
    ("origin-trusted-wrong-scheme", {"origin": "http://partner.example"}, False),
    # Review 17, I1: a trusted wildcard matches whole host labels of a strict origin only.
    ("wildcard-path-trick", {"origin": "https://x.evil.com/.example.org"}, False),
    ("wildcard-query-trick", {"origin": "https://x.evil.com?.example.org"}, False),
    ("wildcard-fragment-trick", {"origin": "https://x.evil.com#.example.org"}, False),
    ("wildcard-literal-star", {"origin": "https://*.example.org"}, False),
    ("wildcard-empty-label", {"origin": "https://.example.org"}, False),
    ("wildcard-userinfo", {"origin": "https://evil.com@a.example.org"}, False),
    ("wildcard-other-port", {"origin": "https://a.example.org:8443"}, False),
    ("referer-userinfo-trick", {**HTTPS, "referer": "https://evil.com\\@x.example.org/"}, False),
    ("referer-userinfo-exact", {**HTTPS, "referer": "https://evil.com@partner.example/"}, False),
    ("referer-trusted-wildcard", {**HTTPS, "referer": "https://a.example.org/p"}, True),
    ("sfs-same-origin", {"sec-fetch-site": "same-origin"}, True),
    ("sfs-none", {"sec-fetch-site": "none"}, True),
    ("sfs-same-site", {"sec-fetch-site": "same-site", "origin": f"http://a.{HOST}"}, False),
    ("sfs-cross-site", {"sec-fetch-site": "cross-site"}, False),
    (
        "sfs-cross-site-own-origin",
        {"sec-fetch-site": "cross-site", "origin": f"http://{HOST}"},
        False,
    ),
    (
        "sfs-cross-site-trusted",
        {"sec-fetch-site": "cross-site", "origin": "https://partner.example"},
        True,
    ),
    ("sfs-cross-site-null", {"sec-fetch-site": "cross-site", "origin": "null"}, False),
    ("sfs-same-origin-over-https", {**HTTPS, "sec-fetch-site": "same-origin"}, True),
]


@pytest.mark.parametrize(("headers", "passes"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
async def test_origin_rules(headers: dict[str, str], passes: bool) -> None:
    app, _ = origin_app()
    _, response = await app.asgi_client.get("/verdict", headers={"host": HOST, **headers})
    refusal = response.json["refusal"]
    assert (refusal is None) is passes, refusal
    if refusal is not None:
        assert "secret=1" not in refusal  # a Referer's path and query are never quoted


@pytest.mark.parametrize(
    "bad",
    [
        "partner.example",
        "https://",
        "ftp://x.example",
        "https://a.example/path",
        "https://a.example?q",
        "https://user@a.example",
        "https://*.",
        "https://-a.example",
        3,
    ],
)
def test_a_malformed_trusted_origin_is_a_configuration_error(bad: Any) -> None:
    with pytest.raises(ConfigurationError, match="trusted origin"):
        CSRFProtect(trusted_origins=[bad])
    with pytest.raises(ConfigurationError, match="list of origins"):
        CSRFProtect(trusted_origins="https://a.example")


@pytest.mark.parametrize(
    ("idn", "ascii_form"),
    [
        ("https://bücher.example", "https://xn--bcher-kva.example"),
        ("https://*.bücher.example:8443", "https://*.xn--bcher-kva.example:8443"),
    ],
)
def test_an_internationalized_trusted_origin_suggests_its_ascii_form(
    idn: str, ascii_form: str
) -> None:
    with pytest.raises(ConfigurationError, match="trusted origin") as caught:
        CSRFProtect(trusted_origins=[idn])
    assert f"'{ascii_form}'" in str(caught.value)
    CSRFProtect(trusted_origins=[ascii_form])  # the suggestion is accepted


def test_trusted_origins_from_app_config() -> None:
    app: Sanic[Any, Any] = Sanic(f"cfg_{uuid.uuid4().hex}")
    app.config.CSRF_TRUSTED_ORIGINS = ["https://partner.example"]
    protect = CSRFProtect(app)
    assert protect.origins.is_trusted("https://partner.example")
    assert not protect.origins.is_trusted("https://other.example")


def test_csrf_error_is_a_403_sanic_cookies_error() -> None:
    error = CSRFError()
    assert isinstance(error, SanicCookiesError)
    assert error.status_code == 403


def test_masked_tokens() -> None:
    secret = new_secret()
    a, b = mask(secret), mask(secret)
    assert a != b and matches(a, secret) and matches(b, secret)
    assert not matches(a, new_secret())
    assert not matches(secret, secret)  # the bare secret is not a token
    assert not matches(None, secret) and not matches(a, None)


# -- the switches -----------------------------------------------------------------


def switch_app(**csrf: Any) -> Sanic[Any, Any]:
    app: Sanic[Any, Any] = Sanic(f"switch_{uuid.uuid4().hex}")
    Session(app, secure=False)
    CSRFProtect(app, **csrf)

    @app.get("/form")
    async def form(request: Request) -> HTTPResponse:
        return text(await csrf_token(request))

    @app.post("/plain")
    async def plain(request: Request) -> HTTPResponse:
        return text("plain")

    @app.post("/protected")
    @csrf_protect
    async def protected(request: Request) -> HTTPResponse:
        return text("protected")

    @app.post("/exempt")
    @csrf_exempt
    async def exempt(request: Request) -> HTTPResponse:
        return text("exempt")

    class View(HTTPMethodView):
        @csrf_exempt
        async def post(self, request: Request) -> HTTPResponse:
            return text("view post")

        async def put(self, request: Request) -> HTTPResponse:
            return text("view put")

        @csrf_protect
        async def patch(self, request: Request) -> HTTPResponse:
            return text("view patch")

    app.add_route(View.as_view(), "/view")
    return app


async def status(app: Sanic[Any, Any], method: str, path: str) -> int:
    _, response = await app.asgi_client.request(method, path)
    return int(response.status)


async def test_protect_all_checks_every_route_but_the_exempt() -> None:
    app = switch_app()
    assert await status(app, "POST", "/plain") == 403
    assert await status(app, "POST", "/protected") == 403
    assert await status(app, "POST", "/exempt") == 200
    assert await status(app, "POST", "/view") == 200
    assert await status(app, "PUT", "/view") == 403
    assert await status(app, "PATCH", "/view") == 403


async def test_protect_all_false_checks_only_the_protected() -> None:
    app = switch_app(protect_all=False)
    assert await status(app, "POST", "/plain") == 200
    assert await status(app, "POST", "/protected") == 403
    assert await status(app, "POST", "/exempt") == 200
    assert await status(app, "PUT", "/view") == 200
    assert await status(app, "PATCH", "/view") == 403
    # With the token and cookie it passes (checked once: by the middleware or the route).
    _, form = await app.asgi_client.get("/form")
    cookie = form.headers["set-cookie"].split(";")[0]
    _, response = await app.asgi_client.post(
        "/protected", headers={"cookie": cookie, "x-csrf-token": form.text}
    )
    assert (response.status, response.text) == (200, "protected")


async def test_csrf_protect_without_csrfprotect_fails_closed() -> None:
    app: Sanic[Any, Any] = Sanic(f"bare_{uuid.uuid4().hex}")
    Session(app)

    @app.post("/protected")
    @csrf_protect
    async def protected(request: Request) -> HTTPResponse:
        return text("protected")

    _, response = await app.asgi_client.post("/protected")
    assert response.status == 500  # never the handler's 200


async def test_the_token_lives_in_the_auth_session_when_there_is_one() -> None:
    app: Sanic[Any, Any] = Sanic(f"two_{uuid.uuid4().hex}")
    Session(app)
    AuthSession(app)
    protect = CSRFProtect(app)
    assert protect.session_name == "auth_session"
    app2: Sanic[Any, Any] = Sanic(f"two2_{uuid.uuid4().hex}")
    Session(app2)
    AuthSession(app2)
    elsewhere = CSRFProtect(app2, session_name="session")
    with pytest.raises(ConfigurationError, match="so that login replaces it"):
        _ = elsewhere.session_name


def test_no_session_is_a_configuration_error() -> None:
    app: Sanic[Any, Any] = Sanic(f"none_{uuid.uuid4().hex}")
    protect = CSRFProtect(app)
    with pytest.raises(ConfigurationError, match="attach Session"):
        _ = protect.session_name
    with pytest.raises(ConfigurationError, match="already has a CSRFProtect"):
        CSRFProtect(app)


async def test_multipart_forms_carry_the_token_and_bad_bodies_are_refused_not_500() -> None:
    app = switch_app()
    _, form = await app.asgi_client.get("/form")
    cookie = form.headers["set-cookie"].split(";")[0]
    _, response = await app.asgi_client.post(
        "/plain",
        headers={"cookie": cookie},
        data={"csrf_token": form.text},
        files={"upload": ("a.txt", b"hello", "text/plain")},
    )
    assert (response.status, response.text) == (200, "plain")
    for content_type, body in [
        ("multipart/form-data; boundary=x", b"--x\r\ngarbage"),
        ("application/x-www-form-urlencoded", b"\xff\xfe=\x00&&&="),
        ("application/json", b'{"csrf_token": "%s"}' % form.text.encode()),  # header only
    ]:
        _, response = await app.asgi_client.post(
            "/plain", headers={"cookie": cookie, "content-type": content_type}, content=body
        )
        assert response.status == 403, content_type


def route_app(*, protector: bool, above: bool) -> Sanic[Any, Any]:
    """One POST route with @csrf_protect above or below @app.post (review 17, F2)."""
    app: Sanic[Any, Any] = Sanic(f"order_{uuid.uuid4().hex}")
    Session(app, secure=False)
    if protector:
        CSRFProtect(app, protect_all=False)

    async def handler(request: Request) -> HTTPResponse:
        return text("handler ran")

    if above:
        csrf_protect(app.post("/p")(handler))
    else:
        app.post("/p")(csrf_protect(handler))
    return app


@pytest.mark.parametrize("above", [False, True], ids=["below-route", "above-route"])
async def test_csrf_protect_protects_in_either_order(above: bool) -> None:
    app = route_app(protector=True, above=above)
    assert await status(app, "POST", "/p") == 403


async def test_csrf_protect_above_the_route_without_csrfprotect_refuses_to_start() -> None:
    app = route_app(protector=False, above=True)
    with pytest.raises(ConfigurationError, match=r"@csrf_protect on .*handler \(route .*/p\)"):
        await app.asgi_client.post("/p")


async def test_csrf_protect_below_the_route_without_csrfprotect_is_a_500() -> None:
    app = route_app(protector=False, above=False)
    assert await status(app, "POST", "/p") == 500


async def test_a_streaming_route_takes_the_header_not_the_form_field() -> None:
    # docs/csrf.md (review 17, I6): the body of a stream=True route is not parsed when
    # the check runs, so the form field is not seen there; the header works.
    app: Sanic[Any, Any] = Sanic(f"stream_{uuid.uuid4().hex}")
    Session(app, secure=False)
    CSRFProtect(app)

    @app.get("/form")
    async def form(request: Request) -> HTTPResponse:
        return text(await csrf_token(request))

    @app.post("/upload", stream=True)
    async def upload(request: Request) -> HTTPResponse:
        while await request.stream.read() is not None:  # type: ignore[union-attr]
            pass
        return text("uploaded")

    _, page = await app.asgi_client.get("/form")
    cookie = page.headers["set-cookie"].split(";")[0]
    _, by_field = await app.asgi_client.post(
        "/upload", data={"csrf_token": page.text}, headers={"cookie": cookie}
    )
    assert by_field.status == 403
    _, by_header = await app.asgi_client.post(
        "/upload", data={"a": "1"}, headers={"cookie": cookie, "x-csrf-token": page.text}
    )
    assert (by_header.status, by_header.text) == (200, "uploaded")


# -- @csrf_protect above a blueprint's route (issue 15) ------------------------------------

VIEWS_MODULE = """
from sanic import Blueprint, text

from sanic_cookies import csrf_protect

bp = Blueprint("{name}")


@csrf_protect
@bp.post("/p")
async def handler(request):
    return text("handler ran")
"""


def blueprint_app(bp: Blueprint, *, protector: bool) -> Sanic[Any, Any]:
    app: Sanic[Any, Any] = Sanic(f"bp_app_{uuid.uuid4().hex}")
    Session(app, secure=False)
    if protector:
        CSRFProtect(app, protect_all=False)
    app.blueprint(bp)
    return app


@pytest.mark.parametrize("private", [True, False], ids=["sanic-registry", "public-api-only"])
async def test_a_blueprint_route_above_without_csrfprotect_refuses_to_start_app_made_later(
    tmp_path: Path, private: bool
) -> None:
    # The module (and its blueprint) come first, the app later, as in an app factory.
    _compat.use_private_internals(private)
    try:
        views = views_module(tmp_path, VIEWS_MODULE)
        other_views = views_module(tmp_path, VIEWS_MODULE)
    finally:
        _compat.use_private_internals(True)
    app = blueprint_app(views.bp, protector=False)
    with pytest.raises(ConfigurationError, match=r"@csrf_protect on handler \(route .*/p\) needs"):
        await app.asgi_client.post("/p")
    protected = blueprint_app(other_views.bp, protector=True)
    assert await status(protected, "POST", "/p") == 403


@pytest.mark.parametrize("registered_first", [True, False], ids=["bp-registered-first", "bp-later"])
async def test_a_blueprint_route_above_without_csrfprotect_refuses_to_start_app_made_first(
    registered_first: bool,
) -> None:
    # The blueprint is made in a function (not a module global): the app exists first.
    app: Sanic[Any, Any] = Sanic(f"bp_first_{uuid.uuid4().hex}")
    Session(app, secure=False)
    bp = Blueprint(f"local_{uuid.uuid4().hex}")
    if registered_first:
        app.blueprint(bp)

    async def handler(request: Request) -> HTTPResponse:
        return text("handler ran")

    csrf_protect(bp.post("/p")(handler))
    if not registered_first:
        app.blueprint(bp)
    with pytest.raises(ConfigurationError, match=r"@csrf_protect on .*handler \(route .*/p\)"):
        await app.asgi_client.post("/p")


async def test_the_startup_check_leaves_apps_alone_that_need_no_csrfprotect() -> None:
    # Every app of the process gets the check; one with no @csrf_protect route starts.
    app: Sanic[Any, Any] = Sanic(f"unmarked_{uuid.uuid4().hex}")
    Session(app, secure=False)

    @app.post("/plain")
    async def plain(request: Request) -> HTTPResponse:
        return text("plain")

    route_app(protector=False, above=True)  # another app's marked route
    assert await status(app, "POST", "/plain") == 200


@pytest.mark.parametrize(
    ("sessions", "auths", "chosen"),
    [
        (["session", "cart"], [], "session"),  # the one called "session"
        (["cart"], [], "cart"),  # the only one
        (["cart", "basket"], [], None),  # undecided: name one
        (["session"], ["auth_session"], "auth_session"),  # the AuthSession first
        (["cart"], ["a", "b"], None),  # two AuthSessions: name one
    ],
)
def test_the_session_that_holds_the_token_by_default(
    sessions: list[str], auths: list[str], chosen: str | None
) -> None:
    app: Sanic[Any, Any] = Sanic(f"which_{uuid.uuid4().hex}")
    for name in sessions:
        Session(app, session_name=name)
    for name in auths:
        AuthSession(app, session_name=name)
    protect = CSRFProtect(app)
    if chosen is None:
        with pytest.raises(ConfigurationError, match="pass session_name="):
            _ = protect.session_name
    else:
        assert protect.session_name == chosen
