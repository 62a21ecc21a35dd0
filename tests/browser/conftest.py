"""Fixtures for driving examples/demo.py in headless Chromium (Playwright, system browser).

Chromium is Debian's ``/usr/bin/chromium`` (``.ci/run`` installs it); Playwright's
Python wheel carries its own driver, so nothing is downloaded at test time (never
run ``playwright install``). Locally a missing browser or Playwright skips these
tests; under ``CI=true`` it fails them.
"""

from __future__ import annotations

import base64
import os
import secrets
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from demo_support import (
    ARTIFACTS,
    CHROMIUM,
    DemoServer,
    launched,
    postgres_drop_schema,
    redis_delete_prefix,
    require_backend,
    unavailable,
)


@pytest.fixture(scope="session")
def chromium() -> str:
    """The Chromium executable (skip locally / fail under CI when it is missing)."""
    path = shutil.which(CHROMIUM) or (CHROMIUM if os.access(CHROMIUM, os.X_OK) else None)
    if path is None:
        unavailable(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    assert path is not None
    return path


@pytest.fixture
def artifacts(request: pytest.FixtureRequest) -> Path:
    """A fresh artifacts/browser/<test name>/ directory for screenshots and logs."""
    name = request.node.name.replace("[", "-").replace("]", "").replace("/", "_")
    path = ARTIFACTS / name
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


@pytest.fixture
def demo_env(request: pytest.FixtureRequest, run_id: str) -> Iterator[dict[str, str]]:
    """Environment for the demo process: ``SESSION_BACKEND`` for the test's backend.

    Parametrize indirectly with a backend name (default ``memory``). Redis gets a fresh
    key prefix and PostgreSQL a fresh schema, both removed afterwards.
    """
    kind = getattr(request, "param", "memory")
    tag = secrets.token_hex(3)
    if kind == "memory":
        yield {"SESSION_BACKEND": "memory://"}
    elif kind == "redis":
        url = request.getfixturevalue("redis_url")
        prefix = f"{request.getfixturevalue('redis_key_prefix')}browser:{tag}:"
        require_backend(url)
        yield {"SESSION_BACKEND": f"{url}?prefix={prefix}"}
        redis_delete_prefix(url, prefix)
    elif kind == "postgres":
        dsn = request.getfixturevalue("postgres_dsn")
        schema = f"sctest_{run_id}_browser_{tag}"
        require_backend(dsn)
        yield {"SESSION_BACKEND": f"{dsn}?schema={schema}&create_table=true"}
        postgres_drop_schema(dsn, schema)
    elif kind == "cookie":
        keys = ",".join(base64.urlsafe_b64encode(os.urandom(32)).decode() for _ in range(2))
        require_backend("cookie://", keys=keys)
        yield {"SESSION_BACKEND": "cookie://", "SESSION_KEYS": keys}
    else:
        raise ValueError(kind)


@pytest.fixture
def demo(demo_env: dict[str, str], artifacts: Path) -> Iterator[DemoServer]:
    server = DemoServer(demo_env, artifacts / "demo.log")
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest_asyncio.fixture
async def browser(chromium: str) -> AsyncIterator[Any]:
    async with launched(chromium) as browser:
        yield browser
