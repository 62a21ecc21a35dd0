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
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "examples" / "demo.py"
ARTIFACTS = ROOT / "artifacts" / "browser"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _unavailable(message: str) -> None:
    if _in_ci():
        pytest.fail(f"{message} (CI=true: the browser tests must run; .ci/run installs Chromium)")
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class DemoServer:
    """examples/demo.py running in a child process on a free loopback port."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://localhost:{self.port}"
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = log_path.open("w")
        self.process = subprocess.Popen(
            [sys.executable, str(DEMO)],
            cwd=ROOT,
            env={
                **os.environ,
                **env,
                "DEMO_HOST": "127.0.0.1",
                "DEMO_PORT": str(self.port),
                "PYTHONUNBUFFERED": "1",
            },
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait until the demo says where to point a browser (it is listening then)."""
        deadline = time.monotonic() + timeout
        announce = f"open http://localhost:{self.port}"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the demo exited with {self.process.returncode}:\n{self.log}")
            if announce in self.log:
                return
            time.sleep(0.1)
        raise RuntimeError(f"the demo did not start within {timeout}s:\n{self.log}")

    @property
    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)
        self._log.close()


@pytest.fixture(scope="session")
def chromium() -> str:
    """The Chromium executable (skip locally / fail under CI when it is missing)."""
    path = shutil.which(CHROMIUM) or (CHROMIUM if os.access(CHROMIUM, os.X_OK) else None)
    if path is None:
        _unavailable(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
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


BACKENDS = ["memory", "redis", "postgres"]


def _require_backend(url: str, **options: Any) -> None:
    from sanic_cookies import BackendNotFound, backend_from_url

    try:
        backend_from_url(url, **options)
    except BackendNotFound as exc:
        _unavailable(str(exc))


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
        _require_backend(url)
        yield {"SESSION_BACKEND": f"{url}?prefix={prefix}"}
        _redis_delete_prefix(url, prefix)
    elif kind == "postgres":
        dsn = request.getfixturevalue("postgres_dsn")
        schema = f"sctest_{run_id}_browser_{tag}"
        _require_backend(dsn)
        yield {"SESSION_BACKEND": f"{dsn}?schema={schema}&create_table=true"}
        _postgres_drop_schema(dsn, schema)
    elif kind == "cookie":
        keys = ",".join(base64.urlsafe_b64encode(os.urandom(32)).decode() for _ in range(2))
        _require_backend("cookie://", keys=keys)
        yield {"SESSION_BACKEND": "cookie://", "SESSION_KEYS": keys}
    else:
        raise ValueError(kind)


def _redis_delete_prefix(url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=500))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def _postgres_drop_schema(dsn: str, schema: str) -> None:
    import asyncio

    import asyncpg

    async def drop() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()

    asyncio.run(drop())


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
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        _unavailable(
            "Playwright is not installed (pip install playwright; dependency group browser)"
        )
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()
