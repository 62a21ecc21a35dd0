"""The session cookie on the wire: secure defaults, every option, and where settings come from."""

from __future__ import annotations

from typing import Any

import pytest
from core_support import (
    add_standard_routes,
    cookie_header,
    get,
    new_app,
    parse_set_cookie,
    session_app,
    session_cookie,
    set_cookie_headers,
    simple_cookie,
)
from sanic import Request, text
from sanic.response import HTTPResponse

from sanic_cookies import ConfigurationError, Session
from sanic_cookies._ids import is_session_id


async def test_defaults_on_the_raw_set_cookie_header() -> None:
    app, _ = session_app()  # DEFAULT settings: nothing passed, nothing in app.config
    (header,) = set_cookie_headers(await get(app, "/set?a=1"))
    name, value, attrs = parse_set_cookie(header)
    assert name == "session"
    assert is_session_id(value)
    assert set(attrs) == {"path", "max-age", "samesite", "secure", "httponly"}
    assert attrs["path"] == "/"
    assert attrs["max-age"] == str(30 * 86400)
    assert attrs["samesite"] == "Lax"
    assert attrs["secure"] == "" and attrs["httponly"] == ""
    # And the standard library agrees on the syntax.
    morsel = simple_cookie(header)["session"]
    assert morsel.value == value
    assert morsel["httponly"] is True and morsel["secure"] is True
    assert morsel["samesite"] == "Lax" and morsel["max-age"] == str(30 * 86400)


async def test_max_age_follows_expiry() -> None:
    app, _ = session_app(expiry=600)
    _, attrs = session_cookie(await get(app, "/set?a=1"))
    assert attrs["max-age"] == "600"


async def test_max_age_is_capped_by_the_absolute_lifetime() -> None:
    app, _ = session_app(expiry=3600, lifetime=120)
    _, attrs = session_cookie(await get(app, "/set?a=1"))
    assert 118 <= int(attrs["max-age"]) <= 120


async def test_domain_option() -> None:
    app, _ = session_app(domain="example.com")
    _, attrs = session_cookie(await get(app, "/set?a=1"))
    assert attrs["domain"] == "example.com"


async def test_path_option() -> None:
    app, _ = session_app(path="/app")
    _, attrs = session_cookie(await get(app, "/set?a=1"))
    assert attrs["path"] == "/app"


async def test_session_cookie_has_no_max_age_or_expires() -> None:
    app, _ = session_app(session_cookie=True)
    response = await get(app, "/set?a=1")
    _, attrs = session_cookie(response)
    assert "max-age" not in attrs and "expires" not in attrs
    # ...and a server-side expiry all the same.
    cookie = cookie_header(response)
    assert (await get(app, "/locked-read", cookie)).json == {"a": "1"}
    # Deleting a browser-session cookie still expires it.
    (deleted,) = set_cookie_headers(await get(app, "/destroy", cookie))
    assert parse_set_cookie(deleted)[2]["max-age"] == "0"


@pytest.mark.parametrize(("given", "sent"), [("Strict", "Strict"), ("strict", "Strict")])
async def test_samesite_strict(given: str, sent: str) -> None:
    app, _ = session_app(samesite=given)
    _, attrs = session_cookie(await get(app, "/set?a=1"))
    assert attrs["samesite"] == sent


async def test_samesite_none_is_secure() -> None:
    app, _ = session_app(samesite="None")
    _, attrs = session_cookie(await get(app, "/set?a=1"))
    assert attrs["samesite"] == "None"
    assert "secure" in attrs


async def test_samesite_python_none_means_the_default_lax_not_omitted() -> None:
    # sanic-session and 0.4 omitted the attribute for samesite=None; here None means
    # "not given", as for every setting, so the default applies (docs/migrating.md).
    app, _ = session_app(samesite=None)
    _, attrs = session_cookie(await get(app, "/set?a=1"))
    assert attrs["samesite"] == "Lax"


@pytest.mark.parametrize("where", ["argument", "config"])
async def test_samesite_false_omits_the_attribute(where: str) -> None:
    if where == "argument":
        app, _ = session_app(samesite=False)
    else:
        app = new_app()
        app.config.SESSION_SAMESITE = False
        Session(app)
        add_standard_routes(app)
    response = await get(app, "/set?a=1")
    (header,) = set_cookie_headers(response)
    assert "samesite" not in header.lower()
    _, attrs = session_cookie(response)
    assert "secure" in attrs and "httponly" in attrs  # the other defaults stay
    deleted = await get(app, "/destroy", cookie_header(response))
    assert "samesite" not in set_cookie_headers(deleted)[0].lower()


async def test_httponly_and_secure_can_be_turned_off() -> None:
    app, _ = session_app(httponly=False, secure=False)
    _, attrs = session_cookie(await get(app, "/set?a=1"))
    assert "httponly" not in attrs and "secure" not in attrs


