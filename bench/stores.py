"""The stores a benchmark run uses, owned by the run and cleaned up after it.

Redis: a private ``redis-server`` on a free port (no persistence) when the binary
is installed, so the shared server sees no load and no leftover keys; else the
shared server under a key prefix of this run. PostgreSQL: a schema of this run
on the given server, dropped at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from urllib.parse import urlsplit


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_port(port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Wait until something accepts connections on 127.0.0.1:`port`.

    Raises:
        RuntimeError: Nothing listened in time, or `proc` exited first.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listening on port {port} after {timeout}s")


def host_port(url: str, default_port: int) -> tuple[str, int]:
    """Host and port of a store URL."""
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or default_port


class PrivateRedis:
    """A throwaway redis-server: no persistence, loopback only, killed by `stop`."""

    def __init__(self) -> None:
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None

    @staticmethod
    def available() -> bool:
        """True if redis-server is installed."""
        return shutil.which("redis-server") is not None

    @property
    def url(self) -> str:
        """The server URL (database 0)."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start it on a free port and wait until it answers."""
        self._dir = tempfile.TemporaryDirectory(prefix="bench-redis-")
        self.port = free_port()
        self._proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self._dir.name,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_port(self.port, 10, self._proc)

    def stop(self) -> None:
        """Kill the server (this process started it) and remove its directory."""
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None


async def redis_delete_prefix(url: str, prefix: str) -> None:
    """Delete this run's keys from a shared Redis server (SCAN + UNLINK, never FLUSH)."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url)
    try:
        batch: list[bytes] = []
        async for key in client.scan_iter(match=prefix + "*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                await client.unlink(*batch)
                batch.clear()
        if batch:
            await client.unlink(*batch)
    finally:
        await client.aclose()


async def redis_ping(url: str) -> bool:
    """True if a Redis server answers at `url`."""
    try:
        import redis.asyncio as aioredis
    except ImportError:
        return False
    client = aioredis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        return bool(await client.ping())
    except Exception:
        return False
    finally:
        await client.aclose()


async def postgres_schema(dsn: str, schema: str, *, drop: bool) -> bool:
    """Create (or with `drop`, drop) this run's schema; False if PostgreSQL is unreachable."""
    try:
        import asyncpg
    except ImportError:
        return False
    try:
        conn = await asyncio.wait_for(asyncpg.connect(dsn), 5)
    except Exception:
        return False
    try:
        if drop:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        else:
            await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    finally:
        await conn.close()
    return True
