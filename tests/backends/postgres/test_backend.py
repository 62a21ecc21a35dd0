"""What the PostgreSQL backends do beyond the conformance suite, on the shared server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import pytest
from pg_support import sqlalchemy_url
from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import create_async_engine

from sanic_cookies import ConfigurationError, LockLost, LockTimeout, backend_from_url
from sanic_cookies.backends.postgres import (
    PostgresBackend,
    PostgresStore,
    SQLAlchemyBackend,
    cleanup,
    ddl,
    sessions_table,
)
from sanic_cookies.testing import decode_stored, encode_value, wait_until

#: A bound for the server's clock to run a TTL out, on a busy machine (not a sleep).
WITHIN = 30.0

pytestmark = pytest.mark.postgres

KINDS = ["asyncpg", "sqlalchemy"]
Make = Callable[..., PostgresStore]


def _key(n: int) -> str:
    return f"{n:064x}"


async def _sql(dsn: str, query: str, *args: Any) -> Any:
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        return await conn.fetchval(query, *args)
    finally:
        await conn.close()


def _all_expired(dsn: str, table: str, n: int) -> Callable[[], Awaitable[bool]]:
    """A condition: `n` rows of `table` have expired on the server's clock."""

    async def check() -> bool:
        return bool(await _sql(dsn, f"SELECT count(*) FROM {table} WHERE expires <= now()") == n)

    return check


# -- the table and its DDL ---------------------------------------------------------------


def test_ddl_is_idempotent_sql_for_the_table() -> None:
    text = ddl()
    assert "CREATE TABLE IF NOT EXISTS sessions" in text
    assert "TIMESTAMP WITH TIME ZONE" in text
    assert "CREATE INDEX IF NOT EXISTS sessions_expires_idx" in text
    assert "WHERE user_id IS NOT NULL" in text
    assert 'CREATE SCHEMA IF NOT EXISTS "My Schema"' in ddl("t", "My Schema")
    assert "TIMESTAMP WITHOUT" not in text


@pytest.mark.parametrize("table", ["", "x" * 64, "a\x00b"])
def test_ddl_refuses_names_postgres_would_mangle(table: str) -> None:
    with pytest.raises(ValueError):
        ddl(table)


async def test_ddl_and_metadata_create_the_same_table(postgres_dsn: str, pg_schema: str) -> None:
    """The printed DDL and the `Table` an app adds to its metadata (Alembic) agree."""
    by_ddl, by_metadata = f"{pg_schema}_ddl", f"{pg_schema}_meta"
    engine = create_async_engine(sqlalchemy_url(postgres_dsn))
    conn = await asyncpg.connect(postgres_dsn)
    try:
        await conn.execute(ddl("sessions", by_ddl))
        await conn.execute(ddl("sessions", by_ddl))  # again: idempotent
        metadata = MetaData()
        sessions_table(metadata, "sessions", by_metadata)
        await conn.execute(f'CREATE SCHEMA "{by_metadata}"')
        async with engine.begin() as sa_conn:
            await sa_conn.run_sync(metadata.create_all)

        async def shape(schema: str) -> Any:
            columns = await conn.fetch(
                "SELECT column_name, data_type, is_nullable, column_default, collation_name "
                "FROM information_schema.columns WHERE table_schema = $1 ORDER BY column_name",
                schema,
            )
            indexes = await conn.fetch(
                "SELECT replace(indexdef, $1, 'S') FROM pg_indexes WHERE schemaname = $1 "
                "ORDER BY indexname",
                schema,
            )
            return [tuple(r) for r in columns], [r[0] for r in indexes]

        assert await shape(by_ddl) == await shape(by_metadata)
        columns, indexes = await shape(by_ddl)
        types = {c[0]: c[1] for c in columns}
        assert types == {
            "created": "timestamp with time zone",
            "data": "bytea",
            "expires": "timestamp with time zone",
            "key": "text",
            "user_id": "text",
        }
        assert len(indexes) == 3  # primary key, expires, user_id (partial)
    finally:
        for schema in (by_ddl, by_metadata):
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()
        await engine.dispose()


# -- construction and URLs ------------------------------------------------------------------