async def test_cookie_name_option() -> None:
    app, _ = session_app(cookie_name="sid")
    response = await get(app, "/set?a=1")
    cookie = cookie_header(response, "sid")
    assert (await get(app, "/locked-read", cookie)).json == {"a": "1"}
    # A cookie under the default name is not this session's.
    other = "session=" + cookie.partition("=")[2]
    assert (await get(app, "/locked-read", other)).json == {}


async def test_host_prefix_names_the_cookie_and_reads_only_that_name() -> None:
    app, _ = session_app(host_prefix=True)
    response = await get(app, "/set?a=1")
    value, attrs = session_cookie(response, "__Host-session")
    assert attrs["path"] == "/" and "secure" in attrs and "domain" not in attrs
    assert (await get(app, "/locked-read", f"__Host-session={value}")).json == {"a": "1"}
    # The unprefixed name, and the __Secure- variant Sanic's cookies.get() would also
    # accept, are not the cookie we set: a subdomain could have planted them.
    assert (await get(app, "/locked-read", f"session={value}")).json == {}
    assert (await get(app, "/locked-read", f"__Secure-session={value}")).json == {}
    deleted = await get(app, "/destroy", f"__Host-session={value}")
    _, deleted_attrs = session_cookie(deleted, "__Host-session")
    assert deleted_attrs["max-age"] == "0"


async def test_without_host_prefix_a_prefixed_cookie_is_ignored() -> None:
    app, _ = session_app()
    value, _ = session_cookie(await get(app, "/set?a=1"))
    assert (await get(app, "/locked-read", f"__Host-session={value}")).json == {}


async def test_partitioned() -> None:
    app, _ = session_app(host_prefix=True, partitioned=True)
    _, attrs = session_cookie(await get(app, "/set?a=1"), "__Host-session")
    assert "partitioned" in attrs


async def test_settings_from_app_config() -> None:
    app = new_app()
    app.config.SESSION_COOKIE_NAME = "cfg"
    app.config.SESSION_EXPIRY = 1234
    app.config.SESSION_SAMESITE = "Strict"
    app.config.SESSION_DOMAIN = "example.org"
    app.config.SESSION_HTTPONLY = False
    app.config.SESSION_SECURE = False
    session = Session(app)
    add_standard_routes(app)
    _, attrs = session_cookie(await get(app, "/set?a=1"), "cfg")
    assert attrs["max-age"] == "1234"
    assert attrs["samesite"] == "Strict"
    assert attrs["domain"] == "example.org"
    assert "httponly" not in attrs and "secure" not in attrs
    assert session.config.expiry == 1234


async def test_constructor_arguments_win_over_app_config() -> None:
    app = new_app()
    app.config.SESSION_COOKIE_NAME = "from_config"
    app.config.SESSION_EXPIRY = 1234
    app.config.SESSION_SAMESITE = "Strict"
    Session(app, cookie_name="from_code", expiry=99)
    add_standard_routes(app)
    _, attrs = session_cookie(await get(app, "/set?a=1"), "from_code")
    assert attrs["max-age"] == "99"
    assert attrs["samesite"] == "Strict"  # not given in code: the config's value


async def test_app_config_changed_before_start_is_honoured() -> None:
    app = new_app()
    Session(app)
    add_standard_routes(app)
    app.config.SESSION_EXPIRY = 77  # after Session(app), before the server starts
    _, attrs = session_cookie(await get(app, "/set?a=1"))
    assert attrs["max-age"] == "77"


async def test_backend_url_from_app_config() -> None:
    app = new_app()
    app.config.SESSION_BACKEND = "memory://?max_entries=5"
    session = Session(app)
    add_standard_routes(app)
    await get(app, "/set?a=1")
    assert type(session.backend).__name__ == "MemoryBackend"
    assert session.backend.max_entries == 5  # type: ignore[attr-defined]


# -- configuration mistakes: raised at start-up, naming the setting ----------------------

