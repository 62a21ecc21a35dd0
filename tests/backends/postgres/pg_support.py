"""Helpers for the PostgreSQL backend tests: URLs, a round-trip counter, a server
subprocess and a throwaway PostgreSQL cluster.

Imported by the test modules of this directory (pytest puts it on ``sys.path``).
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from ports import free_port
from processes import kill_group, owned_by_fixture
from serving import serving
from sqlalchemy.engine import make_url

# The core's end-to-end helpers (apps with standard routes, cookie handling).
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "core"))

from core_support import (
    add_standard_routes,
    cookie_header,
    get,
    new_app,
    session_app,
)

from sanic_cookies.testing import wait_until

__all__ = [
    "APP_SCRIPT",
    "AppServer",
    "Cluster",
    "PgBouncer",
    "RoundTrips",
    "add_standard_routes",
    "cookie_header",
    "free_port",
    "get",
    "new_app",
    "pgbouncer",
    "served",
    "session_app",
    "sqlalchemy_url",
    "throwaway_cluster",
    "wait_until",
]

APP_SCRIPT = Path(__file__).with_name("pg_app.py")


def sqlalchemy_url(dsn: str) -> str:
    """The ``postgresql+asyncpg://`` form of a ``postgresql://`` DSN."""
    return make_url(dsn).set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


# -- counting round trips on the wire ---------------------------------------------------


class RoundTrips:
    """Counts client→server round trips of asyncpg connections, on the wire.

    Every exchange the client waits for ends with a message that asks for an
    answer: ``Sync`` (``S``, closing an extended-protocol exchange, including a
    statement's first-use ``Parse``) or ``Query`` (``Q``, a simple query, one or
    more statements). Counting those in the bytes the connection writes counts
    round trips exactly, whatever code path sent them.

    `attach` patches one connection's transport; pass it to asyncpg's pool
    ``init`` hook, or call it from SQLAlchemy's ``connect`` event.
    """

    def __init__(self) -> None:
        self.count = 0
        self.kinds: list[str] = []
        self.attached = 0

    def reset(self) -> None:
        """Start counting from zero."""
        self.count = 0
        self.kinds.clear()

    def attach(self, conn: Any) -> None:
        """Count what `conn` (an asyncpg connection or pool proxy) sends from now on."""
        raw = getattr(conn, "_con", None) or conn
        transport = raw._transport
        if getattr(transport, "_sc_counted", False):
            return
        write, writelines = transport.write, transport.writelines

        def counting_write(data: Any) -> None:
            self._scan(bytes(data))
            write(data)

        def counting_writelines(chunks: Any) -> None:
            chunks = list(chunks)
            for chunk in chunks:
                self._scan(bytes(chunk))
            writelines(chunks)

        transport.write = counting_write
        transport.writelines = counting_writelines
        transport._sc_counted = True
        self.attached += 1

    async def init(self, conn: Any) -> None:
        """asyncpg pool ``init`` hook."""
        self.attach(conn)

    def _scan(self, data: bytes) -> None:
        offset = 0
        while offset < len(data):
            kind = data[offset : offset + 1]
            length = int.from_bytes(data[offset + 1 : offset + 5], "big")
            assert length >= 4 and offset + 1 + length <= len(data), "unaligned protocol write"
            if kind in (b"S", b"Q"):
                self.count += 1
                self.kinds.append("sync" if kind == b"S" else "query")
            offset += 1 + length


# -- a Sanic server in this process ---------------------------------------------------------


