"""The conformance suite fails backends that break a rule, and names the rule.

Each broken backend below is the SQLite fixture backend with one rule broken (the
kinds of mistake an outside review found the suite letting through). The suite runs
against it in a pytest of its own, in a temporary directory, as a backend author
runs it; the unbroken backend passes the same tests (the control).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("sanic_cookies_sqlite")

BROKEN_BACKENDS = '''
import time
from pathlib import Path

import pytest

from sanic_cookies.testing import BackendConformance
from sanic_cookies_sqlite import SQLiteBackend


class KeepsOldExpiry(SQLiteBackend):
    """A replace_only save keeps the old expiry."""

    async def save(self, key, value, ttl, *, user_id=None, replace_only=False):
        if not replace_only:
            return await super().save(key, value, ttl, user_id=user_id)
        sql = "UPDATE sessions SET value = ?2, user_id = ?3 WHERE key = ?1 AND expires > ?4"
        return self.db.execute(sql, (key, value, user_id, time.time())).rowcount == 1


class RevivingTouch(SQLiteBackend):
    """touch() moves the expiry of an expired row too."""

    async def touch(self, key, ttl):
        sql = "UPDATE sessions SET expires = ? WHERE key = ?"
        return self.db.execute(sql, (time.time() + ttl, key)).rowcount == 1


class KeepsFirstUser(SQLiteBackend):
    """A key saved under a new user stays filed under its first one."""

    async def save(self, key, value, ttl, *, user_id=None, replace_only=False):
        row = self.db.execute("SELECT user_id FROM sessions WHERE key = ?", (key,)).fetchone()
        if row is not None and row[0] is not None and user_id is not None:
            user_id = row[0]
        return await super().save(key, value, ttl, user_id=user_id, replace_only=replace_only)


class NoopDelete(SQLiteBackend):
    """delete() does nothing."""

    async def delete(self, key):
        return None


class Suite(BackendConformance):
    backend_class = SQLiteBackend

    @pytest.fixture(autouse=True)
    def _database(self, tmp_path: Path) -> None:
        self.path = tmp_path / "sessions.db"

    def make_backend(self):
        return self.backend_class(str(self.path))


class TestControl(Suite):
    pass


class TestKeepsOldExpiry(Suite):
    backend_class = KeepsOldExpiry


class TestRevivingTouch(Suite):
    backend_class = RevivingTouch


class TestKeepsFirstUser(Suite):
    backend_class = KeepsFirstUser


class TestNoopDelete(Suite):
    backend_class = NoopDelete
'''

# Broken backend -> the suite's test that must fail for it.
CAUGHT_BY = {
    "KeepsOldExpiry": "test_every_save_sets_the_new_ttl",
    "RevivingTouch": "test_touch_does_not_revive_an_expired_value",
    "KeepsFirstUser": "test_a_save_under_another_user_moves_the_key_in_the_index",
    "NoopDelete": "test_delete",
}


# Broken backend -> the start of the rule its failure must name.
RULES = {
    "KeepsOldExpiry": "every save sets the TTL it is given",
    "RevivingTouch": "touch moves the expiry of a live key only",
    "KeepsFirstUser": "save files the key under user_id",
    "NoopDelete": "delete removes the key at once",
}


def _run_suite(directory: Path, *selection: str) -> subprocess.CompletedProcess[str]:
    (directory / "conftest.py").write_text('pytest_plugins = ["sanic_cookies.testing"]\n')
    (directory / "test_broken.py").write_text(BROKEN_BACKENDS)
    (directory / "pytest.ini").write_text(
        "[pytest]\nasyncio_default_fixture_loop_scope = function\n"
    )
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("PYTEST_ADDOPTS", None)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rf", *selection],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.parametrize("broken", sorted(CAUGHT_BY))
def test_the_suite_fails_a_broken_backend_naming_the_rule(broken: str, tmp_path: Path) -> None:
    test = CAUGHT_BY[broken]
    result = _run_suite(tmp_path, f"test_broken.py::Test{broken}::{test}")
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert f"FAILED test_broken.py::Test{broken}::{test}" in output, output
    # The failure's own message names the rule ("E" lines), not just the test's source.
    reported = [line for line in output.splitlines() if line.startswith("E ")]
    assert any(f"(rule: {RULES[broken]}" in line for line in reported), output


def test_the_unbroken_backend_passes_the_same_tests(tmp_path: Path) -> None:
    tests = sorted(set(CAUGHT_BY.values()))
    result = _run_suite(tmp_path, *(f"test_broken.py::TestControl::{test}" for test in tests))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert f"{len(tests)} passed" in output, output