BAD_SETTINGS: list[tuple[dict[str, Any], str]] = [
    ({"expiry": 0}, "expiry (SESSION_EXPIRY) must be a positive number"),
    ({"expiry": -5}, "expiry (SESSION_EXPIRY) must be a positive number"),
    ({"expiry": "3600"}, "expiry (SESSION_EXPIRY) must be a positive number"),
    ({"lifetime": True}, "lifetime (SESSION_LIFETIME) must be a positive number"),
    ({"lock_timeout": 0}, "lock_timeout (SESSION_LOCK_TIMEOUT)"),
    ({"refresh_interval": -1}, "refresh_interval (SESSION_REFRESH_INTERVAL)"),
    ({"samesite": "sometimes"}, "samesite (SESSION_SAMESITE) must be 'Lax', 'Strict' or 'None'"),
    ({"samesite": "None", "secure": False}, "SameSite=None cookies must be Secure"),
    ({"host_prefix": True, "secure": False}, "host_prefix=True (SESSION_HOST_PREFIX) needs"),
    ({"host_prefix": True, "domain": "example.com"}, "host_prefix=True"),
    ({"host_prefix": True, "path": "/app"}, "host_prefix=True"),
    ({"partitioned": True}, "partitioned=True (SESSION_PARTITIONED) needs host_prefix=True"),
    ({"secure": "yes"}, "secure (SESSION_SECURE) must be True or False"),
    ({"cookie_name": "my session"}, "cookie_name (SESSION_COOKIE_NAME) must be"),
    ({"cookie_name": "a;b"}, "cookie_name (SESSION_COOKIE_NAME) must be"),
    ({"cookie_name": "__Host-sid"}, "set host_prefix=True"),
    ({"path": "app"}, "path (SESSION_PATH) must be a path starting with '/'"),
    ({"domain": "evil.com; HttpOnly"}, "domain (SESSION_DOMAIN) must be a host name"),
    ({"domain": 5}, "domain (SESSION_DOMAIN) must be a host name"),
    ({"refresh_interval": "60"}, "refresh_interval (SESSION_REFRESH_INTERVAL) must be a number"),
    ({"max_size": 0}, "max_size (SESSION_MAX_SIZE) must be a whole number of bytes"),
    ({"max_size": True}, "max_size (SESSION_MAX_SIZE) must be a whole number of bytes"),
    ({"max_size": 1.5}, "max_size (SESSION_MAX_SIZE) must be a whole number of bytes"),
    ({"autoload": 1}, "autoload (SESSION_AUTOLOAD) must be True or False"),
    ({"cookie_name": 7}, "cookie_name (SESSION_COOKIE_NAME) must be a non-empty cookie token"),
    ({"cookie_name": "__secure-sid"}, "set host_prefix=True"),
    ({"path": "/a;b"}, "path (SESSION_PATH) must be a path starting with '/'"),
    ({"path": 1}, "path (SESSION_PATH) must be a path starting with '/'"),
    ({"samesite": 1}, "samesite (SESSION_SAMESITE) must be 'Lax', 'Strict' or 'None'"),
    ({"samesite": "none", "secure": False}, "SameSite=None cookies must be Secure"),
    # Several mistakes: the first in the order of the checks is named.
    ({"expiry": 0, "secure": "yes", "path": "x"}, "expiry (SESSION_EXPIRY)"),
    ({"secure": "yes", "path": "x"}, "secure (SESSION_SECURE) must be True or False"),
    ({"path": "x", "samesite": "sometimes"}, "path (SESSION_PATH)"),
]


@pytest.mark.parametrize(("settings", "message"), BAD_SETTINGS)
def test_bad_constructor_settings_raise_at_once(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Session(new_app(), **settings)


@pytest.mark.parametrize(("settings", "message"), BAD_SETTINGS)
async def test_bad_app_config_raises_at_server_start(
    settings: dict[str, Any], message: str
) -> None:
    app = new_app()
    Session(app)
    add_standard_routes(app)
    for name, value in settings.items():
        app.config[f"SESSION_{name.upper()}"] = value
    with pytest.raises(ConfigurationError) as info:
        await get(app, "/untouched")
    assert message in str(info.value)


def test_unknown_setting_is_named() -> None:
    with pytest.raises(ConfigurationError, match=r"Unknown session setting.*expiri"):
        Session(new_app(), expiri=10)


def test_backend_and_master_interface_together_is_an_error() -> None:
    with pytest.raises(ConfigurationError, match="master_interface"):
        Session(new_app(), backend="memory://", master_interface="memory://")


def test_session_name_must_be_an_identifier() -> None:
    with pytest.raises(ConfigurationError, match="session_name"):
        Session(new_app(), session_name="my-session")


def test_two_sessions_with_one_name_is_an_error() -> None:
    app = new_app()
    Session(app)
    with pytest.raises(ConfigurationError, match="already has a session named 'session'"):
        Session(app)


def test_attaching_one_session_to_two_apps_is_an_error() -> None:
    session = Session(new_app())
    with pytest.raises(ConfigurationError, match="already attached"):
        session.init_app(new_app())


@pytest.mark.parametrize(
    ("backend", "message"),
    [
        ("memory", "must be a URL such as"),
        ("memory://?max_entries=lots", "Bad memory:// option"),
        ("memory://?colour=blue", "Unknown memory:// option"),
        (42, "must be a Backend, a URL string"),
    ],
)
async def test_bad_backend_raises_at_server_start(backend: Any, message: str) -> None:
    app = new_app()
    Session(app, backend=backend)

    @app.get("/")
    async def index(request: Request) -> HTTPResponse:
        return text("never reached")

    with pytest.raises(ConfigurationError, match=message):
        await get(app, "/")


async def test_settings_set_to_none_mean_not_given() -> None:
    # configuration.md: "None: this default", as for arguments (review 14, item 5).
    app = new_app()
    app.config.SESSION_SAMESITE = None
    app.config.SESSION_EXPIRY = None
    app.config.SESSION_SECURE = None
    app.config.SESSION_MAX_SIZE = None  # None turns this one off, as documented
    session = Session(app)
    add_standard_routes(app)
    (header,) = set_cookie_headers(await get(app, "/set?a=1"))
    _, _, attrs = parse_set_cookie(header)
    assert attrs["samesite"] == "Lax" and "secure" in attrs
    assert attrs["max-age"] == str(30 * 86400)
    assert session.config.max_size is None