def test_url_options_configure_the_backend_and_the_rest_goes_to_the_driver(
    postgres_dsn: str,
) -> None:
    backend = backend_from_url(
        postgres_dsn + "?table=web&schema=app&create_table=yes&sweep_interval=none"
        "&command_timeout=2.5&application_name=shop"
    )
    assert isinstance(backend, PostgresBackend)
    assert backend.queries.table == "app.web"
    assert backend.create_table is True
    assert backend.command_timeout == 2.5
    assert backend._sweeper.interval is None
    assert backend._connector._dsn.endswith("?application_name=shop")  # type: ignore[attr-defined]
    other = backend_from_url(postgres_dsn.replace("postgresql://", "postgres://"))
    assert isinstance(other, PostgresBackend) and other.queries.table == "sessions"
    sqla = backend_from_url(sqlalchemy_url(postgres_dsn) + "?table=web&pool_size=3")
    assert isinstance(sqla, SQLAlchemyBackend)
    assert sqla.queries.table == "web"
    assert sqla.engine.pool.size() == 3  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "dsn", ["postgresql://u:Tr0ub[4dor]@127.0.0.1/test", "postgresql://u:Tr0ub4dor\uff0fx@h/test"]
)
def test_the_constructor_checks_its_dsn_as_from_url_does(dsn: str) -> None:
    # asyncpg's ValueError at open() quoted part of the password (outside review).
    with pytest.raises(ConfigurationError) as caught:
        PostgresBackend(dsn)
    assert "Tr0ub" not in str(caught.value) and "4dor" not in str(caught.value)
    with pytest.raises(ConfigurationError) as caught:
        PostgresBackend("postgresql://u@h/test", replica=dsn)
    assert "Tr0ub" not in str(caught.value) and "4dor" not in str(caught.value)


@pytest.mark.parametrize("kind", KINDS)
def test_an_option_of_the_backend_given_twice_is_refused(kind: str) -> None:
    scheme = "postgresql" if kind == "asyncpg" else "postgresql+asyncpg"
    with pytest.raises(ConfigurationError, match="table twice"):
        backend_from_url(f"{scheme}://u@h/test?table=a&table=b")


def test_a_sqlalchemy_url_without_a_host_keeps_its_slashes() -> None:
    # The host in the query, libpq style: the URL keeps its '//' when the backend's own
    # options are taken out of it (urlunsplit dropped it: SQLAlchemy then refused it).
    sqla = backend_from_url("postgresql+asyncpg:///test?host=127.0.0.1&user=postgres&table=t")
    assert isinstance(sqla, SQLAlchemyBackend)
    assert sqla.queries.table == "t"
    assert sqla.engine.url.database == "test"
    assert sqla.engine.url.query["host"] == "127.0.0.1"


@pytest.mark.parametrize(
    "url_tail",
    ["?create_table=maybe", "?sweep_batch=many", "?command_timeout=-1", "?sweep_batch=0"],
)
def test_bad_options_fail_at_start_up(postgres_dsn: str, url_tail: str) -> None:
    with pytest.raises(ConfigurationError):
        PostgresBackend.from_url(postgres_dsn + url_tail)


def test_constructor_needs_exactly_one_connection_source() -> None:
    with pytest.raises(ConfigurationError):
        PostgresBackend()
    with pytest.raises(ConfigurationError):
        PostgresBackend.from_url("mysql://x/y")


def test_sqlalchemy_backend_needs_the_asyncpg_driver() -> None:
    engine = create_async_engine("postgresql+asyncpg://u@127.0.0.1/db")
    engine.dialect.driver = "psycopg"  # what a postgresql+psycopg engine reports
    with pytest.raises(ConfigurationError, match="asyncpg"):
        SQLAlchemyBackend(engine)


# -- life cycle -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_open_after_close(kind: str, make_backend: Make) -> None:
    backend = make_backend(kind, table="reopen", sweep_interval=0.2)
    await backend.open()
    await backend.save(_key(1), encode_value(1), 60)
    await backend.close()
    await backend.open()
    try:
        assert decode_stored(await backend.load(_key(1))) == 1
    finally:
        await backend.close()


