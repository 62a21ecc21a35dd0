"""Helpers of the browser tests: the demo server process, Chromium settings, clean-up."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from ports import free_port
from processes import kill_group

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


def unavailable(message: str) -> None:
    if _in_ci():
        pytest.fail(f"{message} (CI=true: the browser tests must run; .ci/run installs Chromium)")
    pytest.skip(message)


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
            start_new_session=True,  # one group with whatever the demo starts
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
        kill_group(self.process.pid)  # whatever outlived the demo's main process
        self._log.close()


@contextlib.asynccontextmanager
async def launched(chromium: str, args: tuple[str, ...] = ()) -> AsyncIterator[Any]:
    """Headless Chromium (Playwright) with `CHROMIUM_ARGS` and `args`; closed at the end."""
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        unavailable(
            "Playwright is not installed (pip install playwright; dependency group browser)"
        )
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=chromium, args=[*CHROMIUM_ARGS, *args]
        )
        try:
            yield browser
        finally:
            await browser.close()


def require_backend(url: str, **options: Any) -> None:
    from sanic_cookies import BackendNotFound, backend_from_url

    try:
        backend_from_url(url, **options)
    except BackendNotFound as exc:
        unavailable(str(exc))


def redis_delete_prefix(url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=500))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def postgres_drop_schema(dsn: str, schema: str) -> None:
    import asyncio

    import asyncpg

    async def drop() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()

    asyncio.run(drop())


BACKENDS = ["memory", "redis", "postgres"]
