"""Finding a backend by URL scheme: entry points (read once), register(), clear errors."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from importlib.metadata import EntryPoint
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from core_support import CountingBackend, get, new_app
from sanic import Request, Sanic, text
from sanic.response import HTTPResponse

from sanic_cookies import (
    BackendNotFound,
    ConfigurationError,
    DuplicateBackend,
    SanicCookiesError,
    Session,
    backend_from_url,
    register,
    registered_schemes,
)
from sanic_cookies import _discovery as discovery
from sanic_cookies.backends.memory import MemoryBackend

MEMORY = "sanic_cookies.backends.memory:MemoryBackend"
COUNTING = "core_support:CountingBackend"


def entry(name: str, value: str, dist: str) -> EntryPoint:
    """An entry point of group sanic_cookies.backends, as distribution `dist` declares it."""
    return EntryPoint(name, value, discovery.GROUP)._for(SimpleNamespace(name=dist))  # type: ignore[arg-type]


class Installed(list[EntryPoint]):
    """The fake set of installed entry points, with the scans made of it."""

    scans: list[str]


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch) -> Iterator[Installed]:
    """Replace what is installed with the entry points the test appends; count the scans."""
    fake = Installed()
    fake.scans = scans = []

    def entry_points(*, group: str) -> list[EntryPoint]:
        scans.append(group)
        return [e for e in fake if e.group == group]

    monkeypatch.setattr(discovery, "entry_points", entry_points)
    monkeypatch.setattr(discovery, "_discovered", None)
    monkeypatch.setattr(discovery, "_runtime", {})
    yield fake


def test_entry_points_are_read_once(installed: Installed) -> None:
    installed.append(entry("memory", MEMORY, "sanic-cookies"))
    for _ in range(3):
        assert isinstance(backend_from_url("memory://"), MemoryBackend)
    assert registered_schemes() == ["memory"]
    with pytest.raises(BackendNotFound):
        backend_from_url("nothing://")
    assert installed.scans == [discovery.GROUP]


def test_the_real_install_provides_memory() -> None:
    # No fakes: the core's own entry point, from its installed metadata.
    assert "memory" in registered_schemes()
    assert isinstance(backend_from_url("memory://"), MemoryBackend)
    assert isinstance(backend_from_url("MEMORY://"), MemoryBackend)  # schemes are case-blind


def test_register_a_class(installed: Installed) -> None:
    register("counting", CountingBackend)
    assert isinstance(backend_from_url("counting://anything"), CountingBackend)
    assert "counting" in registered_schemes()


def test_register_a_dotted_target_and_a_plus_scheme(installed: Installed) -> None:
    register("counting+tls", COUNTING)
    assert type(backend_from_url("counting+tls://host")).__name__ == "CountingBackend"
    assert "counting+tls" in registered_schemes()  # as URLs spell it
    register("Counting2", COUNTING)  # schemes are not case-sensitive
    assert type(backend_from_url("COUNTING2://host")).__name__ == "CountingBackend"


def test_registration_wins_over_an_installed_entry_point(installed: Installed) -> None:
    installed.append(entry("memory", MEMORY, "sanic-cookies"))
    register("memory", CountingBackend)
    assert isinstance(backend_from_url("memory://"), CountingBackend)


def test_registration_resolves_a_duplicate_claim(installed: Installed) -> None:
    installed.append(entry("redis", MEMORY, "sanic-cookies-redis"))
    installed.append(entry("redis", COUNTING, "other-redis"))
    register("redis", CountingBackend)
    assert isinstance(backend_from_url("redis://"), CountingBackend)


def _first_party_schemes() -> list[tuple[str, str]]:
    """(URL, extra) for every scheme a sibling distribution registers, read from its pyproject."""
    packages = Path(__file__).resolve().parents[2] / "packages"
    core = tomllib.loads((packages / "core" / "pyproject.toml").read_text())
    extra_of = {
        pins[0].partition("==")[0]: extra
        for extra, pins in core["project"]["optional-dependencies"].items()
        if len(pins) == 1
    }
    found = []
    for pyproject in sorted(packages.glob("backend-*/pyproject.toml")):
        project = tomllib.loads(pyproject.read_text())["project"]
        for name in project["entry-points"]["sanic_cookies.backends"]:
            found.append((name.replace(".", "+") + "://h/x", extra_of[project["name"]]))
    return found


def test_every_first_party_scheme_is_listed() -> None:
    schemes = {url.partition("://")[0] for url, _ in _first_party_schemes()}
    # The documented ones at least (the list above is read from the pyproject files).
    assert {"redis", "rediss", "redis+cluster", "redis+sentinel", "postgresql", "cookie"} <= schemes


@pytest.mark.parametrize(("url", "extra"), _first_party_schemes())
def test_first_party_scheme_not_installed_says_what_to_install(
    installed: Installed, url: str, extra: str
) -> None:
    # Nothing installed here (the real backends may be installed in this environment).
    with pytest.raises(BackendNotFound) as info:
        backend_from_url(url)
    scheme = url.partition("://")[0]
    assert str(info.value) == (
        f"No session backend is installed for {scheme}:// URLs. "
        f'Install it with: pip install "sanic-cookies[{extra}]"'
    )


def test_missing_message_of_the_redis_scheme() -> None:
    assert 'pip install "sanic-cookies[redis]"' in discovery._missing_message("redis")


def test_unknown_scheme_names_what_is_installed_and_register(
    installed: Installed,
) -> None:
    installed.append(entry("memory", MEMORY, "sanic-cookies"))
    register("counting", CountingBackend)
    with pytest.raises(BackendNotFound) as info:
        backend_from_url("foo://bar")
    message = str(info.value)
    assert "foo://" in message
    assert "installed: counting, memory" in message
    assert "sanic_cookies.register()" in message


def test_backend_not_found_is_an_import_error() -> None:
    assert issubclass(BackendNotFound, ImportError)
    assert issubclass(BackendNotFound, ConfigurationError)
    assert issubclass(BackendNotFound, SanicCookiesError)
    try:
        backend_from_url("surely-not-installed://")
    except ImportError as exc:  # how callers that know only Python catch it
        assert isinstance(exc, BackendNotFound)
    else:
        pytest.fail("no ImportError")


def test_two_distributions_claiming_one_scheme_are_both_named(
    installed: Installed,
) -> None:
    installed.append(entry("memory", MEMORY, "sanic-cookies"))
    installed.append(
        entry("redis", "sanic_cookies.backends.redis:RedisBackend", "sanic-cookies-redis")
    )
    installed.append(entry("redis", "fastredis_sessions:Backend", "fastredis-sessions"))
    with pytest.raises(DuplicateBackend) as info:
        backend_from_url("redis://")
    message = str(info.value)
    assert "sanic-cookies-redis (sanic_cookies.backends.redis:RedisBackend)" in message
    assert "fastredis-sessions (fastredis_sessions:Backend)" in message
    assert isinstance(info.value, ConfigurationError)
    # The clash does not stop an app that uses another scheme.
    assert isinstance(backend_from_url("memory://"), MemoryBackend)
    assert "redis" in registered_schemes()


def test_the_same_target_seen_twice_is_one_claim(installed: Installed) -> None:
    installed.append(entry("memory", MEMORY, "sanic-cookies"))
    installed.append(entry("memory", MEMORY, "sanic-cookies"))
    assert isinstance(backend_from_url("memory://"), MemoryBackend)


def test_broken_installed_backend_says_why(installed: Installed) -> None:
    installed.append(entry("broken", "no_such_module_for_sanic_cookies:Backend", "broken-dist"))
    with pytest.raises(BackendNotFound, match=r"broken:// URLs failed to import: ModuleNotFound"):
        backend_from_url("broken://")
    register("typo", "sanic_cookies.backends.memory:MemoryBakend")
    with pytest.raises(BackendNotFound, match="typo:// URLs failed to import: AttributeError"):
        backend_from_url("typo://")


def test_a_target_that_is_not_a_backend_is_refused(installed: Installed) -> None:
    register("notabackend", "collections:OrderedDict")
    with pytest.raises(ConfigurationError, match="not a Backend subclass"):
        backend_from_url("notabackend://")


@pytest.mark.parametrize("url", ["memory", "", "://host", "/tmp/sessions"])
def test_url_without_a_scheme_is_a_configuration_error(url: str) -> None:
    with pytest.raises(ConfigurationError, match="must be a URL such as 'memory://'"):
        backend_from_url(url)


def test_options_reach_from_url() -> None:
    backend = backend_from_url("memory://", max_entries=3)
    assert isinstance(backend, MemoryBackend) and backend.max_entries == 3


async def test_unknown_backend_fails_the_app_at_start_up_not_per_request() -> None:
    app = new_app()
    Session(app, backend="foo://somewhere")
    handled: list[Any] = []

    @app.get("/")
    async def index(request: Request) -> HTTPResponse:
        handled.append(request)
        return text("never")

    with pytest.raises(BackendNotFound, match="foo://"):
        await get(app, "/")
    assert handled == []


async def _serve_once(app: Sanic[Any, Any]) -> None:
    """Start `app` (its sessions resolve their backend then) and answer one request."""

    @app.get("/")
    async def index(request: Request) -> HTTPResponse:
        return text("ok")

    await get(app, "/")


async def test_backend_options_from_the_environment_are_json_text(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # docs/configuration.md: set from the environment, the options are JSON text.
    monkeypatch.setenv("SANIC_SESSION_BACKEND", "memory://")
    monkeypatch.setenv("SANIC_SESSION_BACKEND_OPTIONS", '{"max_entries": 7}')
    app = new_app()
    assert isinstance(app.config.SESSION_BACKEND_OPTIONS, str)  # as Sanic loads it
    session = Session(app)
    await _serve_once(app)
    assert isinstance(session.backend, MemoryBackend)
    assert session.backend.max_entries == 7


@pytest.mark.parametrize("text_", ["max_entries=7", '"a string"', "7", "{broken"])
async def test_backend_options_text_that_is_not_a_json_object_is_refused(text_: str) -> None:
    app = new_app()
    app.config.SESSION_BACKEND = "memory://"
    app.config.SESSION_BACKEND_OPTIONS = text_
    Session(app)
    with pytest.raises(ConfigurationError, match="not a JSON object") as info:
        await _serve_once(app)
    assert text_ not in str(info.value)  # never echoed: it may hold a password


async def test_backend_options_from_app_config() -> None:
    app = new_app()
    app.config.SESSION_BACKEND = "memory://"
    app.config.SESSION_BACKEND_OPTIONS = {"max_entries": 7}
    session = Session(app)
    await _serve_once(app)
    assert isinstance(session.backend, MemoryBackend)
    assert session.backend.max_entries == 7