async def test_a_pool_it_was_given_is_not_closed(postgres_dsn: str, pg_schema: str) -> None:
    pool = await asyncpg.create_pool(postgres_dsn, min_size=1, max_size=2)
    try:
        backend = PostgresBackend(pool=pool, schema=pg_schema, table="given", create_table=True)
        await backend.open()
        await backend.save(_key(2), encode_value(2), 60)
        await backend.close()
        assert await pool.fetchval("SELECT 1") == 1  # still usable
        await backend.open()
        assert decode_stored(await backend.load(_key(2))) == 2
        await backend.close()
    finally:
        await pool.close()


async def test_sqlalchemy_backend_uses_the_apps_engine_and_table(
    postgres_dsn: str, pg_schema: str
) -> None:
    """The app's metadata holds the table (as Alembic would create it); its engine stays open."""
    engine = create_async_engine(sqlalchemy_url(postgres_dsn), pool_size=2, max_overflow=0)
    metadata = MetaData()
    table = sessions_table(metadata, "app_sessions", pg_schema)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        backend = SQLAlchemyBackend(engine, table=table)  # create_table=False: the app's job
        await backend.open()
        await backend.save(_key(3), encode_value(3), 60, user_id="u")
        await backend.close()
        async with engine.connect() as conn:  # the engine is still the app's, and usable
            rows = (await conn.execute(table.select())).all()
        assert [(r.key, r.user_id) for r in rows] == [(_key(3), "u")]
        assert rows[0].expires.tzinfo is not None
    finally:
        await engine.dispose()


# -- values, time zones, user ids ---------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_expiry_is_right_whatever_the_session_time_zone(
    kind: str, postgres_dsn: str, pg_schema: str
) -> None:
    """Timestamps are timestamptz, compared on the server clock: the TimeZone setting is moot."""
    settings = {"server_settings": {"TimeZone": "Pacific/Kiritimati"}}  # UTC+14
    options: dict[str, Any] = {"schema": pg_schema, "table": "tz", "create_table": True}
    backend: PostgresStore
    if kind == "asyncpg":
        backend = PostgresBackend(postgres_dsn, pool_options=settings, **options)
    else:
        engine = create_async_engine(sqlalchemy_url(postgres_dsn), connect_args=settings)
        backend = SQLAlchemyBackend(engine, **options)
    await backend.open()
    try:
        before = time.time()
        await backend.save(_key(4), encode_value(4), 100)
        stored = await backend.load(_key(4))
        assert stored is not None
        assert before + 99 <= stored.expires_at <= time.time() + 101
        await backend.save(_key(5), encode_value(5), 0.3)

        async def expired() -> bool:
            return await backend.load(_key(5)) is None

        assert await wait_until(expired, WITHIN)
    finally:
        await backend.close()
        if isinstance(backend, SQLAlchemyBackend):
            await backend.engine.dispose()


@pytest.mark.parametrize("scope", ["session", "transaction"])
@pytest.mark.parametrize("kind", KINDS)
async def test_any_bytes_and_user_id_survive_the_locked_write(
    kind: str, scope: str, make_backend: Make
) -> None:
    """The transaction scope's locked save sends literals (one simple query): quoting must
    hold for any content. (The session scope sends parameters.)"""
    backend = make_backend(kind, table=f"literals_{scope}", lock_scope=scope)
    user = 'o\'neil\\ "é" ; DROP TABLE x; -- $$ \x01'
    value = bytes(range(256)) + b"'\\x00"
    await backend.open()
    try:
        key = _key(6)
        await backend.save(key, b"old", 60)
        lock = backend.lock(key, timeout=2, lease=5)
        await lock.acquire()
        assert await lock.save_and_release(value, 60, user_id=user, replace_only=True)
        sessions = await backend.list_user_sessions(user)
        assert list(sessions) == [key]
        assert sessions[key].value == value
        lock = backend.lock(key, timeout=2, lease=5)
        await lock.acquire()
        assert await lock.save_and_release(b"new", 60, user_id=None)  # upsert path
        assert await backend.list_user_sessions(user) == {}
    finally:
        await backend.close()


