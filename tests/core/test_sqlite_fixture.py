"""The SQLite backend fixture (tests/fixtures/sanic_cookies_sqlite): an out-of-tree backend on
a shared store, built on the core's LeaseLock, found by its entry point, selected by URL, passing
the whole conformance suite (cross-process tests included) in at most 100 lines; and the same
store with a per-process lock, which the suite's cross-process tests must reject.

The ``tests`` nox session installs the fixture; in a development environment run
``pip install -e tests/fixtures/sanic_cookies_sqlite --no-deps`` once.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import re
import sys
from collections.abc import AsyncIterator
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, ClassVar

import pytest
import pytest_asyncio
from core_support import cookie_header, get, session_app
from environment import require_module

from sanic_cookies import Backend, ConfigurationError, backend_from_url
from sanic_cookies import _discovery as discovery
from sanic_cookies._discovery import GROUP
from sanic_cookies.clock import ManualClock
from sanic_cookies.testing import BackendConformance

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "sanic_cookies_sqlite"
SOURCE = FIXTURE / "src" / "sanic_cookies_sqlite" / "__init__.py"
RULE = "cross-process rule"


@pytest.fixture(autouse=True)
def _require_the_fixture_distribution(monkeypatch: pytest.MonkeyPatch) -> None:
    # Resolve through the installed entry points only, whatever register() did before.
    monkeypatch.setattr(discovery, "_runtime", {})
    require_module("sanic_cookies_sqlite", "sanic-cookies-sqlite")


def code_lines(path: Path) -> int:
    """Lines that are neither blank nor comments (docstrings count)."""
    lines = path.read_text().splitlines()
    return sum(1 for line in lines if line.strip() and not line.strip().startswith("#"))


def test_it_fits_in_100_lines() -> None:
    assert code_lines(SOURCE) <= 100, f"{SOURCE.name}: {code_lines(SOURCE)} lines"


def test_the_entry_point_serves_sqlite_urls(tmp_path: Path) -> None:
    (entry,) = (e for e in entry_points(group=GROUP) if e.name == "sqlite")
    assert entry.value == "sanic_cookies_sqlite:SQLiteBackend"
    assert entry.dist is not None and entry.dist.name == "sanic-cookies-sqlite"
    backend = backend_from_url(f"sqlite://{tmp_path}/s.db?busy_timeout=2")
    assert type(backend).__name__ == "SQLiteBackend"
    assert backend.busy_timeout == 2.0  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("url", "options"),
    [
        ("sqlite://relative.db", {}),  # a host, not a path
        ("sqlite:////tmp/x.db", {}),  # four slashes: "//tmp/x.db"
        ("sqlite:///tmp/a#b.db", {}),  # an unencoded '#' would cut the path short
        ("sqlite:///x.db?lease=3", {}),
        ("sqlite:///x.db", {"busy_timeout": "soon"}),
    ],
)
def test_bad_urls_are_configuration_errors(url: str, options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        backend_from_url(url, **options)


class TestSQLiteConformance(BackendConformance):
    """The whole contract, cross-process tests included, through the entry point."""

    @pytest.fixture(autouse=True)
    def _database(self, tmp_path: Path) -> None:
        self.path = tmp_path / "sessions.db"

    def backend_url(self) -> str:
        return f"sqlite://{self.path}"


async def test_an_app_uses_it_by_url(tmp_path: Path) -> None:
    app, session = session_app(backend=f"sqlite://{tmp_path}/app.db")
    cookie = cookie_header(await get(app, "/set?a=1"))
    assert (await get(app, "/incr", cookie)).json == {"n": 1}
    assert (await get(app, "/locked-read", cookie)).json == {"a": "1", "n": 1}
    assert type(session.backend).__name__ == "SQLiteBackend"


async def test_cleanup_removes_expired_sessions_only(tmp_path: Path) -> None:
    backend = backend_from_url(f"sqlite://{tmp_path}/c.db")
    await backend.open()
    try:
        await backend.save("a" * 64, b"x", 60)
        await backend.save("b" * 64, b"x", -1)  # already expired
        assert await backend.cleanup() == 1
        assert await backend.load("a" * 64) is not None
    finally:
        await backend.close()


def test_the_cli_cleans_up_through_the_contract(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sanic_cookies._cli import EXIT_OK, main

    url = f"sqlite://{tmp_path}/cron.db"
    backend = backend_from_url(url)

    async def seed() -> None:
        await backend.open()
        try:
            await backend.save("c" * 64, b"x", -1)  # expired
        finally:
            await backend.close()

    asyncio.run(seed())
    assert main(["cleanup", "--backend", url]) == EXIT_OK
    assert capsys.readouterr().out.strip() == f"{url}: removed 1 expired session(s)"


# -- the deliberately wrong backend: the same shared file, an in-process lock ------------


class _PerProcessLockSuite(BackendConformance):
    """The conformance suite, pointed at SQLiteWithLocalLock (not collected: no Test prefix)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def backend_url(self) -> str:
        return f"sqlite://{self.path}"

    async def make_backend(self) -> Backend:
        from sqlite_support import SQLiteWithLocalLock

        return SQLiteWithLocalLock.from_url(self.backend_url())


