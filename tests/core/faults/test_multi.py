"""Several backends on one session: configuration, counters, isolation of secondaries."""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

import pytest
from core_support import add_standard_routes, cookie_header, get, new_app
from fault_harness import key_of, stored_data

from sanic_cookies import (
    BackendMetrics,
    ClientSideBackend,
    ConfigurationError,
    MultiBackend,
    Session,
    StoredSession,
)
from sanic_cookies.backends.memory import MemoryBackend
from sanic_cookies.clock import ManualClock
from sanic_cookies.testing import FaultyBackend, InjectedFault, decode_stored, encode_value

SETTINGS: dict[str, Any] = {"secure": False, "warn_lock": False, "lock_timeout": 1.0}


def app_with(backend: Any = None, **settings: Any) -> tuple[Any, Session]:
    app = new_app("multi")
    session = Session(app, backend=backend, **{**SETTINGS, **settings})
    add_standard_routes(app)
    return app, session


async def write(app: Any, cookie: str | None = None, **values: str) -> str:
    query = "&".join(f"{k}={v}" for k, v in values.items())
    response = await get(app, f"/set?{query}", cookie)
    assert response.status == 200, response.text
    return cookie_header(response) if cookie is None else cookie


# -- configuration -------------------------------------------------------------------


async def test_a_list_of_urls_makes_the_first_the_primary_and_writes_to_all() -> None:
    app, session = app_with(["memory://", "memory://?max_entries=50"])
    cookie = await write(app, n="1")
    backend = session.backend
    assert isinstance(backend, MultiBackend)
    primary, secondary = backend.backends
    assert isinstance(primary, MemoryBackend) and isinstance(secondary, MemoryBackend)
    assert secondary.max_entries == 50 and primary.max_entries == 100_000  # the default cap
    for store in backend.backends:
        assert await stored_data(store, key_of(cookie)) == {"n": "1"}
    assert list(session.metrics) == ["memory", "memory[1]"]


async def test_session_backend_config_takes_a_list_with_options_per_backend() -> None:
    app = new_app("multi")
    app.config.SESSION_BACKEND = ["memory://", "memory://"]
    app.config.SESSION_BACKEND_OPTIONS = [{"max_entries": 7}, {"sweep_interval": 5.0}]
    session = Session(app, **SETTINGS)
    add_standard_routes(app)
    await write(app, n="1")
    primary, secondary = session.backend.backends  # type: ignore[attr-defined]
    assert primary.max_entries == 7
    assert secondary.sweep_interval == 5.0


async def test_add_backend_and_its_old_name_add_interface() -> None:
    first, second = MemoryBackend(), MemoryBackend()
    app, session = app_with(first)
    session.add_backend(second)
    session.add_interface("memory://", max_entries=3)
    cookie = await write(app, n="1")
    backend = session.backend
    assert isinstance(backend, MultiBackend)
    assert backend.primary is first and backend.secondaries[0] is second
    assert len(backend.secondaries) == 2
    for store in backend.backends:
        assert await stored_data(store, key_of(cookie)) == {"n": "1"}
    with pytest.raises(ConfigurationError, match="before the server starts"):
        session.add_backend(MemoryBackend())


def test_a_single_entry_list_is_just_that_backend() -> None:
    only = MemoryBackend()
    assert Session(backend=[only])._build_backend([only], {}) is only