# -- the lock -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_save_after_the_connection_was_killed_raises_lock_lost(
    kind: str, make_backend: Make, postgres_dsn: str
) -> None:
    backend = make_backend(kind, table="killed")
    await backend.open()
    try:
        key = _key(7)
        await backend.save(key, encode_value(1), 60)
        lock = backend.lock(key, timeout=2, lease=30)
        assert decode_stored(await lock.acquire()) == 1
        pid = lock._checkout.conn.get_server_pid()  # type: ignore[union-attr]
        assert await _sql(postgres_dsn, "SELECT pg_terminate_backend($1)", pid)
        with pytest.raises(LockLost):
            await lock.save_and_release(encode_value(99), 60)
        await lock.release()  # harmless
        again = backend.lock(key, timeout=2, lease=5)  # the lock went with the connection
        assert decode_stored(await again.acquire()) == 1  # and nothing was written
        await again.release()
    finally:
        await backend.close()


@pytest.mark.parametrize("kind", KINDS)
async def test_only_the_session_scope_locks_read_skips_the_wal_flush(
    kind: str, make_backend: Make, postgres_dsn: str
) -> None:
    """The lock's read commits asynchronously (its FOR SHARE row lock is all it writes),
    for its own statement only: the save after it, on the same connection, is durable."""
    sql = make_backend(kind).session_lock_sql
    local_async = "set_config('synchronous_commit', 'off', true)"
    assert local_async in sql.lock_and_load and local_async in sql.reread
    assert all(local_async not in statement for statement in (*sql.save.values(), sql.delete))
    backend = make_backend(kind, table=f"async_read_{kind}")
    await backend.open()
    try:
        key = _key(12)
        await backend.save(key, encode_value(1), 60)
        default = await _sql(postgres_dsn, "SHOW synchronous_commit")
        lock = backend.lock(key, timeout=2, lease=30)
        assert decode_stored(await lock.acquire()) == 1
        conn = lock._checkout.conn  # type: ignore[union-attr]
        assert await conn.fetchval("SHOW synchronous_commit") == default
        await lock.save_and_release(encode_value(2), 60)
        assert decode_stored(await backend.load(key)) == 2
    finally:
        await backend.close()


@pytest.mark.parametrize("kind", KINDS)
async def test_session_scope_save_without_the_lock_writes_nothing(
    kind: str, make_backend: Make
) -> None:
    """The save's unlock doubles as the fence: a lock that is not held rolls the write back."""
    backend = make_backend(kind, table=f"fence_{kind}")
    await backend.open()
    try:
        key = _key(10)
        await backend.save(key, encode_value(1), 60)
        lock = backend.lock(key, timeout=2, lease=30)
        await lock.acquire()
        await lock._checkout.conn.execute("SELECT pg_advisory_unlock_all()")  # type: ignore[union-attr]
        with pytest.raises(LockLost):
            await lock.save_and_release(encode_value(99), 60, replace_only=True)
        assert decode_stored(await backend.load(key)) == 1
    finally:
        await backend.close()


@pytest.mark.parametrize("kind", KINDS)
async def test_session_scope_never_overwrites_a_row_created_after_its_read(
    kind: str, make_backend: Make
) -> None:
    """The lock's read cannot see a row created after its snapshot; its save must not
    replace one (the core never does this: new sessions get new ids)."""
    backend = make_backend(kind, table=f"created_meanwhile_{kind}")
    await backend.open()
    try:
        key = _key(11)
        lock = backend.lock(key, timeout=2, lease=30)
        assert await lock.acquire() is None
        await backend.save(key, encode_value(5), 60)  # someone else, without the lock
        with pytest.raises(LockLost, match="created"):
            await lock.save_and_release(encode_value(1), 60)
        assert decode_stored(await backend.load(key)) == 5
        again = backend.lock(key, timeout=2, lease=5)  # and the lock was released
        assert decode_stored(await again.acquire()) == 5
        await again.release()
    finally:
        await backend.close()


