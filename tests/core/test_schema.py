"""Typed sessions (`Session(app, schema=MyStruct)`) through real apps on the memory backend.

The same behaviour on Redis, PostgreSQL and the cookie backends, with logins, CSRF
and flash messages: tests/core/auth/test_typed_sessions.py.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any, Literal

import msgspec
import pytest
from core_support import CountingBackend, cookie_header, get, new_app, set_cookie_headers
from sanic import Request, json, text
from sanic.response import HTTPResponse

from sanic_cookies import (
    ConfigurationError,
    Session,
    SessionSchema,
    SessionSerializationError,
    SessionValidationError,
)
from sanic_cookies._csrf_token import TOKEN_KEY
from sanic_cookies._flash import FLASH_KEY
from sanic_cookies._ids import store_key
from sanic_cookies._record import decode_data, decode_record
from sanic_cookies._schema import LIBRARY_KEYS
from sanic_cookies.backends.memory import MemoryBackend


class Item(msgspec.Struct):
    sku: str
    qty: int = 1


class Cart(msgspec.Struct):
    items: list[Item] = []
    coupon: str | None = None
    visits: int = 0


def cart_app(**options: Any) -> tuple[Any, Session[Cart]]:
    """An app whose session has the `Cart` schema (or ``schema=`` in `options`).

    * ``/add?sku=``: appends through ``sess.data`` inside ``async with``.
    * ``/set?key=value``: sets through the mapping; a `SessionValidationError` at the
      write is answered 422 with its path and class.
    * ``/show``: the typed data and the mapping's keys (read under the lock).
    * ``/peek``: reads ``sess.data`` after ``await load()`` (read-only).
    * ``/plain-set?key=value``: sets without ``async with`` (memory loads without I/O).
    """
    app = new_app()
    options.setdefault("schema", Cart)
    options.setdefault("warn_lock", False)
    session: Session[Cart] = Session(app, **options)

    @app.get("/add")
    async def add(request: Request) -> HTTPResponse:
        async with session.of(request) as sess:
            sess.data.items.append(Item(request.args.get("sku", "")))
            sess.data.visits += 1
            return json([i.sku for i in sess.data.items])

    @app.get("/set")
    async def set_values(request: Request) -> HTTPResponse:
        try:
            async with session.of(request) as sess:
                for key, value in request.args.items():
                    sess[key] = msgspec.json.decode(value[0])
        except SessionValidationError as exc:
            return json({"error": type(exc).__name__, "path": exc.path, "key": exc.key}, 422)
        return text("ok")

    @app.get("/show")
    async def show(request: Request) -> HTTPResponse:
        async with session.of(request) as sess:
            return json({"data": msgspec.to_builtins(sess.data), "keys": list(sess)})

    @app.get("/peek")
    async def peek(request: Request) -> HTTPResponse:
        sess = await session.of(request).load()
        return json(msgspec.to_builtins(sess.data))

    @app.get("/plain-set")
    async def plain_set(request: Request) -> HTTPResponse:
        sess = session.of(request)
        for key, value in request.args.items():
            sess[key] = msgspec.json.decode(value[0])
        return text("ok")

    return app, session


async def stored(session: Session[Any], cookie: str) -> dict[str, Any] | None:
    """The session data the store holds for `cookie` (``session=<id>``), as JSON values."""
    value = await session.backend.load(store_key(cookie.split("=", 1)[1]))
    if value is None:
        return None
    record = decode_record(value.value)
    assert record is not None
    return decode_data(bytes(record.data))


# -- the schema is checked when the session is made ---------------------------------------


class Required(msgspec.Struct):
    user: str


class Underscored(msgspec.Struct):
    _csrf: str = ""


class RenamedToUnderscore(msgspec.Struct):
    flashes: list[str] = msgspec.field(default_factory=list, name="_flashes")


class ArrayLike(msgspec.Struct, array_like=True):
    n: int = 0


class Frozen(msgspec.Struct, frozen=True):
    n: int = 0


class BadDefault(msgspec.Struct):
    n: int = "zero"  # type: ignore[assignment]


@pytest.mark.parametrize(
    ("schema", "says"),
    [
        (dict, "must be a msgspec.Struct"),
        (Item(sku="x"), "must be a msgspec.Struct"),
        (Required, "'user' of session schema Required needs a default"),
        (Underscored, "names starting with '_' are the library's"),
        (RenamedToUnderscore, "names starting with '_' are the library's"),
        (ArrayLike, "is array_like"),
        (Frozen, "is frozen"),
        (BadDefault, "The defaults of session schema BadDefault"),
    ],
)
def test_a_schema_that_cannot_hold_a_session_is_refused_at_once(schema: Any, says: str) -> None:
    with pytest.raises(ConfigurationError, match=says):
        Session(new_app(), schema=schema)


class SeenPrefs(msgspec.Struct, frozen=True):
    theme: str = "light"
    seen: list[str] = []  # one list per SeenPrefs instance, but SeenPrefs() below is one


class SharedDefault(msgspec.Struct):
    prefs: SeenPrefs = SeenPrefs()


class NestedSharedDefault(msgspec.Struct):
    lines: list[Item] = []
    history: list[SharedDefault] = []  # each decoded SharedDefault would share its prefs


SHARED_LIST: list[str] = []


class SharedFactory(msgspec.Struct):
    tags: list[str] = msgspec.field(default_factory=lambda: SHARED_LIST)


class FreshFactory(msgspec.Struct):
    prefs: SeenPrefs = msgspec.field(default_factory=SeenPrefs)
    pair: tuple[int, str] = (1, "a")  # immutable all through: fine


@pytest.mark.parametrize(
    ("schema", "says"),
    [
        (SharedDefault, "Field 'prefs' of SharedDefault .* every session would share"),
        (NestedSharedDefault, "Field 'prefs' of SharedDefault \\(session schema Nested"),
        (SharedFactory, "Field 'tags' of SharedFactory .* returns the same mutable object"),
    ],
)
def test_a_default_every_session_would_share_is_refused(schema: Any, says: str) -> None:
    with pytest.raises(ConfigurationError, match=says) as caught:
        Session(new_app(), schema=schema)
    assert "default_factory" in str(caught.value)  # says what to write instead


async def test_a_fresh_default_is_one_object_per_session() -> None:
    app = new_app()
    session = Session(app, schema=FreshFactory, warn_lock=False)

    @app.get("/see/<what>")
    async def see(request: Request, what: str) -> HTTPResponse:
        async with session.of(request) as sess:
            sess.data.prefs.seen.append(what)
            return json(sess.data.prefs.seen)

    alice = cookie_header(await get(app, "/see/alice-private"))
    assert (await get(app, "/see/again", alice)).json == ["alice-private", "again"]
    assert (await get(app, "/see/bob")).json == ["bob"]  # a new visitor sees nothing of Alice's


class Flag(msgspec.Struct):
    flag: bool | int = 0


async def test_a_value_equal_to_its_default_in_python_but_encoded_differently_is_stored() -> None:
    app, session = cart_app(schema=Flag)
    cookie = cookie_header(await get(app, "/set?flag=false"))  # False == 0 in Python
    assert await stored(session, cookie) == {"flag": False}
    assert (await get(app, "/show", cookie)).json["data"] == {"flag": False}


class Priced(msgspec.Struct):
    prices: dict[int, str] = {}


async def test_a_dict_with_int_keys_is_written_and_read_back() -> None:
    app, session = cart_app(schema=Priced)
    cookie = cookie_header(await get(app, '/set?prices={"5":"five"}'))  # JSON keys are strings
    assert await stored(session, cookie) == {"prices": {"5": "five"}}
    assert (await get(app, "/peek", cookie)).json == {"prices": {"5": "five"}}
    response = await get(app, '/set?prices={"x":"ex"}', cookie)
    assert response.status == 422
    assert response.json["path"] == "$.prices"  # the dict whose key does not fit


class Plan(msgspec.Struct):
    plan: Literal["free", "pro"] = "free"
    n: int = 0

    def __post_init__(self) -> None:
        if self.n > 100:
            raise RuntimeError("too big")


async def test_a_validation_error_names_the_path_and_never_the_value() -> None:
    app = new_app()
    session = Session(app, schema=Plan, warn_lock=False)
    caught: list[SessionValidationError] = []

    @app.post("/set")
    async def set_value(request: Request) -> HTTPResponse:
        try:
            async with session.of(request) as sess:
                sess.update(request.json)
        except SessionValidationError as exc:
            caught.append(exc)
            return text(str(exc), 422)
        return text("ok")

    response = await app.asgi_client.post("/set", json={"plan": "card 4111-1111-1111-1111"})
    assert response[1].status == 422
    exc = caught[-1]
    assert exc.path == "$.plan" and "4111" not in str(exc) and exc.__cause__ is None
    assert str(exc) == "Session data does not match the schema Plan at $.plan: invalid value"

    response = await app.asgi_client.post("/set", json={"n": 101})  # __post_init__ raises
    assert response[1].status == 422
    assert "building it raised RuntimeError" in str(caught[-1])
    assert isinstance(caught[-1].__cause__, RuntimeError)  # chained, for the traceback


class PerVisitor(msgspec.Struct):
    cart_id: str = msgspec.field(default_factory=lambda: uuid.uuid4().hex)


class Tagged(msgspec.Struct):
    sku: str = ""
    tag: str = msgspec.field(default_factory=lambda: uuid.uuid4().hex)  # nested: stored


class SameEachTime(msgspec.Struct):
    tags: list[str] = msgspec.field(default_factory=lambda: ["new"])
    lines: list[Tagged] = []


async def test_a_default_factory_that_differs_per_call_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"'cart_id' of PerVisitor .* different value"):
        Session(new_app(), schema=PerVisitor)
    app, _ = cart_app(schema=SameEachTime)
    response = await get(app, "/show")
    assert response.json["data"]["tags"] == ["new"]
    assert set_cookie_headers(response) == []  # a read stores nothing: the session is empty


def test_only_the_librarys_own_underscore_keys_can_be_set() -> None:
    data = SessionSchema(Cart).new()
    data["_csrf"] = "secret"
    data["_flashes"] = [["message", "hi"]]
    assert dict(data)["_csrf"] == "secret"
    with pytest.raises(SessionValidationError, match=r"no field '_anything' .*library's"):
        data["_anything"] = 1
    assert "_anything" not in data
    assert {TOKEN_KEY, FLASH_KEY} == LIBRARY_KEYS


def test_a_migrate_function_must_be_callable() -> None:
    with pytest.raises(ConfigurationError, match="migrate must be callable"):
        SessionSchema(Cart, migrate="v2")  # type: ignore[arg-type]


# -- one source of truth: the Struct, seen as a mapping too -------------------------------


async def test_a_nested_change_through_typed_access_is_written() -> None:
    app, _ = cart_app()
    cookie = cookie_header(await get(app, "/add?sku=apple"))
    response = await get(app, "/add?sku=pear", cookie)
    assert response.json == ["apple", "pear"]
    # Written under the same id (the store keeps the cookie's expiry: no new cookie);
    # the next request sees the list that grew inside the Struct.
    assert set_cookie_headers(response) == []
    assert (await get(app, "/show", cookie)).json["data"] == {
        "items": [{"sku": "apple", "qty": 1}, {"sku": "pear", "qty": 1}],
        "coupon": None,
        "visits": 2,
    }


async def test_the_mapping_and_the_struct_are_the_same_data() -> None:
    app, session = cart_app()
    seen: dict[str, Any] = {}

    @app.get("/both")
    async def both(request: Request) -> HTTPResponse:
        async with session.of(request) as sess:
            sess["coupon"] = "SPRING"
            seen["typed"] = sess.data.coupon
            sess.data.visits = 7
            seen["mapped"] = sess["visits"]
            seen["same_list"] = sess["items"] is sess.data.items
            seen["keys"] = sorted(sess)
            seen["len"] = len(sess)
            del sess["visits"]  # a field cannot go: it is back to its default
            seen["deleted"] = (sess.data.visits, "visits" in sess)
            seen["missing"] = (sess.get("nope"), "nope" in sess)
            sess.data.coupon = "AUTUMN"
            seen["popped"] = (sess.pop("coupon"), sess.data.coupon)
            sess["coupon"] = "SPRING"
        return text("ok")

    cookie = cookie_header(await get(app, "/both"))
    assert seen == {
        "typed": "SPRING",
        "mapped": 7,
        "same_list": True,
        "keys": ["coupon", "items", "visits"],
        "len": 3,
        "deleted": (0, True),
        "missing": (None, False),
        "popped": ("AUTUMN", None),
    }
    assert (await get(app, "/show", cookie)).json["data"]["coupon"] == "SPRING"


async def test_fields_at_their_defaults_are_not_stored_and_an_all_default_session_is_none() -> None:
    app, session = cart_app()
    # A new visitor reading the typed data: no session is created, no cookie is sent.
    response = await get(app, "/show")
    assert response.json["data"] == {"items": [], "coupon": None, "visits": 0}
    assert set_cookie_headers(response) == []
    cookie = cookie_header(await get(app, '/set?coupon="X"'))
    assert await stored(session, cookie) == {"coupon": "X"}
    # Back to the defaults: an empty session, ended like an emptied dict session.
    response = await get(app, "/set?coupon=null", cookie)
    assert "Max-Age=0" in set_cookie_headers(response)[0]
    assert await stored(session, cookie) is None


async def test_clear_puts_every_field_back_to_its_default() -> None:
    app, session = cart_app()
    kept: dict[str, Any] = {}

    @app.get("/clear")
    async def clear(request: Request) -> HTTPResponse:
        async with session.of(request) as sess:
            before = sess.data
            sess.clear()
            kept["same"] = sess.data is before  # in place: a reference held stays valid
            kept["data"] = msgspec.to_builtins(sess.data)
        return text("ok")

    cookie = cookie_header(await get(app, "/add?sku=apple"))
    response = await get(app, "/clear", cookie)
    assert kept == {"same": True, "data": {"items": [], "coupon": None, "visits": 0}}
    assert "Max-Age=0" in set_cookie_headers(response)[0]


async def test_session_of_is_the_request_dict_and_refuses_another_apps_request() -> None:
    app, session = cart_app()
    other_app, _ = cart_app()
    results: list[Any] = []

    @other_app.get("/foreign")
    async def foreign(request: Request) -> HTTPResponse:
        try:
            session.of(request)
        except ConfigurationError as exc:
            results.append(str(exc))
        return text("ok")

    @app.get("/same")
    async def same(request: Request) -> HTTPResponse:
        results.append(session.of(request) is request.ctx.session)
        return text("ok")

    await get(app, "/same")
    await get(other_app, "/foreign")
    assert results == [True, "Session 'session' is not attached to this request's app"]


async def test_an_untyped_session_has_no_typed_data() -> None:
    app = new_app()
    Session(app)
    errors: list[str] = []

    @app.get("/")
    async def index(request: Request) -> HTTPResponse:
        async with request.ctx.session as sess:
            try:
                sess.data  # noqa: B018
            except ConfigurationError as exc:
                errors.append(str(exc))
        return text("ok")

    await get(app, "/")
    assert len(errors) == 1 and "has no schema" in errors[0]


# -- validation on write: an error in the handler, never a stored invalid record ---------


async def test_a_value_of_the_wrong_type_fails_the_write_and_nothing_is_stored() -> None:
    app, session = cart_app()
    cookie = cookie_header(await get(app, '/set?coupon="X"'))
    response = await get(app, "/set?visits=1&coupon=5", cookie)
    assert response.status == 422
    assert response.json == {"error": "SessionValidationError", "path": "$.coupon", "key": None}
    assert await stored(session, cookie) == {"coupon": "X"}  # the block's changes are dropped
    response = await get(app, '/set?items=[{"sku": 3}]', cookie)
    assert response.json["path"] == "$.items[0].sku"
    assert await stored(session, cookie) == {"coupon": "X"}


async def test_a_key_the_schema_does_not_have_is_refused_where_it_is_set() -> None:
    app, _ = cart_app()
    response = await get(app, "/set?shoe_size=44")
    assert response.status == 422
    assert response.json["key"] == "shoe_size"
    assert set_cookie_headers(response) == []


async def test_a_value_that_cannot_be_encoded_is_a_validation_error_too() -> None:
    app, session = cart_app(schema=SessionSchema(Loose))
    caught: list[BaseException] = []

    @app.get("/object")
    async def put_object(request: Request) -> HTTPResponse:
        try:
            async with session.of(request) as sess:
                sess.data.anything = object()
        except SessionSerializationError as exc:
            caught.append(exc)
        return text("ok")

    response = await get(app, "/object")
    assert set_cookie_headers(response) == []
    assert len(caught) == 1 and isinstance(caught[0], SessionValidationError)


class Loose(msgspec.Struct):
    anything: Any = None


async def test_an_invalid_change_without_the_lock_is_a_500_and_is_not_stored() -> None:
    app, session = cart_app()
    cookie = cookie_header(await get(app, '/set?coupon="X"'))
    response = await get(app, "/plain-set?visits=[1]", cookie)
    assert response.status == 500
    assert set_cookie_headers(response) == []
    assert await stored(session, cookie) == {"coupon": "X"}


async def test_a_change_without_the_lock_is_carried_into_a_later_block() -> None:
    app, session = cart_app()

    @app.get("/mixed")
    async def mixed(request: Request) -> HTTPResponse:
        sess = session.of(request)
        sess.data.coupon = "BEFORE"  # 0.4-style plain access first
        async with sess:
            sess.data.visits += 1
        return text("ok")

    cookie = cookie_header(await get(app, "/add?sku=a"))
    await get(app, "/mixed", cookie)
    assert await stored(session, cookie) == {
        "items": [{"sku": "a", "qty": 1}],
        "coupon": "BEFORE",
        "visits": 2,
    }


# -- loading: a record that no longer matches is empty, logged once, never a 500 ----------


class CartV2(msgspec.Struct):
    items: list[Item] = []
    coupon: int | None = None  # was a str
    visits: int = 0


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "sanic_cookies" and r.levelno >= logging.WARNING
    ]


async def test_a_stored_record_that_no_longer_matches_starts_from_the_defaults(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app, session = cart_app()
    cookie = cookie_header(await get(app, '/set?coupon="SECRET-CODE-123"'))
    await get(app, "/add?sku=apple", cookie)
    session.schema = SessionSchema(CartV2)  # a deploy changed the type of `coupon`
    caplog.set_level(logging.DEBUG, "sanic_cookies")
    response = await get(app, "/peek", cookie)
    assert response.status == 200
    assert response.json == {"items": [], "coupon": None, "visits": 0}
    assert set_cookie_headers(response) == []  # a read does not rewrite it
    lines = warnings_of(caplog)
    assert len(lines) == 1
    assert "does not match the schema CartV2 (at $.coupon)" in lines[0]
    assert "SECRET" not in caplog.text and "apple" not in caplog.text
    # The next write replaces the old record with data that matches.
    await get(app, "/add?sku=pear", cookie)
    assert await stored(session, cookie) == {"items": [{"sku": "pear", "qty": 1}], "visits": 1}


async def test_a_read_of_an_old_format_record_does_not_rewrite_it() -> None:
    backend = CountingBackend()
    app, session = cart_app(schema=None, backend=backend)
    cookie = cookie_header(await get(app, '/set?coupon="X"&visits=2&gone=true'))
    session.schema = SessionSchema(Cart)  # adds `items`, drops `gone`
    backend.reset()
    response = await get(app, "/peek", cookie)
    assert response.json == {"items": [], "coupon": "X", "visits": 2}
    assert backend.store_calls() == {"load": 1}
    assert await stored(session, cookie) == {"coupon": "X", "visits": 2, "gone": True}


# -- the migration story (docs/typed-sessions.md) ---------------------------------------


class V1(msgspec.Struct):
    cart: list[str] = []
    theme: str = "light"
    legacy: bool = False


class V2Added(msgspec.Struct):
    cart: list[str] = []
    theme: str = "light"
    legacy: bool = False
    currency: str = "EUR"


class V2Renamed(msgspec.Struct):
    basket: list[str] = msgspec.field(default_factory=list, name="cart")
    theme: str = "light"


class V2RenamedAll(msgspec.Struct, rename={"basket": "cart"}):
    basket: list[str] = []
    theme: str = "light"


class V2NewDefault(msgspec.Struct):
    cart: list[str] = []
    theme: str = "light"
    legacy: bool = True  # was False: sessions stored at the old default read the new one


class V2Strict(msgspec.Struct, forbid_unknown_fields=True):
    cart: list[str] = []
    theme: str = "light"


class LineV3(msgspec.Struct):
    sku: str
    qty: int = 1


class V3(msgspec.Struct):
    version: int = 3
    cart: list[LineV3] = []
    theme: str = "light"


def upgrade(stored: dict[str, Any]) -> dict[str, Any]:
    if stored.get("version", 1) < 3:
        stored["cart"] = [{"sku": sku} for sku in stored.get("cart", [])]
        stored["version"] = 3
    return stored


def failing_upgrade(stored: dict[str, Any]) -> dict[str, Any]:
    if any(isinstance(line, str) for line in stored.get("cart", [])):
        raise KeyError("cart")  # only on old records: it must work on what the schema writes
    return stored


@pytest.mark.parametrize(
    ("new", "expected", "logged"),
    [
        (V2Added, {"cart": ["a"], "theme": "dark", "legacy": True, "currency": "EUR"}, None),
        (V2Renamed, {"cart": ["a"], "theme": "dark"}, None),  # `basket`, stored as "cart"
        (V2RenamedAll, {"cart": ["a"], "theme": "dark"}, None),
        (V2NewDefault, {"cart": ["a"], "theme": "dark", "legacy": True}, None),
        (V2Strict, {"cart": [], "theme": "light"}, "does not match the schema V2Strict"),
        (
            SessionSchema(V3, migrate=upgrade),
            {"version": 3, "cart": [{"sku": "a", "qty": 1}], "theme": "dark"},
            None,
        ),
        (V3, {"version": 3, "cart": [], "theme": "light"}, "(at $.cart[0])"),
        (
            SessionSchema(V3, migrate=failing_upgrade),
            {"version": 3, "cart": [], "theme": "light"},
            "could not be migrated to the schema V3 (KeyError)",
        ),
    ],
    ids=[
        "add-field",
        "rename",
        "rename-all",
        "new-default",
        "remove-forbidden",
        "migrate",
        "type-change",
        "migrate-fails",
    ],
)
async def test_a_schema_change_reads_the_old_records_as_documented(
    new: Any, expected: dict[str, Any], logged: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    app, session = cart_app(schema=V1)
    legacy = "false" if new is V2NewDefault else "true"  # stored at V1's default: not stored
    cookie = cookie_header(await get(app, f'/set?cart=["a"]&theme="dark"&legacy={legacy}'))
    session.schema = new if isinstance(new, SessionSchema) else SessionSchema(new)
    caplog.set_level(logging.WARNING, "sanic_cookies")
    assert (await get(app, "/show", cookie)).json["data"] == expected
    lines = warnings_of(caplog)
    assert lines == [] if logged is None else (len(lines) == 1 and logged in lines[0])


class LineV2(msgspec.Struct):
    sku: str
    qty: int = 1


class CartVersioned(msgspec.Struct):
    version: int = 2
    lines: list[LineV2] = []


def upgrade_skus(stored: dict[str, Any]) -> dict[str, Any]:
    """The migrate function of docs/typed-sessions.md: version 1 stored SKUs under "skus"."""
    if stored.get("version", 1) == 1:
        stored["lines"] = [{"sku": sku} for sku in stored.pop("skus", [])]
        stored["version"] = 2
    return stored


class CartV1Skus(msgspec.Struct):
    skus: list[str] = []


def lines_app(schema: Any, **options: Any) -> tuple[Any, Session[Any]]:
    app = new_app()
    session: Session[Any] = Session(app, schema=schema, warn_lock=False, **options)

    @app.get("/add/<sku>")
    async def add(request: Request, sku: str) -> HTTPResponse:
        try:
            async with session.of(request) as sess:
                sess.data.lines.append(LineV2(sku))
        except SessionValidationError as exc:
            return text(str(exc), 422)
        return text("ok")

    @app.get("/lines")
    async def lines(request: Request) -> HTTPResponse:
        async with session.of(request) as sess:
            return json([line.sku for line in sess.data.lines])

    return app, session


async def test_a_version_field_is_stored_and_a_migrated_cart_survives_many_requests() -> None:
    store = MemoryBackend()  # one store, as two deploys share one
    old, _ = cart_app(schema=CartV1Skus, backend=store)
    cookie = cookie_header(await get(old, '/set?skus=["tea"]'))  # a version 1 record
    schema = SessionSchema(CartVersioned, migrate=upgrade_skus, version_field="version")
    app, session = lines_app(schema, backend=store)
    assert (await get(app, "/lines", cookie)).json == ["tea"]
    skus = ["tea"]
    for sku in ("jam", "bread"):
        skus.append(sku)
        assert (await get(app, f"/add/{sku}", cookie)).text == "ok"
        # "version" is at its default and stored all the same: the record says it is current
        lines = [{"sku": s, "qty": 1} for s in skus]
        assert await stored(session, cookie) == {"version": 2, "lines": lines}
        assert (await get(app, "/lines", cookie)).json == skus


async def test_a_write_that_the_migrate_function_would_read_back_differently_is_refused() -> None:
    app, _ = lines_app(SessionSchema(CartVersioned, migrate=upgrade_skus))  # no version_field
    response = await get(app, "/add/tea")
    assert response.status == 422
    assert "migrate function of session schema CartVersioned changes data" in response.text
    assert set_cookie_headers(response) == []  # nothing stored: not a cart that empties itself


def test_version_field_must_be_a_field_and_migrate_must_give_the_defaults_for_nothing() -> None:
    with pytest.raises(ConfigurationError, match="'vers' is not a field"):
        SessionSchema(CartVersioned, migrate=upgrade_skus, version_field="vers")

    def adds_a_line(stored: dict[str, Any]) -> dict[str, Any]:
        return {"lines": [{"sku": "free gift"}], **stored}

    with pytest.raises(ConfigurationError, match="The defaults of session schema CartVersioned"):
        SessionSchema(CartVersioned, migrate=adds_a_line, version_field="version")


async def test_a_held_data_is_the_data_of_its_block_only() -> None:
    app, session = cart_app()

    @app.get("/held")
    async def held(request: Request) -> HTTPResponse:
        async with session.of(request) as sess:
            kept = sess.data
        async with session.of(request) as sess:
            sess.data.coupon = "SPRING"
            fresh = sess.data
        kept.visits = 99  # after its block: not the session's data any more
        return json(kept is fresh)

    cookie = cookie_header(await get(app, "/add?sku=a"))
    assert (await get(app, "/held", cookie)).json is False
    data = (await get(app, "/show", cookie)).json["data"]
    assert (data["coupon"], data["visits"]) == ("SPRING", 1)


async def test_a_field_added_in_a_rolling_deploy_is_lost_when_an_old_instance_writes() -> None:
    store = MemoryBackend()  # old and new instances share the store
    new, new_session = cart_app(schema=V2Added, backend=store)
    old, _ = cart_app(schema=V1, backend=store)
    cookie = cookie_header(await get(new, '/set?currency="USD"'))
    assert (await get(old, '/set?theme="dark"', cookie)).status == 200  # an old instance writes
    assert await stored(new_session, cookie) == {"theme": "dark"}  # "currency" is gone
    assert (await get(new, "/show", cookie)).json["data"]["currency"] == "EUR"


async def test_a_removed_field_goes_at_the_next_write() -> None:
    app, session = cart_app(schema=V2Added)
    cookie = cookie_header(await get(app, '/set?currency="USD"&theme="dark"'))
    session.schema = SessionSchema(V1)
    await get(app, '/set?theme="light"&cart=["b"]', cookie)
    assert await stored(session, cookie) == {"cart": ["b"]}


async def test_a_renamed_field_is_stored_under_its_old_name() -> None:
    app, session = cart_app(schema=V2Renamed)
    cookie = cookie_header(await get(app, '/set?basket=["x"]'))
    assert await stored(session, cookie) == {"cart": ["x"]}
