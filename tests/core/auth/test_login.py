"""login_user / logout_user / current_user end to end: rotation, finality, data, remember-me."""

from __future__ import annotations

import math
from typing import Any

import pytest
from auth_support import COOKIE, Browser, ProxyBackend, build_app
from sanic import Request, json

from sanic_cookies import SessionSerializationError
from sanic_cookies._ids import is_session_id


async def test_login_gives_a_new_id_and_kills_the_anonymous_one(make_app: Any) -> None:
    app, _ = make_app()
    browser = Browser(app)
    await browser.post("/cart", params={"item": "apple"})
    anonymous = browser.cookie
    assert anonymous is not None

    await browser.login("alice")
    assert browser.cookie is not None and browser.cookie != anonymous
    assert await browser.whoami() == {"id": "alice", "name": "Alice"}

    replay = Browser(app, {COOKIE: anonymous})
    assert await replay.whoami() is None
    assert (await replay.get("/cart")).json == []


async def test_fixation_a_planted_valid_id_is_not_the_one_authenticated(make_app: Any) -> None:
    app, _ = make_app()
    attacker = Browser(app)
    await attacker.post("/cart", params={"item": "bait"})  # a real, stored anonymous session
    planted = attacker.cookie
    assert planted is not None

    victim = Browser(app, {COOKIE: planted})
    assert (await victim.get("/cart")).json == ["bait"]  # the planted session is live
    await victim.login("victim")
    assert victim.cookie != planted
    assert await victim.whoami() == {"id": "victim", "name": "Victim"}

    assert await attacker.whoami() is None
    assert (await attacker.get("/private")).status == 401


@pytest.mark.parametrize("planted", ["attacker-chosen-id", "A" * 43, ""])
async def test_fixation_unknown_or_forged_ids_are_never_adopted(
    make_app: Any, planted: str
) -> None:
    app, _ = make_app()
    victim = Browser(app, {COOKIE: planted} if planted else {})
    await victim.login("victim")
    assert victim.cookie not in (None, planted)
    assert await victim.whoami() == {"id": "victim", "name": "Victim"}
    assert await Browser(app, {COOKIE: planted}).whoami() is None


@pytest.mark.parametrize("inside", ["0", "1"])
async def test_logout_is_final(make_app: Any, inside: str) -> None:
    app, _ = make_app()
    browser = Browser(app)
    await browser.login("alice")
    await browser.post("/cart", params={"item": "book"})
    logged_in = browser.cookie
    assert logged_in is not None

    response = await browser.post("/logout", params={"inside": inside})
    assert response.status == 200
    deletion = browser.last_set[COOKIE]
    assert deletion["value"] in ("", '""') and deletion["max-age"] == "0"
    assert browser.cookie is None
    assert await browser.whoami() is None

    replay = Browser(app, {COOKIE: logged_in})
    assert await replay.whoami() is None
    assert (await replay.get("/cart")).json == []
    assert (await replay.get("/private")).status == 401


async def test_logout_without_a_login_is_harmless(make_app: Any) -> None:
    app, _ = make_app()
    browser = Browser(app)
    assert (await browser.post("/logout")).status == 200
    assert COOKIE not in browser.last_set  # nothing to expire: no cookie was sent
    await browser.post("/cart", params={"item": "x"})
    assert (await browser.post("/logout")).status == 200
    assert browser.last_set[COOKIE]["max-age"] == "0"


@pytest.mark.parametrize("inside", ["0", "1"])
async def test_login_inside_and_outside_async_with(make_app: Any, inside: str) -> None:
    app, _ = make_app()
    browser = Browser(app)
    await browser.post("/cart", params={"item": "pear"})
    anonymous = browser.cookie
    await browser.login("alice", inside=inside)
    assert browser.cookie != anonymous
    assert await browser.whoami() == {"id": "alice", "name": "Alice"}
    data = (await browser.get("/data")).json
    if inside == "1":
        assert data == {"note": "set after login in the same block"}
    else:
        assert data == {}
    assert await Browser(app, {COOKIE: anonymous or ""}).whoami() is None