async def test_pool_exhaustion_counts_against_the_lock_timeout(make_backend: Make) -> None:
    backend = make_backend("asyncpg", table="exhausted", max_size=1)
    await backend.open()
    try:
        held = backend.lock(_key(8), timeout=2, lease=5)
        await held.acquire()
        started = time.monotonic()
        with pytest.raises(LockTimeout):
            await backend.lock(_key(9), timeout=0.3, lease=5).acquire()
        assert time.monotonic() - started < 2
        await held.release()
        other = backend.lock(_key(9), timeout=1, lease=5)
        await other.acquire()  # the connection came back
        await other.release()
    finally:
        await backend.close()


# -- sweeping ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_background_sweeper_deletes_expired_rows(
    kind: str, make_backend: Make, postgres_dsn: str, pg_schema: str
) -> None:
    backend = make_backend(kind, table=f"swept_{kind}", sweep_interval=0.2)
    await backend.open()
    try:
        for n in range(5):
            await backend.save(_key(n), encode_value(n), 0.1)
        await backend.save(_key(99), encode_value(99), 60)
        count = f"SELECT count(*) FROM {pg_schema}.swept_{kind}"

        async def swept() -> bool:
            return bool(await _sql(postgres_dsn, count) == 1)

        assert await wait_until(swept, WITHIN)
    finally:
        await backend.close()


@pytest.mark.parametrize("kind", KINDS)
async def test_only_the_elected_sweeper_deletes_but_cleanup_always_does(
    kind: str, make_backend: Make, postgres_dsn: str, pg_schema: str
) -> None:
    backend = make_backend(kind, table=f"elect_{kind}", sweep_interval=None, sweep_batch=3)
    await backend.open()
    holder = await asyncpg.connect(postgres_dsn)
    try:
        for n in range(10):
            await backend.save(_key(n), encode_value(n), 0.05)
        await backend.save(_key(99), encode_value(99), 60)
        table = f"{pg_schema}.elect_{kind}"
        assert await wait_until(_all_expired(postgres_dsn, table, 10), WITHIN)
        # Another worker is sweeping (holds the election lock): this one skips its turn.
        await holder.execute("SELECT pg_advisory_lock($1)", backend.queries.sweep_lock_id)
        assert await backend.sweep() == 0
        count = f"SELECT count(*) FROM {pg_schema}.elect_{kind}"
        assert await _sql(postgres_dsn, count) == 11
        assert await backend.cleanup() == 10  # cron's cleanup does not wait its turn; 4 batches
        await holder.execute("SELECT pg_advisory_unlock_all()")
        assert await backend.sweep() == 0
        assert await _sql(postgres_dsn, count) == 1
    finally:
        await holder.close()
        await backend.close()


async def test_cleanup_function_for_cron(postgres_dsn: str, pg_schema: str) -> None:
    url = f"{postgres_dsn}?schema={pg_schema}&table=cron&create_table=true"
    backend = backend_from_url(url)
    await backend.open()
    await backend.save(_key(1), encode_value(1), 0.05)
    await backend.save(_key(2), encode_value(2), 60)
    await backend.close()
    assert await wait_until(_all_expired(postgres_dsn, f"{pg_schema}.cron", 1), WITHIN)
    assert await cleanup(url) == 1
    assert await cleanup(sqlalchemy_url(postgres_dsn), schema=pg_schema, table="cron") == 0


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("tail", ["?table=app#2", "#s3cret", "?application_name=a#s3cret"])
def test_a_hash_sign_anywhere_is_a_configuration_error(kind: str, tail: str) -> None:
    # A fragment is dropped by the drivers: ?table=app#2 would read as table "app".
    scheme = "postgresql" if kind == "asyncpg" else "postgresql+asyncpg"
    with pytest.raises(ConfigurationError, match="cannot contain '#'") as raised:
        backend_from_url(f"{scheme}://app:s3cret@h:5432/test{tail}")
    assert "s3" not in str(raised.value) and "cret" not in str(raised.value), raised.value


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "authority",
    [
        "app:s3#cret@h:5432",
        "app:s3/cret@h:5432",
        "app:s3?cret@h",
        "app:s3cret@h:99999",
        "app:s3@cret@h:5432",  # both drivers end the password at the first '@'
    ],
)
def test_a_url_that_does_not_parse_is_a_configuration_error_that_hides_the_password(
    kind: str, authority: str
) -> None:
    # asyncpg alone raised ValueError quoting the part of the password it took for a port.
    scheme = "postgresql" if kind == "asyncpg" else "postgresql+asyncpg"
    with pytest.raises(ConfigurationError, match="percent-encode") as raised:
        backend_from_url(f"{scheme}://{authority}/test")
    assert "s3" not in str(raised.value) and "cret" not in str(raised.value), raised.value


