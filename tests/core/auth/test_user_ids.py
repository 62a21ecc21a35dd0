"""A user id no store can hold is refused by login_user with a ValueError, on every backend.

1.0.0 passed such ids to the store: PostgreSQL refused a NUL character (a 503 and an
ERROR log line for what is the app's mistake), and the other stores indexed a 10,000
character id without a word.
"""

from __future__ import annotations

import json as stdlib_json
import logging
from typing import Any

import pytest
from auth_support import Browser, build_app
from sanic import Request, json
from sanic.response import HTTPResponse

from sanic_cookies import AuthSession

BAD_IDS = {
    "nul": ("ada\x00admin", "NUL character"),
    "too-long": ("a" * 10_000, "10000 characters long"),
    "lone-surrogate": ("ada\ud800", "not valid Unicode"),
    "empty": ("", "non-empty str"),
}


def _add_checked_login(app: Any, auth: AuthSession) -> None:
    @app.post("/login-json")
    async def login_json(request: Request) -> HTTPResponse:
        try:
            await auth.login_user(request, request.json["user"])
        except ValueError as exc:
            return json({"refused": str(exc)}, status=400)
        return json({"ok": True})


@pytest.mark.parametrize("case", list(BAD_IDS))
async def test_login_refuses_an_id_the_store_cannot_hold(
    case: str, auth_backend: Any, caplog: pytest.LogCaptureFixture
) -> None:
    bad_id, message = BAD_IDS[case]
    app, auth = build_app(auth_backend)
    _add_checked_login(app, auth)
    browser = Browser(app)
    # ASCII-only JSON: a lone surrogate travels as its escape (as JSON.stringify sends it).
    body = stdlib_json.dumps({"user": {"id": bad_id, "name": "x"}})
    with caplog.at_level(logging.WARNING, logger="sanic_cookies"):
        response = await browser.post(
            "/login-json", content=body, headers={"content-type": "application/json"}
        )
    assert response.status == 400, response.text
    assert message in response.json["refused"]
    problems = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert problems == [], problems
    assert await browser.whoami() is None
    # The same browser logs in normally afterwards.
    response = await browser.post("/login-json", json={"user": {"id": "ada", "name": "Ada"}})
    assert response.status == 200, response.text
    assert await browser.whoami() == {"id": "ada", "name": "Ada"}


async def test_a_user_id_function_must_return_a_str(auth_backend: Any) -> None:
    app, auth = build_app(auth_backend, user_id=lambda user: user["id"])
    _add_checked_login(app, auth)
    browser = Browser(app)
    response = await browser.post("/login-json", json={"user": {"id": 42}})
    assert response.status == 400
    assert "must return a non-empty str, got 42" in response.json["refused"]
    response = await browser.post("/login-json", json={"user": {"id": "42"}})
    assert response.status == 200, response.text


async def test_the_longest_accepted_id_is_stored_and_indexed(auth_backend: Any) -> None:
    from sanic_cookies._auth import MAX_USER_ID_LENGTH

    app, auth = build_app(auth_backend)
    _add_checked_login(app, auth)
    longest = "é" * MAX_USER_ID_LENGTH  # two UTF-8 bytes each
    browsers = [Browser(app), Browser(app)]
    for browser in browsers:
        response = await browser.post("/login-json", json={"user": {"id": longest}})
        assert response.status == 200, response.text
    assert await browsers[0].whoami() == {"id": longest}
    if auth.backend.supports_user_index:
        response = await browsers[0].get("/devices")
        assert len(response.json) == 2, response.text
        response = await browsers[0].post("/logout-everywhere")
        assert response.json == {"ended": 2}
        assert [await b.whoami() for b in browsers] == [None, None]


# Review of issue 13 (F6): the default user_id turned anything into a str, so every
# {"id": None} account shared the index "None" (one's logout_everywhere ended the
# others'), and {"id": [1]} or a dict without "id" were indexed by their repr.
NOT_AN_ID = {
    "none": ({"id": None, "name": "x"}, "user['id'] is NoneType None"),
    "list": ({"id": [1]}, "user['id'] is list [1]"),
    "bool": ({"id": True}, "user['id'] is bool True"),
    "float": ({"id": 1.5}, "user['id'] is float 1.5"),
    "nested": ({"id": {"x": 1}}, "user['id'] is dict"),
    "no-id-key": ({"name": "ada"}, "a mapping without an 'id' key"),
    "list-user": ([1, 2], "the user is list [1, 2]"),
}


@pytest.mark.parametrize("case", list(NOT_AN_ID))
async def test_the_default_user_id_refuses_what_is_not_a_str_or_int(
    case: str, auth_backend: Any, caplog: pytest.LogCaptureFixture
) -> None:
    user, message = NOT_AN_ID[case]
    app, auth = build_app(auth_backend)
    _add_checked_login(app, auth)
    browser = Browser(app)
    with caplog.at_level(logging.WARNING, logger="sanic_cookies"):
        response = await browser.post("/login-json", json={"user": user})
    assert response.status == 400, response.text
    refused = response.json["refused"]
    assert message in refused and "user_id=" in refused
    problems = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert problems == [], problems
    assert await browser.whoami() is None


async def test_the_default_user_id_takes_str_and_int_ids(auth_backend: Any) -> None:
    app, auth = build_app(auth_backend)
    _add_checked_login(app, auth)
    for user, uid in (({"id": 42}, "42"), ({"id": "ada"}, "ada"), (7, "7"), ("bob", "bob")):
        assert auth.user_id_of(user) == uid
        browser = Browser(app)
        response = await browser.post("/login-json", json={"user": user})
        assert response.status == 200, response.text
        assert await browser.whoami() == user
    if auth.backend.supports_user_index:
        # The int id 42 and the str id "42" are one user's.
        other = Browser(app)
        response = await other.post("/login-json", json={"user": {"id": "42"}})
        assert response.status == 200, response.text
        response = await other.get("/devices")
        assert len(response.json) == 2, response.text