@pytest.mark.parametrize("keep", [True, False])
async def test_keep_data_keeps_the_cart(make_app: Any, keep: bool) -> None:
    app, _ = make_app()
    browser = Browser(app)
    await browser.post("/cart", params={"item": "apple"})
    await browser.post("/cart", params={"item": "pear"})
    await browser.login("alice", keep="1" if keep else "0")
    assert (await browser.get("/cart")).json == (["apple", "pear"] if keep else [])


async def test_keep_data_never_hands_one_users_data_to_another(make_app: Any) -> None:
    app, _ = make_app()
    browser = Browser(app)
    await browser.login("alice")
    await browser.post("/cart", params={"item": "alice's secret"})
    await browser.login("bob", keep="1")
    assert await browser.whoami() == {"id": "bob", "name": "Bob"}
    assert (await browser.get("/cart")).json == []


async def test_relogin_of_the_same_user_rotates_again(make_app: Any) -> None:
    app, _ = make_app()
    browser = Browser(app)
    await browser.login("alice")
    first = browser.cookie
    await browser.post("/cart", params={"item": "kept"})
    await browser.login("alice", keep="1")
    assert browser.cookie != first
    assert (await browser.get("/cart")).json == ["kept"]
    assert await Browser(app, {COOKIE: first or ""}).whoami() is None


@pytest.mark.parametrize("remember", [False, True])
async def test_remember_me_changes_the_cookie_lifetime_and_nothing_else(
    make_app: Any, remember: bool
) -> None:
    app, _ = make_app()
    browser = Browser(app)
    await browser.post("/cart", params={"item": "apple"})
    await browser.login("alice", remember="1" if remember else "0", keep="1")
    attrs = dict(browser.last_set[COOKIE])
    del attrs["value"]
    if remember:
        max_age = int(attrs.pop("max-age"))
        assert 30 * 86400 - 5 <= max_age <= 30 * 86400
    else:
        assert "max-age" not in attrs and "expires" not in attrs
    # Everything else about the cookie and the session is the same.
    assert attrs == {"path": "/", "httponly": "", "secure": "", "samesite": "Lax"}
    assert await browser.whoami() == {"id": "alice", "name": "Alice"}
    assert (await browser.get("/cart")).json == ["apple"]
    assert (await browser.get("/private")).status == 200


async def test_remember_me_with_a_duration(make_app: Any) -> None:
    app, _ = make_app()
    browser = Browser(app)
    await browser.login("alice", remember="1", duration="120")
    assert 115 <= int(browser.last_set[COOKIE]["max-age"]) <= 120


async def test_an_id_issued_at_login_has_the_product_shape(make_app: Any) -> None:
    app, auth = make_app()
    browser = Browser(app)
    await browser.login("alice")
    if auth.backend.label in ("memory", "proxy"):
        assert is_session_id(browser.cookie)


async def test_user_loader_runs_once_per_request(auth_backend: Any) -> None:
    calls: list[Any] = []

    async def load(user: Any) -> dict[str, Any]:
        calls.append(user)
        return {"loaded": user["id"]}

    app, auth = build_app(auth_backend, user_loader=load)

    @app.get("/thrice")
    async def thrice(request: Request) -> Any:
        users = [await auth.current_user(request) for _ in range(3)]
        return json(users)

    browser = Browser(app)
    assert (await browser.get("/thrice")).json == [None, None, None]
    assert calls == []  # nobody logged in: nothing to load
    await browser.login("alice")
    assert (await browser.get("/thrice")).json == [{"loaded": "alice"}] * 3
    assert len(calls) == 1
    # login_required's check and the handler share the one load.
    assert (await browser.get("/private")).json == {"hello": {"loaded": "alice"}}
    assert len(calls) == 2


async def test_user_loader_returning_none_means_logged_out(auth_backend: Any) -> None:
    app, _ = build_app(auth_backend, user_loader=lambda user: None)  # sync loaders work too
    browser = Browser(app)
    await browser.login("ghost")
    assert await browser.whoami() is None
    assert (await browser.get("/private")).status == 401