@pytest.mark.parametrize(
    "url",
    ["postgresql:/u:s3cret@h/db", "postgresql:u:s3cret@h/db", "postgresql//u:s3cret@h/db"],
)
def test_a_url_without_its_slashes_is_refused_without_its_password(url: str) -> None:
    for build in (PostgresBackend.from_url, SQLAlchemyBackend.from_url, backend_from_url):
        with pytest.raises(ConfigurationError) as raised:
            build(url)
        assert "s3cret" not in str(raised.value), raised.value


def test_sqlalchemy_refuses_an_empty_port_with_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="SQLAlchemy cannot read") as raised:
        SQLAlchemyBackend.from_url("postgresql+asyncpg://u:s3cret@h:/db")
    assert "s3cret" not in str(raised.value)


def test_sqlalchemy_takes_several_hosts_in_the_query_only() -> None:
    # SQLAlchemy's URL parser reads one host in the authority (a raw ValueError before).
    with pytest.raises(ConfigurationError, match=r"\?host=h1:5432&host=h2:5432") as raised:
        backend_from_url("postgresql+asyncpg://u:s3,cret@h1:5432,h2:5432/db")
    assert "s3,cret" not in str(raised.value)
    backend_from_url("postgresql+asyncpg://u:s3,cret@h1/db?host=h1:5432&host=h2:5432")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("wrong", ["database", "user"])
async def test_a_database_that_refuses_fails_the_start_up(
    kind: str, wrong: str, postgres_dsn: str
) -> None:
    """Unreachable is waited out (503s); a wrong database or user is a mistake to show at once."""
    if wrong == "database":
        dsn = postgres_dsn.rsplit("/", 1)[0] + "/sctest_no_such_database"
    else:
        dsn = "postgresql://sctest_no_such_user:pw-7d1e@" + postgres_dsn.partition("@")[2]
    url = dsn if kind == "asyncpg" else sqlalchemy_url(dsn)
    backend = backend_from_url(url)
    refused = f"refused at start-up.*sctest_no_such_{wrong}"
    with pytest.raises(ConfigurationError, match=refused) as e:
        await backend.open()
    assert "pw-7d1e" not in str(e.value)
    await backend.close()


@asynccontextmanager
async def _role(
    postgres_dsn: str, role: str, *grants: str, options: str = ""
) -> AsyncIterator[str]:
    """A login role given `grants` (``GRANT <grant> TO role``), dropped after: its DSN."""
    await _sql(postgres_dsn, f'CREATE ROLE "{role}" LOGIN {options}')
    try:
        for grant in grants:
            await _sql(postgres_dsn, f'GRANT {grant} TO "{role}"')
        yield f"postgresql://{role}@" + postgres_dsn.partition("@")[2]
    finally:
        await _sql(postgres_dsn, f'DROP OWNED BY "{role}"')
        await _sql(postgres_dsn, f'DROP ROLE "{role}"')


async def _sessions_table(postgres_dsn: str, schema: str, table: str) -> str:
    """Create our table `schema`.`table` as the admin role: its quoted name."""
    owner = PostgresBackend(postgres_dsn, schema=schema, table=table, create_table=True)
    await owner.open()
    await owner.close()
    return f'"{schema}".{table}'


async def test_a_role_without_rights_fails_the_start_up(postgres_dsn: str, pg_schema: str) -> None:
    """No permission (SQLSTATE class 42) is a settings mistake too: ConfigurationError."""
    async with _role(postgres_dsn, f"{pg_schema}_norights") as dsn:
        # The role may not create a schema in this database, nor use this run's schema.
        backend = PostgresBackend(dsn, schema=f"{pg_schema}_other", create_table=True)
        with pytest.raises(ConfigurationError, match=r"refused at start-up.*permission denied"):
            await backend.open()
        await backend.close()


