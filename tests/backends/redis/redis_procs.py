"""Processes the Redis tests own: private redis-server instances, clusters, and app servers.

Everything here runs on spare loopback ports picked at run time and is killed
by the fixture that started it; the shared Redis at 6379 is never stopped.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import httpx
import pytest
from ports import free_port
from processes import kill_group

HOST = "127.0.0.1"


def in_ci() -> bool:
    """True when CI=true: missing tools fail instead of skipping."""
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require_binary(name: str) -> str:
    """The path of executable `name`; skip the test (fail under CI) if it is missing."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (the Debian package redis-server provides it)"
        if in_ci():
            pytest.fail(f"{message}; CI=true: these tests must run")
        pytest.skip(f"{message}; set CI=true to turn this skip into a failure")
    return path


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """Ask Linux to SIGKILL this child if the test run dies, so no server is orphaned."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def redis_ping(port: int, timeout: float = 0.5) -> bytes | None:
    """The reply to PING on `port`, or None if nothing answers."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64)
    except OSError:
        return None


class RedisServer:
    """A redis-server process owned by a test, in its own directory.

    Args:
        directory: Where its data, config and log go.
        port: The TCP port on 127.0.0.1.
        extra: More ``--option value`` arguments.
    """

    def __init__(self, directory: Path, port: int, extra: Sequence[str] = ()) -> None:
        self.binary = require_binary("redis-server")
        self.directory = directory
        self.port = port
        self.extra = list(extra)
        self.process: subprocess.Popen[bytes] | None = None
        directory.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def start(self, timeout: float = 15.0) -> None:
        args = [
            self.binary,
            "--port", str(self.port),
            "--bind", HOST,
            "--dir", str(self.directory),
            "--daemonize", "no",
            "--logfile", str(self.directory / "redis.log"),
            *self.extra,
        ]  # fmt: skip
        self.process = subprocess.Popen(args, preexec_fn=_die_with_parent)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            reply = redis_ping(self.port)
            if reply is not None and reply.startswith((b"+PONG", b"-NOAUTH")):
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        log = (self.directory / "redis.log").read_text(errors="replace")[-2000:]
        self.stop()
        raise RuntimeError(f"redis-server on port {self.port} did not start:\n{log}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        """Stop the server (SIGTERM: a clean shutdown that writes its data) and wait."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(sig)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def cli(port: int, *args: str, timeout: float = 30.0) -> str:
    """Run ``redis-cli -p port args...`` and return its output."""
    binary = require_binary("redis-cli")
    done = subprocess.run(
        [binary, "-h", HOST, "-p", str(port), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
    )
    return done.stdout


class RedisCluster:
    """A Redis Cluster of `size` primaries (no replicas) on spare ports, in `directory`."""

    def __init__(self, directory: Path, size: int = 3) -> None:
        self.nodes = []
        for i in range(size):
            home = directory / f"node{i}"
            extra = [
                "--cluster-enabled", "yes",
                "--cluster-config-file", str(home / "nodes.conf"),
                "--cluster-node-timeout", "5000",
                "--save", "",
                "--appendonly", "no",
            ]  # fmt: skip
            self.nodes.append(RedisServer(home, free_port(with_bus=True), extra))

    @property
    def url(self) -> str:
        return f"redis+cluster://{HOST}:{self.nodes[0].port}"

    def start(self, timeout: float = 60.0) -> None:
        try:
            for node in self.nodes:
                node.start()
            addresses = [f"{HOST}:{node.port}" for node in self.nodes]
            cli(
                self.nodes[0].port,
                "--cluster", "create", *addresses,
                "--cluster-replicas", "0",
                "--cluster-yes",
            )  # fmt: skip
            deadline = time.monotonic() + timeout
            while not all("cluster_state:ok" in cli(n.port, "cluster", "info") for n in self.nodes):
                if time.monotonic() > deadline:
                    raise RuntimeError("the test Redis Cluster did not reach cluster_state:ok")
                time.sleep(0.2)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        for node in self.nodes:
            node.stop(signal.SIGKILL)


class AppServer:
    """`tests/backends/redis/redis_app.py` run as a real Sanic server (several workers).

    Args:
        directory: Where its log goes.
        env: ``SCT_*`` settings of the app (see the app module).
        workers: Sanic worker processes.
    """

    APP = Path(__file__).with_name("redis_app.py")

    def __init__(self, directory: Path, env: dict[str, str], workers: int = 4) -> None:
        self.port = free_port()
        self.workers = workers
        self.log = directory / f"app-{self.port}.log"
        self.env = {
            **os.environ,
            **env,
            "SCT_PORT": str(self.port),
            "SCT_WORKERS": str(workers),
            "PYTHONUNBUFFERED": "1",
        }
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self, timeout: float = 90.0) -> None:
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(self.APP)],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                with socket.create_connection((HOST, self.port), timeout=1) as sock:
                    sock.sendall(b"GET /plain HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                    if sock.recv(64).startswith(b"HTTP/1.1 200") and self._all_started():
                        return
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"the test app did not start:\n{self.tail()}")

    def _all_started(self) -> bool:
        """Every worker has logged its start (one answering is not all of them serving)."""
        return self.tail(n=10**7).count("Starting worker [") >= self.workers

    def tail(self, n: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-n:] if self.log.exists() else ""

    def stop(self, timeout: float = 20.0) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        # SIGINT to the main process only: it stops its workers in order (a signal to the
        # whole group would interrupt the workers' own clean-up).
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        kill_group(process.pid)  # whatever outlived the main process (workers, tracker)


def session_cookie(response: httpx.Response) -> str:
    """The ``Cookie`` header that carries the session the response set."""
    for header in response.headers.get_list("set-cookie"):
        name, _, rest = header.partition("=")
        if name.strip() == "session":
            return f"session={rest.split(';', 1)[0]}"
    raise AssertionError(f"no session cookie in {response.headers!r}")


def app_env(redis_url: str, prefix: str, **more: str) -> dict[str, str]:
    """The environment of `redis_app.py` for a store, a key prefix and more ``SCT_*``."""
    return {"SCT_REDIS_URL": redis_url, "SCT_PREFIX": prefix, **more}
