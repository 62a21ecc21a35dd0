"""The command-line tool: ``python -m sanic_cookies`` / ``sanic-cookies``."""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Mapping
from typing import Any, ClassVar, Self

import pytest
from environment import everything_installed, require_module
from ports import free_port

from sanic_cookies import Backend, SessionLock, StoredSession, register
from sanic_cookies._cli import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, main
from sanic_cookies._ids import store_key
from sanic_cookies.backends.memory import MemoryBackend


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# -- help and usage -----------------------------------------------------------------------


def test_help_lists_commands_and_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == EXIT_OK
    for command in ("keygen", "ddl", "cleanup", "check"):
        assert command in out
    assert "exit codes" in out and "2  usage error" in out


@pytest.mark.parametrize("command", ["keygen", "ddl", "cleanup", "check"])
def test_each_command_has_help(capsys: pytest.CaptureFixture[str], command: str) -> None:
    code, out, _ = run(capsys, command, "--help")
    assert code == EXIT_OK
    assert f"usage: sanic-cookies {command}" in out


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["frobnicate"],
        ["keygen", "--count", "0"],
        ["keygen", "--count", "many"],
        ["check", "--timeout", "-1", "--backend", "memory://"],
        ["check", "--option", "no-equals-sign", "--backend", "memory://"],
    ],
)
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    code, _, err = run(capsys, *argv)
    assert code == EXIT_USAGE
    assert "error" in err


