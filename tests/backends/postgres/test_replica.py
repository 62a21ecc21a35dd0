"""The read replica (``replica=``): only `list_user_sessions` reads from it.

The shared server plays the replica through a second pool (or engine) of its own;
every checkout is counted per pool, so the tests show which pool served which call.
The locked path (lock, load, save, delete) never touches the replica, and a replica
out of reach falls back to the primary.
"""

from __future__ import annotations

import collections
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import pytest
from pg_support import free_port, sqlalchemy_url
from sanic import HTTPResponse, Request, Sanic, text

from sanic_cookies import AuthSession
from sanic_cookies._cli import main
from sanic_cookies._ids import new_session_id, store_key
from sanic_cookies._session_cap import cap_listing
from sanic_cookies.backends.postgres import PostgresStore
from sanic_cookies.backends.postgres._connector import Checkout, Connector

pytestmark = pytest.mark.postgres


def count_checkouts(backend: PostgresStore) -> collections.Counter[str]:
    """Count, per pool ("primary" / "replica"), the connections `backend` borrows."""
    counts: collections.Counter[str] = collections.Counter()
    replica = backend.replica_connector
    assert replica is not None
    for name, connector in (("primary", backend.connector), ("replica", replica)):

        def counting(connector: Connector = connector, name: str = name) -> Any:
            original = connector.checkout

            async def checkout(within: float) -> Checkout:
                counts[name] += 1
                return await original(within)

            return checkout

        connector.checkout = counting()  # type: ignore[method-assign]
    return counts


@pytest.mark.parametrize("kind", ["asyncpg", "sqlalchemy"])
@pytest.mark.parametrize("scope", ["session", "transaction"])
async def test_only_the_user_listing_reads_from_the_replica(
    kind: str, scope: str, make_backend: Callable[..., PostgresStore], postgres_dsn: str
) -> None:
    replica = postgres_dsn if kind == "asyncpg" else sqlalchemy_url(postgres_dsn)
    backend = make_backend(kind, table="replicated", replica=replica, lock_scope=scope)
    await backend.open()
    try:
        counts = count_checkouts(backend)
        user = new_session_id()
        key, other = store_key(new_session_id()), store_key(new_session_id())

        await backend.save(key, b"a", 60, user_id=user)
        await backend.save(other, b"b", 60, user_id=user)
        assert (await backend.load(key)) is not None
        assert await backend.touch(key, 60)
        lock = backend.lock(key, timeout=5, lease=10)
        assert (await lock.acquire()) is not None
        assert await lock.save_and_release(b"a2", 60, user_id=user, replace_only=True)
        assert counts == {"primary": 5}, counts  # 2 saves, load, touch, the lock

        listed = await backend.list_user_sessions(user)
        assert set(listed) == {key, other}
        assert listed[key].value == b"a2"
        assert counts == {"primary": 5, "replica": 1}, counts

        assert await backend.delete_user_sessions(user, keep=key) == 1
        await backend.delete(key)
        assert counts == {"primary": 7, "replica": 1}, counts
        assert await backend.list_user_sessions(user) == {}
        assert counts == {"primary": 7, "replica": 2}, counts
    finally:
        await backend.close()


async def test_a_replica_out_of_reach_falls_back_to_the_primary(
    make_backend: Callable[..., PostgresStore], caplog: pytest.LogCaptureFixture
) -> None:
    nowhere = f"postgresql://postgres@127.0.0.1:{free_port()}/test"
    backend = make_backend("asyncpg", table="replicated", replica=nowhere, connect_timeout=0.5)
    await backend.open()  # the replica's pool connects on first use
    try:
        counts = count_checkouts(backend)
        user = new_session_id()
        key = store_key(new_session_id())
        await backend.save(key, b"a", 60, user_id=user)
        assert set(await backend.list_user_sessions(user)) == {key}
        assert counts == {"primary": 2, "replica": 1}, counts
        assert "read replica failed" in caplog.text
    finally:
        await backend.close()