async def test_current_user_costs_at_most_one_store_round_trip() -> None:
    backend = ProxyBackend()
    app, auth = build_app(backend)

    @app.get("/twice")
    async def twice(request: Request) -> Any:
        return json([await auth.current_user(request), await auth.current_user(request)])

    browser = Browser(app)
    await browser.login("alice")
    backend.calls.clear()
    assert (await browser.get("/twice")).json == [{"id": "alice", "name": "Alice"}] * 2
    assert backend.calls["load"] == 1
    assert backend.calls["save"] == 0

    backend.calls.clear()
    assert (await Browser(app).get("/twice")).json == [None, None]  # no cookie: no store call
    assert sum(backend.calls.values()) == 0


@pytest.mark.parametrize(
    ("user", "options", "error"),
    [
        (None, {}, ValueError),
        ({"id": 1}, {"duration": True}, ValueError),
        ({"id": 1}, {"duration": 0}, ValueError),
        ({"id": 1}, {"duration": -5}, ValueError),
        ({"id": 1}, {"duration": "60"}, ValueError),
        ({"id": 1}, {"duration": math.inf}, ValueError),
        ({"id": 1}, {"duration": math.nan}, ValueError),
        ({"id": 1}, {"duration": 1000 * 86400}, ValueError),  # past 400 days (review F4)
        ({"id": 1}, {"duration": 400 * 86400 + 1}, ValueError),
        ({"id": 1}, {"remember": "yes"}, ValueError),
        ({"id": 1, "when": object()}, {}, SessionSerializationError),
    ],
)
async def test_login_rejects_bad_arguments_before_touching_the_session(
    user: Any, options: dict[str, Any], error: type[Exception]
) -> None:
    app, auth = build_app("memory://")

    @app.post("/bad-login")
    async def bad_login(request: Request) -> Any:
        try:
            await auth.login_user(request, user, **options)
        except error as exc:
            return json({"error": type(exc).__name__, "loaded": request.ctx.auth_session._data})
        return json({"error": None})

    response = await Browser(app).post("/bad-login")
    assert response.json == {"error": error.__name__, "loaded": None}


async def test_custom_user_id_function_indexes_sessions(auth_backend: Any) -> None:
    app, auth = build_app(auth_backend, user_id=lambda user: f"u:{user['id']}")
    assert auth.user_id_of({"id": 3}) == "u:3"
    browser = Browser(app)
    await browser.login("alice")
    response = await browser.get("/devices")
    if auth.backend.supports_user_index:
        assert len(response.json) == 1
    else:
        assert response.status == 501


async def test_a_plain_session_on_the_same_store_reaches_only_the_clients_own_login() -> None:
    """docs/authentication.md: beside an AuthSession on one shared store, a client that
    copies its login cookie into the plain session's cookie reaches its own login's record
    (nobody else's); each with its own prefix keeps them apart."""
    from sanic_cookies import Session
    from sanic_cookies.backends.memory import MemoryBackend

    shared = MemoryBackend()
    app, _ = build_app(shared)
    Session(app, backend=shared)

    @app.get("/plain")
    async def plain(request: Request) -> Any:
        sess = await request.ctx.session.load()
        return json({"new": sess.is_new, "user": None if sess.auth is None else sess.auth.user})

    alice = Browser(app)
    await alice.login("alice")
    assert alice.cookie is not None
    copied = await Browser(app, {"session": alice.cookie}).get("/plain")
    assert copied.json == {"new": False, "user": {"id": "alice", "name": "Alice"}}
    bob = Browser(app)
    await bob.login("bob")
    assert bob.cookie is not None
    own = await Browser(app, {"session": bob.cookie}).get("/plain")
    assert own.json["user"] == {"id": "bob", "name": "Bob"}  # his own, never alice's

    # Apart: one prefix each (here, two stores).
    app2, _ = build_app(MemoryBackend())
    Session(app2, backend=MemoryBackend())
    app2.get("/plain")(plain)
    carol = Browser(app2)
    await carol.login("carol")
    assert carol.cookie is not None
    apart = await Browser(app2, {"session": carol.cookie}).get("/plain")
    assert apart.json == {"new": True, "user": None}