@pytest_asyncio.fixture
async def wrong(tmp_path: Path) -> AsyncIterator[tuple[_PerProcessLockSuite, Backend]]:
    suite = _PerProcessLockSuite(tmp_path / "shared.db")
    backend = await suite.make_backend()
    await backend.open()
    try:
        yield suite, backend
    finally:
        await backend.close()


async def test_the_single_process_suite_cannot_tell(
    wrong: tuple[_PerProcessLockSuite, Backend],
) -> None:
    # Why the cross-process tests exist: in one process the wrong lock does its job.
    suite, backend = wrong
    await suite.test_lock_excludes_a_second_holder(backend)
    await suite.test_concurrent_locked_increments_lose_nothing(backend)


@pytest.mark.parametrize(
    "check",
    ["test_cross_process_lock_excludes", "test_cross_process_fencing_refuses_a_paused_holder"],
)
async def test_a_per_process_lock_on_a_shared_store_fails_naming_the_rule(
    wrong: tuple[_PerProcessLockSuite, Backend], check: str
) -> None:
    suite, backend = wrong
    with pytest.raises(pytest.fail.Exception, match=RULE) as failed:
        await getattr(suite, check)(backend)
    assert "per_process = True" in str(failed.value)


async def test_a_shared_store_without_backend_url_fails_naming_the_rule(
    wrong: tuple[_PerProcessLockSuite, Backend],
) -> None:
    class NoURL(BackendConformance):
        pass

    _, backend = wrong
    with pytest.raises(pytest.fail.Exception, match=RULE) as failed:
        await NoURL().test_cross_process_lock_excludes(backend)
    assert "implement backend_url()" in str(failed.value)


class _BuggySuite(BackendConformance):
    # A local file: a lease of 0.5 s runs out well within this (the in-process lock's
    # failure waits all of it).
    wait_limit: ClassVar[float] = 10.0

    def __init__(self, path: Path, backend_class: str) -> None:
        self.path, self.backend_class = path, backend_class

    def backend_url(self) -> str:
        return f"sqlite://{self.path}"

    async def make_backend(self) -> Backend:
        import sqlite_support

        cls: type[Backend] = getattr(sqlite_support, self.backend_class)
        return cls.from_url(self.backend_url())


@pytest.mark.parametrize(
    ("backend_class", "check", "rule"),
    [
        (
            "SQLiteWithNoOpExtend",
            "test_extend_after_the_lease_ran_out_raises_lock_lost",
            "rule: SessionLock.extend raises LockLost once the lease has run out",
        ),
        (
            "SQLiteKeepingTheIndex",
            "test_replace_only_save_without_user_leaves_the_index",
            "rule: Backend.save with user_id=None removes the key from the user index",
        ),
        # The bugs an outside reviewer then found the suite blind to (review of issue 16).
        (  # F1: extend after the lease ran out, nobody else having taken the lock
            "SQLiteWithNoOpExtend",
            "test_extend_after_the_lease_ran_out_unclaimed_raises_lock_lost",
            "rule: SessionLock.extend raises LockLost once the lease has run out, whether or "
            "not another holder has taken the lock since",
        ),
        (  # F1: a fence that checks the token only
            "SQLiteFenceWithoutExpiry",
            "test_save_after_the_lease_ran_out_unclaimed_writes_nothing",
            "rule: save_and_release raises LockLost and writes nothing once the lease has run out",
        ),
        (
            "SQLiteKeepingTheLockAfterARefusedSave",
            "test_a_refused_replace_only_save_releases_the_lock",
            "rule: when a replace_only save_and_release returns False the lock is released",
        ),
        (
            "SQLiteWithoutCleanup",
            "test_cleanup_removes_expired_entries",
            "rule: a backend that does not declare expires_entries_itself = True removes "
            "expired entries in cleanup()",
        ),
        (
            "SQLiteRaisingTypeError",
            "test_from_url_refuses_a_bad_url",
            "rule: from_url raises ConfigurationError for a bad URL or option",
        ),
        (
            "SQLiteWithExpensiveRelease",
            "test_release_of_a_spent_lock_needs_no_store",
            "rule: release() on a spent lock is a local check, no round trip to the store",
        ),
        (
            "SQLiteClaimingPerProcess",
            "test_per_process_tells_whether_instances_share_data",
            "rule: per_process = True only for a store each backend instance has to itself",
        ),
        (
            "SQLiteFlooringTTL",
            "test_value_expires_after_ttl",
            "rule: TTLs are float seconds; a store that counts whole seconds or milliseconds "
            "rounds them up",
        ),
        (
            "SQLiteHidingItsIndex",
            "test_user_index",
            "rule: a backend without a user index keeps Backend's defaults",
        ),
        (
            "SQLiteThatCannotReopen",
            "test_reopens_after_close",
            "rule: open() works again after close()",
        ),
    ],
)
async def test_the_suite_catches_the_bugs_that_escaped_it(
    tmp_path: Path, backend_class: str, check: str, rule: str, manual_clock: ManualClock
) -> None:
    suite = _BuggySuite(tmp_path / "buggy.db", backend_class)
    async with suite.opened_backend() as backend:
        with pytest.raises((pytest.fail.Exception, AssertionError), match=re.escape(rule)):
            await run_check(suite, check, backend, manual_clock)
    # ... and the same check passes on the correct backend: it is the bug that fails it.
    fine = _BuggySuite(tmp_path / "fine.db", "SQLiteBackend")
    async with fine.opened_backend() as backend:
        await run_check(fine, check, backend, manual_clock)