def check_with_replica(replica: str, postgres_dsn: str, pg_schema: str) -> int:
    return main(
        [
            "check",
            "--backend",
            postgres_dsn,
            "--option",
            f"replica={replica}",
            "--option",
            f"schema={pg_schema}",
            "--option",
            "table=replicated_cli",
            "--option",
            "create_table=true",
        ]
    )


def test_the_cli_check_runs_with_a_replica(
    postgres_dsn: str, pg_schema: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # ``check`` lists the test session through list_user_sessions, and asks the replica itself.
    assert check_with_replica(postgres_dsn, postgres_dsn, pg_schema) == 0
    out = capsys.readouterr().out
    assert "\n  replica " in out, out


def test_the_cli_check_reports_a_failing_replica(
    postgres_dsn: str, pg_schema: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # The listing would quietly fall back to the primary: check must still say so.
    assert check_with_replica(broken_replica(postgres_dsn), postgres_dsn, pg_schema) != 0
    err = capsys.readouterr().err
    assert "replica" in err and "InvalidCatalogNameError" in err, err


def test_the_cli_hides_the_replica_password(
    postgres_dsn: str, pg_schema: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # The shared server trusts loopback: the password is sent nowhere, only printed.
    user, _, rest = postgres_dsn.partition("://")[2].partition("@")  # user@host:port/db
    replica = f"postgresql://{user}:replica-pw-9c1e@{rest}"
    url = f"{postgres_dsn}?{urlencode({'replica': replica, 'schema': pg_schema})}"
    code = main(["check", "--backend", url, "-o", "table=replicated_cli", "-o", "create_table=1"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "replica=" in out and ":***@" in out
    assert "replica-pw-9c1e" not in out


def broken_replica(postgres_dsn: str) -> str:
    """A replica URL whose server answers but refuses: a database that does not exist."""
    return postgres_dsn.rsplit("/", 1)[0] + f"/nonexistent_{new_session_id()[:8].lower()}"


async def test_any_replica_failure_falls_back_to_the_primary(
    make_backend: Callable[..., PostgresStore],
    postgres_dsn: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Not a refused connection: the server answers InvalidCatalogNameError.
    backend = make_backend("asyncpg", table="replicated", replica=broken_replica(postgres_dsn))
    await backend.open()
    try:
        user = new_session_id()
        key = store_key(new_session_id())
        await backend.save(key, b"a", 60, user_id=user)
        assert set(await backend.list_user_sessions(user)) == {key}
        assert "read replica failed (InvalidCatalogNameError" in caplog.text
    finally:
        await backend.close()


async def test_the_login_cap_never_reads_the_replica(
    make_backend: Callable[..., PostgresStore], postgres_dsn: str
) -> None:
    """max_sessions_per_user lists the user's sessions inside login: from the primary only."""
    backend = make_backend("asyncpg", table="replicated", replica=broken_replica(postgres_dsn))
    app = Sanic(f"cap_{uuid.uuid4().hex}")
    app.config.AUTH_SESSION_COOKIE_SECURE = False
    auth = AuthSession(app, backend=backend, max_sessions_per_user=2)

    @app.post("/login")
    async def login(request: Request) -> HTTPResponse:
        await auth.login_user(request, {"id": "alice"})
        return text("in")

    @app.get("/count")
    async def count_them(request: Request) -> HTTPResponse:
        listed = await cap_listing(backend, auth.user_id_of({"id": "alice"}))
        return text(str(len(listed)))

    counts: collections.Counter[str] | None = None

    @app.before_server_start
    async def count(app: Sanic[Any, Any]) -> None:
        nonlocal counts
        counts = count_checkouts(backend)

    statuses = []
    for _ in range(4):  # the 3rd and 4th logins are past the cap
        _, response = await app.asgi_client.post("/login")
        statuses.append(response.status)
    assert statuses == [200, 200, 200, 200]
    assert counts is not None and counts["replica"] == 0 and counts["primary"] > 0, counts
    _, response = await app.asgi_client.get("/count")
    assert response.text == "2"  # the cap ended the two oldest logins