@contextlib.asynccontextmanager
async def served(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """Serve `app` in this event loop (see `serving.serving`); yield a client for it."""
    async with (
        serving(app) as address,
        httpx.AsyncClient(base_url=f"http://{address}", timeout=30) as client,
    ):
        yield client


# -- a Sanic server in a subprocess ---------------------------------------------------------


class AppServer:
    """``pg_app.py`` served by Sanic with `workers` worker processes on a free port.

    Args:
        env: ``PGAPP_*`` settings for the app (see pg_app.py).
        workers: Sanic worker processes.
    """

    def __init__(self, env: dict[str, str], workers: int) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workers = workers
        self.env = {**os.environ, **env, "PGAPP_PORT": str(self.port)}
        self.env["PGAPP_WORKERS"] = str(workers)
        self.log = Path(tempfile.mkdtemp(prefix="sc-pgapp-")) / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def _spawn(self) -> subprocess.Popen[bytes]:
        with self.log.open("wb") as log:  # the child keeps its own copy of the descriptor
            return subprocess.Popen(
                [sys.executable, str(APP_SCRIPT)],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    async def __aenter__(self) -> AppServer:
        self.proc = await asyncio.to_thread(self._spawn)
        deadline = time.monotonic() + 90
        async with httpx.AsyncClient(timeout=2) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                with contextlib.suppress(httpx.HTTPError):
                    # Ready when every worker has started, not when the first one answers: a
                    # worker still binding its socket can refuse the test's next connection.
                    if (
                        await client.get(f"{self.url}/ping")
                    ).status_code == 200 and self._all_started():
                        return self
                await asyncio.sleep(0.2)
        self.stop()
        pytest.fail(f"the app server did not start; its log:\n{self.output()}")

    def _all_started(self) -> bool:
        return self.output().count("Starting worker [") >= self.workers

    async def __aexit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop the server (SIGINT, then SIGKILL of its process group)."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        kill_group(proc.pid)  # whatever outlived the main process (workers, tracker)

    def output(self) -> str:
        """The server's log so far."""
        return self.log.read_text(errors="replace")


# -- a throwaway PostgreSQL cluster -----------------------------------------------------------


def _pg_bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


class Cluster:
    """A PostgreSQL cluster of its own in a temporary directory, on a free port.

    Tests that stop and restart PostgreSQL use this, never the shared server.
    initdb refuses to run as root, so as root it runs as the ``postgres`` user.
    """

    def __init__(self) -> None:
        initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
        if initdb is None or pg_ctl is None:
            if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
                pytest.fail("PostgreSQL server binaries (initdb, pg_ctl) not found")
            pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found")
        self.initdb, self.pg_ctl = initdb, pg_ctl
        self.base = Path(tempfile.mkdtemp(prefix="sc-pgcluster-"))
        self.data = self.base / "data"
        self.port = free_port()
        self.dsn = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            shutil.chown(self.base, "postgres", "postgres")

    def _run(self, *args: str) -> None:
        command = ["runuser", "-u", "postgres", "--", *args] if self._as_postgres else list(args)
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            log = self.base / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{args[0]} failed: {result.stdout}{result.stderr}{tail}")

    def init(self) -> None:
        """initdb (trust authentication, no fsync: it is thrown away)."""
        self._run(self.initdb, "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        options = (
            f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c max_connections=40 -c shared_buffers=16MB"
        )
        self._run(
            self.pg_ctl,
            "-D",
            str(self.data),
            "-l",
            str(self.base / "server.log"),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        )
        # pg_ctl leaves the server running on its own (adopted by the test run): it
        # belongs to whoever holds this cluster, often a fixture broader than one test.
        owned_by_fixture(int((self.data / "postmaster.pid").read_text().split()[0]))

    def running(self) -> bool:
        """Whether the server is up."""
        command = [self.pg_ctl, "-D", str(self.data), "status"]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, capture_output=True, timeout=30).returncode == 0

    def stop(self) -> None:
        """Fast shutdown: clients are disconnected, transactions rolled back."""
        self._run(self.pg_ctl, "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop")

    def destroy(self) -> None:
        """Stop the server if running and delete its files."""
        with contextlib.suppress(Exception):
            self._run(self.pg_ctl, "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.base, ignore_errors=True)


@contextlib.contextmanager
def throwaway_cluster() -> Iterator[Cluster]:
    """A started `Cluster`, destroyed afterwards."""
    cluster = Cluster()
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()


# -- PgBouncer in front of the shared server ---------------------------------------------------


class PgBouncer:
    """Debian's ``pgbouncer`` on a free loopback port, pooling into the shared server.

    Its configuration and log live in a temporary directory; trust authentication
    for `user` (the shared server trusts loopback too). As root it runs as the
    ``postgres`` user (PgBouncer refuses to run as root).

    Args:
        upstream: The ``postgresql://`` DSN of the server to pool into.
        pool_mode: ``transaction``, ``session`` or ``statement``.
        pool_size: Server connections per database and user (fewer than the
            clients' connections, so that clients really share them).
    """

    def __init__(self, upstream: str, *, pool_mode: str = "transaction", pool_size: int = 6):
        binary = shutil.which("pgbouncer") or (
            "/usr/sbin/pgbouncer" if Path("/usr/sbin/pgbouncer").exists() else None
        )
        if binary is None:
            message = "pgbouncer not found (apt-get install pgbouncer; .ci/run installs it)"
            if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
                pytest.fail(message)
            pytest.skip(message)
        self.binary = binary
        url = make_url(upstream)
        self.user = url.username or "postgres"
        self.database = url.database or "postgres"
        self.port = free_port()
        self.base = Path(tempfile.mkdtemp(prefix="sc-pgbouncer-"))
        self.dsn = f"postgresql://{self.user}@127.0.0.1:{self.port}/{self.database}"
        (self.base / "users.txt").write_text(f'"{self.user}" ""\n')
        (self.base / "pgbouncer.ini").write_text(
            f"[databases]\n"
            f"{self.database} = host={url.host or '127.0.0.1'} port={url.port or 5432} "
            f"dbname={self.database}\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\nunix_socket_dir =\n"
            f"auth_type = trust\nauth_file = {self.base / 'users.txt'}\n"
            f"pool_mode = {pool_mode}\ndefault_pool_size = {pool_size}\n"
            "max_client_conn = 500\n"
            f"logfile = {self.base / 'pgbouncer.log'}\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start it and wait until it accepts connections."""
        command = [self.binary, str(self.base / "pgbouncer.ini")]
        if os.geteuid() == 0:
            shutil.chown(self.base, "postgres")
            for path in self.base.iterdir():
                shutil.chown(path, "postgres")
            command[1:1] = ["-u", "postgres"]
        self.proc = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=1),
            ):
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"pgbouncer did not start: {self.log()}")

    def stop(self) -> None:
        """Stop it (SIGTERM, then SIGKILL) and reap it."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait(timeout=10)

    def remove(self) -> None:
        """Stop it and delete its directory."""
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)

    def log(self) -> str:
        """Its log so far."""
        path = self.base / "pgbouncer.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""


@contextlib.contextmanager
def pgbouncer(upstream: str, **options: Any) -> Iterator[PgBouncer]:
    """A started `PgBouncer`, stopped and its files deleted afterwards."""
    bouncer = PgBouncer(upstream, **options)
    try:
        bouncer.start()
        yield bouncer
    finally:
        bouncer.remove()
