"""Fixtures shared by the core and every backend's tests.

Service checks use plain sockets so that this module imports neither ``redis`` nor
``asyncpg``: the ``core`` nox session installs neither.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import struct
from collections.abc import Callable, Iterator

import pytest

# The conformance suite's asserts get pytest's rewriting (helpful failure messages).
pytest_plugins = ["sanic_cookies.testing"]

# tests/fixtures/ holds installable sample packages with their own test suites; they run
# through tests/core/test_third_party_backend.py, not by being collected from here.
collect_ignore = ["fixtures"]

#: Random per-run id: fresh Redis key prefixes and PostgreSQL schemas for every run.
RUN_ID: str = secrets.token_hex(4)

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
POSTGRES_HOST, POSTGRES_PORT, POSTGRES_DB = "127.0.0.1", 5432, "test"
POSTGRES_USERS = ("postgres", "root")
_TIMEOUT = 2.0


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require_service(name: str, check: Callable[[], str | None]) -> None:
    """Fail (under ``CI=true``) or skip the test when a service is unreachable.

    ``check`` returns ``None`` when the service is usable, otherwise a short reason.
    Exceptions raised by ``check`` count as unreachable.
    """
    try:
        problem = check()
    except Exception as exc:
        problem = f"{type(exc).__name__}: {exc}"
    if problem is None:
        return
    message = f"{name} is not available: {problem}"
    if _in_ci():
        pytest.fail(f"{message} (CI=true: services are required; .ci/run starts them)")
    pytest.skip(f"{message} (set CI=true to turn this skip into a failure)")


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("connection closed by server")
        data += chunk
    return data


def _redis_check() -> str | None:
    with socket.create_connection((REDIS_HOST, REDIS_PORT), timeout=_TIMEOUT) as sock:
        sock.sendall(b"PING\r\n")
        reply = sock.recv(64)
    if not reply.startswith(b"+PONG"):
        return f"unexpected reply to PING at {REDIS_HOST}:{REDIS_PORT}: {reply!r}"
    return None


def _postgres_login(user: str) -> str | None:
    """Send a protocol-3 StartupMessage; ``None`` if the server accepts ``user`` without
    a password (trust auth), else the reason."""
    params = b"".join(
        key.encode() + b"\0" + value.encode() + b"\0"
        for key, value in (("user", user), ("database", POSTGRES_DB))
    )
    body = struct.pack("!i", 196608) + params + b"\0"
    with socket.create_connection((POSTGRES_HOST, POSTGRES_PORT), timeout=_TIMEOUT) as sock:
        sock.sendall(struct.pack("!i", len(body) + 4) + body)
        # Trust auth sends AuthenticationOk before checking the role and database, so read
        # on until ReadyForQuery ("Z") or an ErrorResponse ("E").
        while True:
            kind = _recv_exact(sock, 1)
            (length,) = struct.unpack("!i", _recv_exact(sock, 4))
            payload = _recv_exact(sock, length - 4)
            if kind == b"Z":
                sock.sendall(b"X" + struct.pack("!i", 4))  # Terminate
                return None
            if kind == b"E":
                fields = {
                    f[:1].decode(): f[1:].decode(errors="replace")
                    for f in payload.split(b"\0")
                    if f
                }
                return fields.get("M", "login refused")
            if kind == b"R" and struct.unpack("!i", payload[:4])[0] != 0:
                return "server asks for a password (trust auth expected)"


def _postgres_user() -> tuple[str | None, str]:
    reasons = []
    for user in POSTGRES_USERS:
        problem = _postgres_login(user)
        if problem is None:
            return user, ""
        reasons.append(f"user {user!r}: {problem}")
    return None, "; ".join(reasons)


@pytest.fixture(scope="session")
def run_id() -> str:
    return RUN_ID


@pytest.fixture(scope="session")
def redis_url() -> str:
    """URL of the test Redis server; skips (or fails under CI) if it is down."""
    require_service(f"Redis at {REDIS_HOST}:{REDIS_PORT}", _redis_check)
    return f"redis://{REDIS_HOST}:{REDIS_PORT}/0"


@pytest.fixture(scope="session")
def redis_key_prefix() -> str:
    """Key prefix no earlier run has used: ``sctest:<RUN_ID>:``."""
    return f"sctest:{RUN_ID}:"


@pytest.fixture(scope="session")
def postgres_dsn() -> str:
    """DSN of the test database (user ``postgres``, else ``root``); skips or fails if down."""
    found: list[str] = []

    def check() -> str | None:
        user, reason = _postgres_user()
        if user is None:
            return reason
        found.append(user)
        return None

    require_service(f"PostgreSQL at {POSTGRES_HOST}:{POSTGRES_PORT}", check)
    return f"postgresql://{found[0]}@{POSTGRES_HOST}:{POSTGRES_PORT}/{POSTGRES_DB}"


@pytest.fixture(scope="session")
def postgres_schema() -> str:
    """Schema name no earlier run has used: ``sctest_<RUN_ID>``."""
    return f"sctest_{RUN_ID}"


# -- every process a test starts is reaped ----------------------------------------------------

#: How long a process a test stopped may take to finish exiting before it counts as left over.
_EXIT_GRACE = 10.0
_PR_SET_CHILD_SUBREAPER = 36


def _become_subreaper() -> None:
    """Adopt orphaned descendants (Linux): a worker whose parent died becomes our child.

    Without this, a grandchild left behind (a multi-worker server's worker whose main
    process was killed) is adopted by init and no check here would see it.
    """
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _children() -> dict[int, str]:
    """This process's children from /proc: pid -> state letter ("Z": exited, not reaped)."""
    me, found = os.getpid(), {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue  # gone meanwhile
        # The command name may hold spaces and parentheses; the fields after its last ")"
        # are fixed: state, then the parent's pid.
        state, ppid = stat[stat.rindex(b")") + 2 :].split()[:2]
        if int(ppid) == me:
            found[int(entry)] = state.decode()
    return found


def _command_line(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip() or "?"
    except OSError:
        return "?"


def _left_running(before: set[int] | frozenset[int]) -> dict[int, str]:
    """Children started since `before` that are still running after a bounded grace.

    Exited ones are reaped here (a zombie, or an orphan adopted by `_become_subreaper`,
    has nobody else to wait for it).
    """
    import multiprocessing
    import time

    multiprocessing.active_children()  # joins multiprocessing children that have ended
    if not os.path.isdir("/proc"):
        return {p.pid or 0: p.name for p in multiprocessing.active_children()}
    deadline = time.monotonic() + _EXIT_GRACE
    while True:
        running = {}
        for pid, state in _children().items():
            if pid in before:
                continue
            if state == "Z":
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, os.WNOHANG)
            else:
                running[pid] = _command_line(pid)
        if not running or time.monotonic() > deadline:
            return running
        time.sleep(0.05)  # polling for exits, bounded by the grace above


def _kill(pids: dict[int, str]) -> None:
    """Stop what a test left behind, so that one leak fails one test, not every later one."""
    import signal

    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    for pid in pids:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)


def _report(pids: dict[int, str], where: str) -> str:
    lines = "\n".join(f"  pid {pid}: {cmd}" for pid, cmd in pids.items())
    return f"{len(pids)} child process(es) outlived {where} (killed now):\n{lines}"


@pytest.fixture(scope="session", autouse=True)
def _no_process_outlives_the_run() -> Iterator[None]:
    """Fail the run if any child process is still running once every fixture is done."""
    _become_subreaper()
    before = set(_children()) if os.path.isdir("/proc") else set()
    yield
    left = _left_running(before)
    if left:
        _kill(left)
        pytest.fail(_report(left, "the test run"))


@pytest.fixture(autouse=True)
def _no_process_outlives_its_test() -> Iterator[None]:
    """Fail a test whose child processes (or orphaned grandchildren) outlive it.

    Processes of broader-scoped fixtures (a module's server) exist before the test's
    own fixtures start and are not counted, nor are those a test started for such a
    fixture and declared with `processes.owned_by_fixture` (a restarted database).
    """
    from processes import fixture_owned

    before = set(_children()) if os.path.isdir("/proc") else set()
    yield
    left = _left_running(before | fixture_owned())
    if left:
        _kill(left)
        pytest.fail(_report(left, "their test"))