@pytest.mark.parametrize("kind", KINDS)
async def test_a_role_that_may_not_write_the_table_fails_the_start_up(
    kind: str, postgres_dsn: str, pg_schema: str
) -> None:
    """Rights on the table are checked at start-up, not found missing by every request."""
    table = await _sessions_table(postgres_dsn, pg_schema, "rights")
    role = f"{pg_schema}_reader"
    grants = (f'USAGE ON SCHEMA "{pg_schema}"', f"SELECT ON {table}")
    async with _role(postgres_dsn, role, *grants) as dsn:
        url = f"{dsn if kind == 'asyncpg' else sqlalchemy_url(dsn)}?schema={pg_schema}&table=rights"
        backend = backend_from_url(url)
        with pytest.raises(ConfigurationError, match=r"may not read and write table .*GRANT"):
            await backend.open()
        await backend.close()
        await _sql(postgres_dsn, f'GRANT INSERT, UPDATE, DELETE ON {table} TO "{role}"')
        backend = backend_from_url(url)
        await backend.open()  # now it may
        await backend.close()


async def test_a_connection_option_asyncpg_refuses_fails_the_start_up(postgres_dsn: str) -> None:
    # asyncpg's ClientConfigurationError is an InterfaceError: it once read as "unreachable".
    backend = backend_from_url(f"{postgres_dsn}?sslmode=bogus")
    with pytest.raises(ConfigurationError, match=r"asyncpg refused at start-up.*sslmode"):
        await backend.open()
    await backend.close()


async def test_too_many_connections_at_start_up_is_waited_out(
    postgres_dsn: str, pg_schema: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Not a settings mistake (a deploy's old and new workers may overlap): the app starts,
    its calls fail (a 503 in an app) until a connection can be made."""
    table = await _sessions_table(postgres_dsn, pg_schema, "limited")
    role = f"{pg_schema}_limited"
    grants = (f'USAGE ON SCHEMA "{pg_schema}"', f"ALL ON {table}")
    async with _role(postgres_dsn, role, *grants, options="CONNECTION LIMIT 0") as dsn:
        backend = PostgresBackend(dsn, schema=pg_schema, table="limited")
        await backend.open()  # no raise: a WARNING
        try:
            assert "database unreachable at start-up" in caplog.text
            assert "TooManyConnectionsError" in caplog.text
            with pytest.raises(asyncpg.TooManyConnectionsError):
                await backend.load(_key(1))
            await _sql(postgres_dsn, f'ALTER ROLE "{role}" CONNECTION LIMIT -1')
            assert await backend.load(_key(1)) is None  # the table is checked now
        finally:
            await backend.close()


@pytest.mark.parametrize("scope", ["session", "transaction"])
@pytest.mark.parametrize("isolation", ["repeatable read", "serializable"])
async def test_locked_increments_hold_whatever_the_default_isolation(
    isolation: str, scope: str, postgres_dsn: str, pg_schema: str
) -> None:
    """A stricter default isolation, whose snapshot is taken before the lock wait, loses
    nothing: the transaction scope forces READ COMMITTED, the session scope re-reads."""
    settings = {"server_settings": {"default_transaction_isolation": isolation}}
    backend = PostgresBackend(
        postgres_dsn,
        schema=pg_schema,
        table="isolation",
        create_table=True,
        max_size=8,
        lock_scope=scope,  # type: ignore[arg-type]
        pool_options=settings,
    )
    await backend.open()
    try:
        key = _key(isolation.count(" ") + 2 * (scope == "session"))
        await backend.save(key, encode_value(0), 60)

        async def increment() -> None:
            lock = backend.lock(key, timeout=20, lease=10)
            n = decode_stored(await lock.acquire()) or 0
            await asyncio.sleep(0.002)
            assert await lock.save_and_release(encode_value(n + 1), 60, replace_only=True)

        await asyncio.gather(*(increment() for _ in range(40)))
        assert decode_stored(await backend.load(key)) == 40
    finally:
        await backend.close()