async def run_check(
    suite: BackendConformance, check: str, backend: Backend, clock: ManualClock
) -> None:
    """Run the suite's test `check` as pytest would, handing it the clock if it takes one."""
    method = getattr(suite, check)
    if "manual_clock" in inspect.signature(method).parameters:
        await method(backend, manual_clock=clock)
    else:
        await method(backend)


class _NoLeaseSuite(_BuggySuite):
    lock_has_lease: ClassVar[bool] = False


async def test_lock_has_lease_false_is_refused_for_a_shared_store(tmp_path: Path) -> None:
    # F8 of the review: only a per_process backend's in-process lock may go without a lease.
    suite = _NoLeaseSuite(tmp_path / "nolease.db", "SQLiteWithLocalLock")
    async with suite.opened_backend() as backend:
        with pytest.raises(pytest.fail.Exception, match="rule: lock_has_lease = False only"):
            await suite.test_lock_has_lease_is_declared_consistently(backend)


async def test_an_in_process_lock_on_a_shared_store_fails_the_lease_test_naming_the_fix(
    tmp_path: Path, manual_clock: ManualClock
) -> None:
    # F8: not a bare LockTimeout after 10.7 s, but what is wrong and what to declare.
    suite = _BuggySuite(tmp_path / "local.db", "SQLiteWithLocalLock")
    async with suite.opened_backend() as backend:
        with pytest.raises(pytest.fail.Exception, match="rule: a lock has a lease") as failed:
            await suite.test_lock_lease_expires_when_holder_stops(backend, manual_clock)
    assert "LocalLock" in str(failed.value) and "per_process = True" in str(failed.value)


class _PlainMakeBackend(BackendConformance):
    def __init__(self, path: Path) -> None:
        self.path = path

    def make_backend(self) -> Backend:  # type: ignore[override]  # a plain def (F6)
        from sanic_cookies_sqlite import SQLiteBackend

        return SQLiteBackend(str(self.path))


async def test_make_backend_may_be_a_plain_def(tmp_path: Path) -> None:
    suite = _PlainMakeBackend(tmp_path / "plain.db")
    async with suite.opened_backend() as backend:
        await suite.test_save_then_load_round_trips(backend)


async def test_make_backend_returning_no_backend_says_so() -> None:
    class Wrong(BackendConformance):
        async def make_backend(self) -> Backend:
            return "sqlite:///x.db"  # type: ignore[return-value]

    with pytest.raises(pytest.fail.Exception, match=r"must return a sanic_cookies\.Backend"):
        await Wrong().new_backend()


async def test_the_second_process_is_reaped_even_paused_and_failing(tmp_path: Path) -> None:
    from sanic_cookies_sqlite import SQLiteBackend

    from sanic_cookies.testing._processes import Peer

    peer = Peer(SQLiteBackend, f"sqlite://{tmp_path}/p.db", {})
    with pytest.raises(ZeroDivisionError):
        async with peer:
            pid = peer.pid
            await peer.call("acquire", key="d" * 64, timeout=5, lease=30)
            peer.pause()  # stopped mid-hold, and then the test fails
            1 / 0  # noqa: B018
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # gone, not even a zombie: reaped


async def test_a_second_process_that_cannot_start_fails_with_its_error(tmp_path: Path) -> None:
    from sanic_cookies_sqlite import SQLiteBackend

    from sanic_cookies.testing._processes import Peer

    with pytest.raises(pytest.fail.Exception, match="busy_timout") as failed:
        async with Peer(SQLiteBackend, f"sqlite://{tmp_path}/p.db?busy_timout=1", {}):
            pass
    assert "died during start-up" in str(failed.value)


async def test_its_own_test_suite_passes_standalone() -> None:
    # As its author runs it, in its own directory, with the pytest-asyncio setting of its
    # pyproject.toml: no warning, every test passes (the cross-process ones too).
    env: dict[str, Any] = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("PYTEST_ADDOPTS", None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "-q",
        "-W",
        "error::pytest.PytestDeprecationWarning",
        cwd=FIXTURE,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 300)
    output = out.decode()
    assert proc.returncode == 0, output
    passed = re.search(r"(\d+) passed", output)
    assert passed is not None and int(passed.group(1)) >= 30, output
    assert "skipped" not in output and "warning" not in output.lower(), output