def test_backend_commands_need_a_url(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SESSION_BACKEND", raising=False)
    code, _, err = run(capsys, "check")
    assert code == EXIT_USAGE
    assert "--backend URL or set SESSION_BACKEND" in err


def test_backend_url_comes_from_the_environment(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SESSION_BACKEND", "memory://")
    code, out, _ = run(capsys, "check")
    assert code == EXIT_OK
    assert out.startswith("memory://")


def test_python_dash_m_and_console_script() -> None:
    """Both ways in run the same tool in a fresh process."""
    done = subprocess.run(
        [sys.executable, "-m", "sanic_cookies", "keygen"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert len(base64.urlsafe_b64decode(done.stdout.strip())) == 32
    done = subprocess.run(
        [sys.executable, "-m", "sanic_cookies", "nope"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == EXIT_USAGE
    script = shutil.which("sanic-cookies")
    if script is None:
        pytest.skip("the sanic-cookies console script is not on PATH in this environment")
    done = subprocess.run([script, "keygen", "-n", "2"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.split()) == 2


# -- keygen -------------------------------------------------------------------------------


def test_keygen_prints_fernet_format_keys(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "keygen", "--count", "5")
    assert code == EXIT_OK
    keys = out.split()
    assert len(keys) == 5 == len(set(keys))
    for key in keys:
        assert len(key) == 44
        assert len(base64.urlsafe_b64decode(key)) == 32


def test_keygen_keys_are_accepted_by_fernet(capsys: pytest.CaptureFixture[str]) -> None:
    fernet = require_module("cryptography.fernet", "cryptography")
    _, out, _ = run(capsys, "keygen")
    f = fernet.Fernet(out.strip())
    assert f.decrypt(f.encrypt(b"x")) == b"x"


# -- ddl ----------------------------------------------------------------------------------


def test_ddl_without_the_postgres_package_names_the_install_command(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # None in sys.modules makes the import fail as if the package were absent.
    monkeypatch.setitem(sys.modules, "sanic_cookies.backends.postgres", None)
    code, out, err = run(capsys, "ddl")
    assert code == EXIT_FAILURE
    assert out == ""
    assert 'pip install "sanic-cookies[postgres]"' in err
    assert len(err.strip().splitlines()) == 1


def _postgres_ddl() -> Any:
    postgres = require_module("sanic_cookies.backends.postgres", "sanic-cookies-postgres")
    return postgres.ddl


def test_ddl_prints_the_backends_table(capsys: pytest.CaptureFixture[str]) -> None:
    ddl = _postgres_ddl()
    code, out, _ = run(capsys, "ddl", "--table", "web_sessions", "--schema", "app")
    assert code == EXIT_OK
    assert out.strip() == ddl(table="web_sessions", schema="app").strip()
    assert "CREATE TABLE" in out.upper() and "web_sessions" in out


async def test_ddl_output_creates_a_working_table(postgres_dsn: str, run_id: str) -> None:
    """The printed DDL runs on a real server (in a schema of its own, dropped after)."""
    ddl = _postgres_ddl()
    asyncpg = require_module("asyncpg", "asyncpg")
    schema = f"sctest_cli_{run_id}"
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "sanic_cookies", "ddl", "--schema", schema],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ddl(table="sessions", schema=schema).strip()
    conn = await asyncpg.connect(postgres_dsn)
    try:
        await conn.execute(f'CREATE SCHEMA "{schema}"')
        await conn.execute(done.stdout)
        assert await conn.fetchval("SELECT to_regclass($1)", f"{schema}.sessions") is not None
    finally:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()


# -- check --------------------------------------------------------------------------------


def test_check_memory_reports_each_step(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "check", "--backend", "memory://")
    assert code == EXIT_OK, err
    lines = out.splitlines()
    assert lines[0] == "memory:// (memory)"
    steps = {line.split()[0] for line in lines[1:-1]}
    assert {"open", "save", "load", "touch", "lock", "delete", "user"} <= steps
    assert all(line.rstrip().endswith(" ms") for line in lines[1:-1])
    assert lines[-1] == "ok"


def test_check_passes_backend_options(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "check", "--backend", "memory://", "-o", "bogus=1")
    assert code == EXIT_FAILURE
    assert "bogus" in err
    code, _, err = run(capsys, "check", "--backend", "memory://", "-o", "max_entries=10")
    assert code == EXIT_OK, err


def test_a_mistyped_option_is_not_echoed(capsys: pytest.CaptureFixture[str]) -> None:
    # "password:..." for "password=...": the value may be a secret.
    code, out, err = run(capsys, "check", "--backend", "memory://", "-o", "password:Tr0ub4dor")
    assert code != EXIT_OK
    assert "NAME=VALUE" in err and "Tr0ub4dor" not in out + err


@pytest.mark.parametrize(
    "backend", ["host=db password=Tr0ub4dor dbname=app", "db:6379,password=Tr0ub4dor"]
)
def test_a_connection_string_that_is_not_a_url_is_not_echoed(
    capsys: pytest.CaptureFixture[str], backend: str
) -> None:
    code, out, err = run(capsys, "check", "--backend", backend)
    assert code != EXIT_OK
    assert "Tr0ub4dor" not in out + err


def test_check_unknown_scheme_fails_with_install_hint(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "check", "--backend", f"nosuch{uuid.uuid4().hex[:6]}://x")
    assert code == EXIT_FAILURE
    assert out == ""
    assert "No session backend is installed" in err
    assert len(err.strip().splitlines()) == 1


class _FlakyBackend(MemoryBackend):
    """A memory backend whose chosen operation breaks (raises, hangs or lies)."""

    failure: ClassVar[str] = ""
    saved_keys: ClassVar[list[str]] = []

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        return cls()

    async def save(self, key: str, value: bytes, ttl: float, **kw: Any) -> bool:
        type(self).saved_keys.append(key)
        if self.failure == "save-raises":
            raise ConnectionRefusedError("connection refused")
        if self.failure == "save-hangs":
            await asyncio.Event().wait()  # never returns: the check's --timeout ends it
        return await super().save(key, value, ttl, **kw)

    async def load(self, key: str) -> StoredSession | None:
        stored = await super().load(key)
        if self.failure == "load-lies" and stored is not None:
            return StoredSession(b"something else", stored.expires_at)
        return stored

    async def delete(self, key: str) -> None:
        if self.failure != "delete-noop":
            await super().delete(key)

    async def list_user_sessions(self, user_id: str) -> Mapping[str, StoredSession]:
        if self.failure == "index-empty":
            return {}
        return await super().list_user_sessions(user_id)


@pytest.fixture
def flaky() -> type[_FlakyBackend]:
    scheme = f"flaky{uuid.uuid4().hex[:8]}"
    register(scheme, _FlakyBackend)
    _FlakyBackend.saved_keys = []
    _FlakyBackend.url = f"{scheme}://"  # type: ignore[attr-defined]
    return _FlakyBackend


@pytest.mark.parametrize(
    ("failure", "message"),
    [
        ("save-raises", "save on memory failed: ConnectionRefusedError: connection refused"),
        ("save-hangs", "save on memory timed out after 0.3s"),
        ("load-lies", "load on memory did not return what was saved"),
        ("delete-noop", "delete on memory left the session in place"),
        ("index-empty", "list_user_sessions on memory did not list the session"),
    ],
)
def test_check_failures_exit_1_with_one_line(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    flaky: type[_FlakyBackend],
    failure: str,
    message: str,
) -> None:
    monkeypatch.setattr(_FlakyBackend, "failure", failure)
    code, out, err = run(capsys, "check", "--timeout", "0.3", "--backend", flaky.url)  # type: ignore[attr-defined]
    assert code == EXIT_FAILURE
    assert out == ""
    assert err.strip() == f"sanic-cookies: error: {message}"


def test_check_never_prints_or_logs_the_session_id(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, flaky: type[_FlakyBackend]
) -> None:
    sid = "A" * 43
    monkeypatch.setattr("sanic_cookies._cli.new_session_id", lambda: sid)
    code, out, err = run(capsys, "-v", "check", "--backend", flaky.url)  # type: ignore[attr-defined]
    assert code == EXIT_OK, err
    assert flaky.saved_keys and set(flaky.saved_keys) == {store_key(sid)}
    assert "check: test session" in err  # verbose logging did run
    for secret in (sid, store_key(sid)):
        assert secret not in out and secret not in err
    assert store_key(sid)[:8] in err  # the short hash is what logs show


def test_check_reaches_a_dead_server_quickly(capsys: pytest.CaptureFixture[str]) -> None:
    _real_backend_or_skip("redis://127.0.0.1:1/0")
    port = free_port()  # nobody listens on it
    code, out, err = run(
        capsys, "check", "--timeout", "3", "--backend", f"redis://127.0.0.1:{port}/0"
    )
    assert code == EXIT_FAILURE
    assert out == ""
    assert err.startswith("sanic-cookies: error: ") and len(err.strip().splitlines()) == 1
    assert "save on redis failed: ConnectionError" in err  # as docs/cli.md shows


async def test_check_of_a_store_that_never_answers_fails_at_open(
    capsys: pytest.CaptureFixture[str],
) -> None:
    _real_backend_or_skip("redis://127.0.0.1:1/0")

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the client gives up

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        code, _, err = await asyncio.to_thread(
            run, capsys, "check", "--timeout", "1", "--backend", f"redis://127.0.0.1:{port}/0"
        )
    finally:
        server.close()
    assert code == EXIT_FAILURE
    assert err.strip() == "sanic-cookies: error: open on redis timed out after 1s"


def test_cleanup_of_cookie_without_keys_exits_1_saying_so(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _real_backend_or_skip("cookie://", keys=[base64.urlsafe_b64encode(os.urandom(32)).decode()])
    monkeypatch.delenv("SESSION_KEYS", raising=False)
    code, out, err = run(capsys, "cleanup", "--backend", "cookie://")
    assert code == EXIT_FAILURE and out == ""
    assert "needs encryption keys" in err and "SESSION_KEYS" in err


def _real_backend_or_skip(url: str, **options: Any) -> None:
    """Skip when the backend's distribution is not installed (the ``core`` nox session);
    once it is installed, a backend that cannot even be built fails the test."""
    from sanic_cookies import BackendNotFound, backend_from_url

    try:
        backend_from_url(url, **options)
    except BackendNotFound as exc:
        if everything_installed():
            pytest.fail(f"{exc} (every distribution should be installed here)")
        pytest.skip(str(exc))


def test_check_real_redis(
    capsys: pytest.CaptureFixture[str], redis_url: str, redis_key_prefix: str
) -> None:
    _real_backend_or_skip(redis_url)
    code, out, err = run(capsys, "check", "--backend", redis_url)
    assert code == EXIT_OK, err
    assert out.splitlines()[-1] == "ok"
    assert "lock" in out


async def _drop_schema(dsn: str, schema: str) -> None:
    asyncpg = require_module("asyncpg", "asyncpg")
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


@pytest.mark.parametrize("scheme", ["postgresql", "postgresql+asyncpg"])
def test_check_real_postgres(
    capsys: pytest.CaptureFixture[str], postgres_dsn: str, run_id: str, scheme: str
) -> None:
    url = scheme + "://" + postgres_dsn.split("://", 1)[1]
    _real_backend_or_skip(url)
    schema = f"sctest_cli_{run_id}_{uuid.uuid4().hex[:6]}"
    try:
        code, out, err = run(
            capsys, "check", "--backend", url, "-o", f"schema={schema}", "-o", "create_table=true"
        )
    finally:
        asyncio.run(_drop_schema(postgres_dsn, schema))
    assert code == EXIT_OK, err
    assert {"lock", "user"} <= {line.split()[0] for line in out.splitlines()[1:-1]}
    assert out.splitlines()[-1] == "ok"


def test_check_postgres_without_table_fails_clearly(
    capsys: pytest.CaptureFixture[str], postgres_dsn: str, run_id: str
) -> None:
    _real_backend_or_skip(postgres_dsn)
    code, out, err = run(
        capsys, "check", "--backend", postgres_dsn, "-o", f"schema=sctest_cli_missing_{run_id}"
    )
    assert code == EXIT_FAILURE
    assert out == ""
    last = err.strip().splitlines()[-1]
    # The backend refuses to open on a missing table, saying how to create it.
    assert last.startswith("sanic-cookies: error: open on postgres failed: ConfigurationError")
    assert "does not exist" in last and "python -m sanic_cookies ddl" in last


def test_cleanup_real_postgres(
    capsys: pytest.CaptureFixture[str], postgres_dsn: str, run_id: str
) -> None:
    _real_backend_or_skip(postgres_dsn)
    schema = f"sctest_cli_{run_id}_{uuid.uuid4().hex[:6]}"
    try:
        code, out, err = run(
            capsys,
            "cleanup",
            "--backend",
            f"{postgres_dsn}?schema={schema}&create_table=true",
        )
    finally:
        asyncio.run(_drop_schema(postgres_dsn, schema))
    assert code == EXIT_OK, err
    assert out.strip().endswith("removed 0 expired session(s)")


def test_check_cookie_backend(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    key = base64.urlsafe_b64encode(os.urandom(32)).decode()
    url = "cookie://"
    _real_backend_or_skip(url, keys=[key])
    code, out, err = run(capsys, "check", "--backend", url, "-o", f'keys=["{key}"]')
    assert code == EXIT_OK, err
    assert "reject tampered" in out
    # Keys from the environment, as an app takes them from SESSION_KEYS.
    monkeypatch.setenv("SESSION_KEYS", key)
    code, out, err = run(capsys, "check", "--backend", url)
    assert code == EXIT_OK, err
    monkeypatch.delenv("SESSION_KEYS")
    code, out, err = run(capsys, "check", "--backend", url)
    assert code == EXIT_FAILURE
    assert "keygen" in err or "keys" in err


# -- cleanup ------------------------------------------------------------------------------


def test_cleanup_memory_explains_why_not(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "cleanup", "--backend", "memory://")
    assert code == EXIT_FAILURE
    assert out == ""
    assert "inside each server process" in err


class _NoCleanup(Backend):
    """A shared-store backend with no cleanup capability (like Redis: native expiry)."""

    expires_entries_itself: ClassVar[bool] = True

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        return cls()

    async def load(self, key: str) -> StoredSession | None:
        return None

    async def save(self, key: str, value: bytes, ttl: float, **kw: Any) -> bool:
        return True

    async def delete(self, key: str) -> None:
        return None

    async def touch(self, key: str, ttl: float) -> bool:
        return False

    def lock(self, key: str, *, timeout: float, lease: float) -> SessionLock:
        raise NotImplementedError


class _WithCleanup(_NoCleanup):
    opened: ClassVar[list[str]] = []

    async def open(self) -> None:
        self.opened.append("open")

    async def close(self) -> None:
        self.opened.append("close")

    async def cleanup(self) -> int:
        return 3


def test_cleanup_of_a_store_with_native_expiry_is_a_no_op(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Backend.cleanup's default (a store that expires entries itself): nothing to do, exit 0.
    scheme = f"nocleanup{uuid.uuid4().hex[:6]}"
    register(scheme, _NoCleanup)
    code, out, err = run(capsys, "cleanup", "--backend", f"{scheme}://")
    assert code == EXIT_OK, err
    assert out.strip() == f"{scheme}://: nothing to remove (_NoCleanup expires sessions by itself)"


class _ForgotCleanup(_NoCleanup):
    """A store that keeps expired entries but has no cleanup() (review of issue 16, F3)."""

    expires_entries_itself: ClassVar[bool] = False


def test_cleanup_of_a_store_that_keeps_expired_entries_needs_a_cleanup(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # "nothing to remove" would be a lie: the store never drops anything by itself.
    scheme = f"forgot{uuid.uuid4().hex[:6]}"
    register(scheme, _ForgotCleanup)
    code, out, err = run(capsys, "cleanup", "--backend", f"{scheme}://")
    assert code == EXIT_FAILURE
    assert out == ""
    assert "does not expire sessions by itself" in err
    assert "implement Backend.cleanup()" in err


def test_cleanup_is_part_of_the_backend_contract() -> None:
    assert "cleanup" in vars(Backend), "Backend.cleanup is the CLI's documented entry point"
    assert asyncio.run(_NoCleanup().cleanup()) is None


def test_cleanup_runs_the_backends_sweep(capsys: pytest.CaptureFixture[str]) -> None:
    scheme = f"cleanup{uuid.uuid4().hex[:6]}"
    register(scheme, _WithCleanup)
    _WithCleanup.opened = []
    code, out, err = run(capsys, "cleanup", "--backend", f"{scheme}://user:hunter2@db/x")
    assert code == EXIT_OK, err
    assert out.strip() == f"{scheme}://user:***@db/x: removed 3 expired session(s)"
    assert _WithCleanup.opened == ["open", "close"]


def test_check_does_not_print_the_sentinel_password(capsys: pytest.CaptureFixture[str]) -> None:
    require_module("sanic_cookies.backends.redis", "sanic-cookies-redis")
    url = "redis+sentinel://:secret@127.0.0.1:1/nosuchservice/0?sentinel_password=spass"
    code, out, err = run(capsys, "check", "--backend", url)
    assert code != EXIT_OK  # no sentinel listens on port 1
    assert "127.0.0.1:1" in out + err, (out, err)
    assert "spass" not in out + err and "secret" not in out + err


def test_a_reader_that_leaves_early_gets_no_traceback() -> None:
    # `sanic-cookies ddl | head -3`: the pipe closes before the output is flushed.
    script = "import sys; from sanic_cookies._cli import main; sys.exit(main(['ddl']))"
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # long before the child has imported anything and written
    try:
        err = proc.stderr.read().decode()
        assert proc.wait(timeout=60) == EXIT_FAILURE
    finally:
        proc.stderr.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
