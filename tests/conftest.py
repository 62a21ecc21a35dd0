"""Fixtures shared by the core and every backend's tests.

Service checks use plain sockets so that this module imports neither ``redis`` nor
``asyncpg``: the ``core`` nox session installs neither.
"""

from __future__ import annotations

import os
import secrets
import socket
import struct
from collections.abc import Callable

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
