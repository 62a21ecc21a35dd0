"""An out-of-tree backend (tests/fixtures/sanic_cookies_dictstore) installed from its own
distribution: found by its entry point, selected by URL scheme, passing the conformance suite.

The ``tests`` nox session installs it; in a development environment run
``pip install -e tests/fixtures/sanic_cookies_dictstore --no-deps`` once.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from importlib.metadata import PackageNotFoundError, distribution, entry_points
from pathlib import Path
from typing import Any, ClassVar

import pytest
from core_support import cookie_header, get, session_app

from sanic_cookies import Backend, backend_from_url, registered_schemes
from sanic_cookies import _discovery as discovery
from sanic_cookies._discovery import GROUP, backend_class
from sanic_cookies.testing import BackendConformance

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "sanic_cookies_dictstore"
DIST = "sanic-cookies-dictstore"


def _installed() -> bool:
    try:
        distribution(DIST)
    except PackageNotFoundError:
        return False
    return True


@pytest.fixture(autouse=True)
def _require_the_fixture_distribution(monkeypatch: pytest.MonkeyPatch) -> None:
    # Resolve through the installed entry points only, whatever register() did before.
    monkeypatch.setattr(discovery, "_runtime", {})
    if _installed():
        return
    message = f"{DIST} is not installed: pip install -e {FIXTURE} --no-deps"
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(f"{message} (CI=true: it is required)")
    pytest.skip(f"{message} (set CI=true to turn this skip into a failure)")


def test_the_entry_point_comes_from_the_fixture_distribution() -> None:
    (entry,) = (e for e in entry_points(group=GROUP) if e.name == "dictstore")
    assert entry.value == "sanic_cookies_dictstore:DictStoreBackend"
    assert entry.dist is not None and entry.dist.name == DIST
    assert "dictstore" in registered_schemes()


def test_the_url_scheme_selects_the_class_through_the_entry_point() -> None:
    from sanic_cookies_dictstore import DictStoreBackend

    assert backend_class("dictstore://") is DictStoreBackend
    assert type(backend_from_url("dictstore://")) is DictStoreBackend


class TestDictStoreConformance(BackendConformance):
    """The whole contract, on a backend built from its URL like an app would build it."""

    lock_has_lease: ClassVar[bool] = False

    async def make_backend(self) -> Backend:
        return backend_from_url("dictstore://")


async def test_an_app_uses_it_by_url() -> None:
    app, session = session_app(backend="dictstore://")
    cookie = cookie_header(await get(app, "/set?a=1"))
    assert (await get(app, "/incr", cookie)).json == {"n": 1}
    assert (await get(app, "/locked-read", cookie)).json == {"a": "1", "n": 1}
    assert type(session.backend).__name__ == "DictStoreBackend"


async def test_its_own_test_suite_passes_standalone() -> None:
    # As its author runs it, in its own directory: its conftest's
    # pytest_plugins = ["sanic_cookies.testing"] line is all the set-up there is.
    env: dict[str, Any] = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("PYTEST_ADDOPTS", None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "-q",
        cwd=FIXTURE,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 300)
    output = out.decode()
    assert proc.returncode == 0, output
    passed = re.search(r"(\d+) passed", output)
    assert passed is not None and int(passed.group(1)) >= 20, output
    assert "failed" not in output and "error" not in output, output