@pytest.mark.parametrize(
    ("spec", "options", "message"),
    [
        ([], {}, "empty"),
        (["memory://", "memory://"], [{}], "2 session backends but 1"),
        (["memory://", 42], {}, "must be a Backend"),
    ],
)
def test_bad_lists_are_configuration_errors(spec: Any, options: Any, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Session()._build_backend(spec, options)


def test_what_cannot_be_a_member() -> None:
    memory = MemoryBackend()

    class Cookies(ClientSideBackend):
        @classmethod
        def from_url(cls, url: str, **options: Any) -> Cookies:
            return cls()

        async def decode_cookie(self, token: str) -> StoredSession | None:
            return None

        async def encode_cookie(self, value: bytes, ttl: float) -> str:
            return ""

    with pytest.raises(ConfigurationError, match="cookies"):
        MultiBackend(memory, Cookies())
    with pytest.raises(ConfigurationError, match="another MultiBackend"):
        MultiBackend(memory, MultiBackend(MemoryBackend()))
    with pytest.raises(ConfigurationError, match="twice"):
        MultiBackend(memory, memory)
    with pytest.raises(ConfigurationError, match="options apply to URLs"):
        Session().add_backend(memory, max_entries=3)
    with pytest.raises(ConfigurationError, match="no URL"):
        MultiBackend.from_url("multi://")


def test_capabilities_are_the_primarys() -> None:
    class NoIndex(MemoryBackend):
        supports_user_index = False
        per_process = False

    multi = MultiBackend(NoIndex(), MemoryBackend())
    assert multi.supports_user_index is False and multi.per_process is False
    assert multi.label == "memory"
    multi = MultiBackend(MemoryBackend(), NoIndex())
    assert multi.supports_user_index is True and multi.per_process is True


# -- counters ---------------------------------------------------------------------------


async def test_single_backend_counters() -> None:
    faulty = FaultyBackend(MemoryBackend())
    app, session = app_with(faulty)
    assert session.metrics == {}  # nothing before the server starts
    cookie = await write(app, n="1")  # save (new session)
    await write(app, cookie, n="2")  # lock + save_and_release
    m = session.metrics["memory"]
    assert m == BackendMetrics(operations=3, failures=0, lock_waits=1, lock_timeouts=0)
    snapshot = m.copy()
    faulty.fail("acquire")
    assert (await get(app, "/locked-read", cookie)).status == 503
    assert (m.operations, m.failures, m.lock_waits) == (4, 1, 2)
    assert snapshot.operations == 3  # a copy does not move

    # A lock held elsewhere: the request waits, times out (503), and it is counted as such.
    lock = faulty.inner.lock(key_of(cookie) or "", timeout=1, lease=10)
    await lock.acquire()
    try:
        assert (await get(app, "/locked-read", cookie)).status == 503
    finally:
        await lock.release()
    assert (m.lock_waits, m.lock_timeouts, m.failures) == (3, 1, 1)


async def test_multi_backend_counters_per_backend() -> None:
    secondary = FaultyBackend(MemoryBackend())
    app, session = app_with(MultiBackend(MemoryBackend(), secondary, retry_interval=0))
    cookie = await write(app, n="1")
    secondary.fail("save")
    await write(app, cookie, n="2")
    assert (await get(app, "/read", cookie)).json == {"n": "2"}
    primary_m, secondary_m = session.metrics["memory"], session.metrics["memory[1]"]
    # primary: save, lock, save (locked), load; the secondary sees only the two saves
    assert primary_m == BackendMetrics(operations=4, failures=0, lock_waits=1)
    assert secondary_m == BackendMetrics(operations=2, failures=1)


async def test_index_operations_are_counted_for_a_single_backend() -> None:
    from sanic import json

    from sanic_cookies import AuthSession

    app = new_app("multi")
    auth = AuthSession(app, backend=MemoryBackend(), session_name="session", **SETTINGS)

    @app.get("/everywhere")
    async def everywhere(request: Any) -> Any:
        return json(await auth.logout_everywhere("u1"))

    await get(app, "/everywhere")
    assert auth.metrics["memory"].operations == 1  # AuthSession's own calls count too


# -- isolation of secondaries -------------------------------------------------------------


async def test_a_failing_secondary_is_logged_once_with_its_label_and_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    secondary = FaultyBackend(MemoryBackend(), name="analytics")
    app, session = app_with(MultiBackend(MemoryBackend(), secondary))
    cookie = await write(app, n="1")
    secondary.fail("save", exc=ConnectionError("connection refused"))
    with caplog.at_level(logging.WARNING, logger="sanic_cookies"):
        await write(app, cookie, n="2")
    lines = [r.getMessage() for r in caplog.records if r.name == "sanic_cookies"]
    assert len(lines) == 1, lines
    assert "analytics" in lines[0] and "ConnectionError: connection refused" in lines[0]
    assert session.metrics["analytics"].failures == 1


async def test_a_hanging_secondary_times_out_and_the_request_succeeds(
    caplog: pytest.LogCaptureFixture,
) -> None:
    secondary = FaultyBackend(MemoryBackend())
    app, session = app_with(MultiBackend(MemoryBackend(), secondary, secondary_timeout=0.2))
    cookie = await write(app, n="1")
    secondary.delay("save", 30.0)
    with caplog.at_level(logging.WARNING, logger="sanic_cookies"):
        await write(app, cookie, n="2")
    assert any("TimeoutError" in r.getMessage() for r in caplog.records)
    assert session.metrics["memory[1]"].failures == 1
    assert (await get(app, "/read", cookie)).json == {"n": "2"}


async def test_a_failed_secondary_is_skipped_until_its_retry_interval_passes(
    manual_clock: ManualClock,
) -> None:
    inner = MemoryBackend()
    secondary = FaultyBackend(inner)
    # A minute: the real time this test takes, however slow, stays well within it.
    multi = MultiBackend(MemoryBackend(), secondary, retry_interval=60)
    app, session = app_with(multi)
    cookie = await write(app, n="1")
    secondary.fail("save")
    await write(app, cookie, n="2")  # fails in the secondary
    await write(app, cookie, n="3")  # skipped: not even tried
    m = session.metrics["memory[1]"]
    assert (m.failures, m.skipped) == (1, 1)
    assert secondary.calls["save"] == 2
    assert await stored_data(inner, key_of(cookie)) == {"n": "1"}
    manual_clock.advance(60)
    await write(app, cookie, n="4")  # tried again: caught up
    assert await stored_data(inner, key_of(cookie)) == {"n": "4"}


async def test_a_delete_a_secondary_missed_is_replayed_before_its_next_call() -> None:
    inner = MemoryBackend()
    secondary = FaultyBackend(inner)
    app, _ = app_with(MultiBackend(MemoryBackend(), secondary, retry_interval=0))
    cookie = await write(app, n="1")
    secondary.fail("delete")
    response = await get(app, "/destroy", cookie)
    assert response.status == 200  # the primary ended it: logout worked
    assert await stored_data(inner, key_of(cookie)) == {"n": "1"}  # the copy missed it
    await write(app, None, other="x")  # any later call to the secondary replays the delete
    assert await stored_data(inner, key_of(cookie)) is None


async def test_a_primary_that_cannot_open_fails_the_start() -> None:
    primary = FaultyBackend(MemoryBackend())
    app, _ = app_with(MultiBackend(primary, MemoryBackend()))
    primary.fail("open")
    with pytest.raises(InjectedFault):
        await get(app, "/set?n=1")
    await write(app, n="1")  # the next start works


async def test_a_secondary_that_cannot_open_is_opened_again_before_its_next_write(
    caplog: pytest.LogCaptureFixture,
) -> None:
    inner = MemoryBackend()
    secondary = FaultyBackend(inner)
    app, session = app_with(MultiBackend(MemoryBackend(), secondary, retry_interval=0))
    secondary.fail("open")
    with caplog.at_level(logging.WARNING, logger="sanic_cookies"):
        cookie = await write(app, n="1")
    assert any("open failed" in r.getMessage() for r in caplog.records)
    assert session.metrics["memory[1]"].failures == 1
    assert secondary.calls["open"] == 2  # at start (failed), then before the write
    assert await stored_data(inner, key_of(cookie)) == {"n": "1"}


async def test_close_failures() -> None:
    secondary = FaultyBackend(MemoryBackend())
    multi = MultiBackend(MemoryBackend(), secondary)
    await multi.open()
    secondary.fail("close")
    await multi.close()  # a secondary's failure is logged, not raised
    assert multi.metrics["memory[1]"].failures == 1
    primary = FaultyBackend(MemoryBackend())
    multi = MultiBackend(primary, MemoryBackend())
    await multi.open()
    primary.fail("close")
    with pytest.raises(InjectedFault):
        await multi.close()


# -- ordering ---------------------------------------------------------------------------


class JitteryBackend(MemoryBackend):
    """A memory store whose writes take a random few milliseconds (a network, roughly).

    `landed` records each value in the order the writes landed.
    """

    def __init__(self) -> None:
        super().__init__()
        self.landed: list[int | None] = []

    async def save(self, key: str, value: bytes, ttl: float, **kwargs: Any) -> bool:
        await asyncio.sleep(random.uniform(0, 0.005))
        self.landed.append(decode_stored(StoredSession(value, 0)))
        return await super().save(key, value, ttl, **kwargs)


async def test_locked_writes_reach_secondaries_in_lock_order() -> None:
    """Concurrent locked increments: the copies end with the primary's final value.

    Secondaries are written while the primary's lock is held, so a slow copy
    of an older write can never land after a newer one.
    """
    primary, copy = MemoryBackend(), JitteryBackend()
    multi = MultiBackend(primary, copy)
    key = "cd" * 32
    await multi.save(key, encode_value(0), 60)

    async def increment() -> None:
        lock = multi.lock(key, timeout=10, lease=10)
        stored = await lock.acquire()
        try:
            n = decode_stored(stored) or 0
            await asyncio.sleep(random.uniform(0, 0.002))
            await lock.save_and_release(encode_value(n + 1), 60)
        finally:
            await lock.release()

    await asyncio.gather(*(increment() for _ in range(60)))
    assert decode_stored(await primary.load(key)) == 60
    assert copy.landed == list(range(61)), "a copy's writes landed out of order"


async def test_replace_only_ends_the_copies_when_the_primary_no_longer_has_the_session() -> None:
    primary, copy = MemoryBackend(), MemoryBackend()
    multi = MultiBackend(primary, copy)
    key = "ef" * 32
    await copy.save(key, encode_value(1), 60)  # a copy the primary lost (logged out)
    assert await multi.save(key, encode_value(2), 60, replace_only=True) is False
    assert await copy.load(key) is None
    # And a copy that missed the session's creation catches up on the next write.
    await primary.save(key, encode_value(1), 60)
    assert await multi.save(key, encode_value(3), 60, replace_only=True) is True
    assert decode_stored(await copy.load(key)) == 3


async def test_logout_everywhere_ends_the_copies_of_a_secondary_without_a_user_index() -> None:
    """Such a secondary gets the primary's list of the user's sessions, deleted key by key."""
    from sanic import json

    from sanic_cookies import AuthSession

    class NoIndex(MemoryBackend):
        supports_user_index = False

    copy = NoIndex()
    app = new_app("multi")
    auth = AuthSession(
        app, backend=MultiBackend(MemoryBackend(), copy), session_name="session", **SETTINGS
    )

    @app.get("/login")
    async def login(request: Any) -> Any:
        await auth.login_user(request, "ada")
        return json({})

    @app.get("/everywhere")
    async def everywhere(request: Any) -> Any:
        return json(await auth.logout_everywhere("ada", keep=request))

    kept, *ended = [cookie_header(await get(app, "/login")) for _ in range(3)]
    assert all([await copy.load(key_of(c) or "") is not None for c in (kept, *ended)])
    assert (await get(app, "/everywhere", kept)).json == 2
    assert [await copy.load(key_of(c) or "") for c in ended] == [None, None]
    assert await copy.load(key_of(kept) or "") is not None
