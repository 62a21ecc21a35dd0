"""RedisBackend's own behaviour: configuration, the user index, and sessions through Sanic."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from redis.asyncio.connection import SSLConnection
from redis_procs import RedisServer, free_port
from sanic import HTTPResponse, Request, Sanic, json

from sanic_cookies import ConfigurationError, LockLost, Session, backend_from_url
from sanic_cookies._ids import new_session_id, store_key
from sanic_cookies.backends.redis import RedisBackend
from sanic_cookies.testing import decode_stored, encode_value, wait_until

pytestmark = pytest.mark.redis

Sanic.test_mode = True


def new_key() -> str:
    return store_key(new_session_id())


@pytest_asyncio.fixture
async def backend(redis_url: str, unique_prefix: str) -> AsyncIterator[RedisBackend]:
    backend = RedisBackend.from_url(redis_url, prefix=unique_prefix)
    await backend.open()
    try:
        yield backend
    finally:
        await backend.close()


@pytest_asyncio.fixture
async def direct(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


# -- configuration ---------------------------------------------------------------------


def test_urls_select_this_backend_with_their_options() -> None:
    plain = backend_from_url("redis://:pw@127.0.0.1:6380/3?prefix=shop:s:&socket_timeout=0.5")
    assert isinstance(plain, RedisBackend)
    assert plain._keys.prefix == "shop:s:" and not plain._cluster
    client = plain.client
    assert isinstance(client, aioredis.Redis)
    kwargs = client.connection_pool.connection_kwargs
    assert (kwargs["db"], kwargs["password"], kwargs["port"]) == (3, "pw", 6380)
    assert kwargs["socket_timeout"] == 0.5  # the URL wins over the default
    assert kwargs["socket_connect_timeout"] == 1.0  # the short default
    assert "pw" not in repr(plain)

    tls = RedisBackend.from_url("rediss://cache:6390/0", socket_timeout=1.5)
    pool = tls.client.connection_pool  # type: ignore[union-attr]
    assert pool.connection_kwargs["socket_timeout"] == 1.5  # keyword options win too
    assert issubclass(pool.connection_class, SSLConnection)

    assert RedisBackend.from_url("redis+cluster://127.0.0.1:7000")._cluster
    assert RedisBackend.from_url("rediss+cluster://127.0.0.1:7000")._cluster
    assert RedisBackend.from_url("redis://127.0.0.1:7000?cluster=true")._cluster
    # No automatic retries: a script is never replayed behind the caller's back.
    retry = RedisBackend().client.connection_pool.connection_kwargs["retry"]  # type: ignore[union-attr]
    assert retry.get_retries() == 0


def _client_options(url: str, **options: Any) -> dict[str, Any]:
    pool: Any = RedisBackend.from_url(url, **options).client.connection_pool
    return dict(pool.connection_kwargs)


def test_keyword_options_win_over_the_url() -> None:
    # As from_url says (redis-py alone lets the URL's query, db and credentials win).
    backend = RedisBackend.from_url(
        "redis://127.0.0.1:6379/0?socket_timeout=0.5&prefix=url:", socket_timeout=1.5, db=3
    )
    kwargs = backend.client.connection_pool.connection_kwargs  # type: ignore[union-attr]
    assert (kwargs["socket_timeout"], kwargs["db"]) == (1.5, 3)
    assert backend._keys.prefix == "url:"  # no keyword: the URL's
    assert _client_options("redis://127.0.0.1:6379/2")["db"] == 2
    url = "redis://user:urlpw@127.0.0.1:6379/0"
    kwargs = _client_options(url, password="kwpw")
    assert (kwargs["username"], kwargs["password"]) == ("user", "kwpw")
    kwargs = _client_options(url, username="kw")
    assert (kwargs["username"], kwargs["password"]) == ("kw", "urlpw")
    kwargs = _client_options(
        "redis+sentinel://:urlpw@127.0.0.1:26379/mymaster/0", password="kwpw", db=4
    )
    assert (kwargs["password"], kwargs["db"]) == ("kwpw", 4)


@pytest.mark.parametrize(
    "url",
    [
        "rediss://h/0?ssl_cert_reqs=bogus",  # redis-py raised RedisError
        "redis://h/0?protocol=9",  # ... and ConnectionError, though nothing connects
        "redis+sentinel://s1/mymaster?protocol=9",
    ],
)
def test_an_option_redis_py_refuses_is_a_configuration_error(url: str) -> None:
    with pytest.raises(ConfigurationError, match="Bad Redis option"):
        _ = RedisBackend.from_url(url).client


def test_a_redis_url_with_several_hosts_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="one host"):
        backend_from_url("redis+cluster://127.0.0.1:7000,127.0.0.1:7001")
    # A comma in the password is not a list of hosts.
    assert _client_options("redis://:p,w@127.0.0.1:6379/0")["password"] == "p,w"


def test_a_db_in_the_path_and_in_the_query_is_a_configuration_error() -> None:
    # redis-py lets ?db= win over the path without a word.
    for url in (
        "redis://127.0.0.1:6379/3?db=5",
        "redis://127.0.0.1:6379?db=1&db=2",  # redis-py: the first
        "redis+sentinel://h1:26379/mymaster/5?db=2",
        "redis+sentinel://h1:26379/mymaster?db=1&db=2",
    ):
        with pytest.raises(ConfigurationError, match="db once"):
            backend_from_url(url)
    assert _client_options("redis://127.0.0.1:6379?db=5")["db"] == 5


def test_bad_settings_are_configuration_errors() -> None:
    with pytest.raises(ConfigurationError, match="prefix"):
        RedisBackend(prefix="{tagged}:")
    with pytest.raises(ConfigurationError):
        RedisBackend.from_url("memcached://127.0.0.1")
    with pytest.raises(ConfigurationError, match="boolean"):
        RedisBackend.from_url("redis://127.0.0.1?cluster=maybe")
    with pytest.raises(ConfigurationError, match="prefx"):  # a misspelt option, not "unreachable"
        backend_from_url("redis://127.0.0.1:6379/0?prefx=shop:")
    with pytest.raises(ConfigurationError, match="socket_timeout"):
        RedisBackend.from_url("redis://127.0.0.1:6379/0?socket_timeout=soon")
    with pytest.raises(ConfigurationError):
        RedisBackend.from_url("redis+cluster://127.0.0.1:7000", no_such_option=1)
    with pytest.raises(ConfigurationError, match="decode_responses"):
        RedisBackend(client=aioredis.Redis(decode_responses=True))
    with pytest.raises(ConfigurationError, match="socket_timeout"):
        RedisBackend(client=aioredis.Redis(), socket_timeout=1)


@pytest.mark.parametrize(
    "url",
    [
        "redis://:s3cret@h:99999/0",
        "redis://:s3cret@h:abc/0",
        "redis+cluster://:s3cret@h:70000",
        "redis://app:s3#cret@h:6379/0",  # '#', '/' or '?' left as it is in the password
        "rediss://app:s3/cret@h:6379/0",
        "redis+cluster://app:s3?cret@h:7000",
        "redis://:12?s3cret@h/0",  # else: port 12 of host "", without a word
        "redis+sentinel://:s3/cret@s1:26379,s2:26379/mymaster/0",
        "redis+sentinel://:s3?cret@s1:26379/mymaster",
        "redis+sentinel://:s3#cret@s1:26379/mymaster",
        "redis+sentinel://:s3＠cret@s1:26379/mymaster",  # a full-width @
        "redis://default:s3cret",  # no "@host": "s3cret" reads as a port
    ],
)
def test_a_url_that_does_not_parse_is_a_configuration_error_that_hides_the_password(
    url: str,
) -> None:
    with pytest.raises(ConfigurationError, match="percent-encode") as raised:
        _ = backend_from_url(url).client
    assert "s3" not in str(raised.value) and "cret" not in str(raised.value), raised.value


@pytest.mark.parametrize(
    "url",
    [
        "redis://:s3cret@h:6379/0?prefix=app#2",  # else prefix "app", shared with app#1
        "redis://h:6379/0#s3cret",
        "redis+cluster://h:7000?prefix=a#b",
        "redis+sentinel://s1:26379/mymaster/0#s3cret",
    ],
)
def test_a_hash_sign_anywhere_is_a_configuration_error(url: str) -> None:
    with pytest.raises(ConfigurationError, match="cannot contain '#'") as raised:
        _ = backend_from_url(url).client
    assert "s3" not in str(raised.value) and "cret" not in str(raised.value), raised.value


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis://127.0.0.1:6379/sessions", "db number"),  # redis-py alone: db 0, no word
        ("redis://127.0.0.1:6379/\N{SUPERSCRIPT TWO}", "db number"),
        ("redis+cluster://127.0.0.1:7000/abc", "only db 0"),
        ("redis+cluster://127.0.0.1:7000/3", "only db 0"),
        ("redis://127.0.0.1:7000/3?cluster=true", "only db 0"),
    ],
)
def test_a_db_path_redis_cannot_use_is_a_configuration_error(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        _ = RedisBackend.from_url(url).client


def test_the_db_paths_redis_reads() -> None:
    pool = RedisBackend.from_url("redis://127.0.0.1:6379/%35").client.connection_pool
    assert pool.connection_kwargs["db"] == 5  # type: ignore[union-attr]
    assert RedisBackend.from_url("redis://127.0.0.1:6379/").client
    assert RedisBackend.from_url("redis+cluster://127.0.0.1:7000/0").client


async def test_wrapped_client_is_used_and_not_closed(redis_url: str, unique_prefix: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    try:
        backend = RedisBackend(client=client, prefix=unique_prefix)
        assert backend.client is client
        await backend.open()
        key = new_key()
        await backend.save(key, encode_value(4), 30)
        await backend.close()
        assert await client.type(f"{unique_prefix}{{{key}}}") == b"hash"
        assert await client.hget(f"{unique_prefix}{{{key}}}", "v") == encode_value(4)
        await backend.open()
        assert decode_stored(await backend.load(key)) == 4
        await backend.close()
    finally:
        await client.aclose()


async def test_open_again_after_close_builds_a_new_client(backend: RedisBackend) -> None:
    first = backend.client
    await backend.close()
    await backend.open()
    assert backend.client is not first
    key = new_key()
    await backend.save(key, encode_value(1), 30)
    assert decode_stored(await backend.load(key)) == 1


async def test_open_with_redis_down_warns_and_recovers_when_it_starts(
    tmp_path: Any, caplog: pytest.LogCaptureFixture, unique_prefix: str
) -> None:
    port = free_port()
    backend = RedisBackend(f"redis://127.0.0.1:{port}/0", prefix=unique_prefix)
    with caplog.at_level(logging.WARNING, logger="sanic_cookies.redis"):
        await backend.open()  # does not raise: the app starts
    assert any("unreachable at start-up" in r.getMessage() for r in caplog.records)
    key = new_key()
    with pytest.raises(Exception):  # noqa: B017 - whatever redis-py raises; the core makes it a 503
        await backend.load(key)
    server = RedisServer(tmp_path / "late", port, ["--save", "", "--appendonly", "no"])
    server.start()
    try:
        await backend.save(key, encode_value(9), 30)
        assert decode_stored(await backend.load(key)) == 9
    finally:
        await backend.close()
        server.stop()


async def test_wrong_password_fails_the_start(
    own_redis: Callable[..., RedisServer], unique_prefix: str
) -> None:
    server = own_redis("--save", "", "--appendonly", "no", "--requirepass", "right")
    for url in (server.url, f"redis://:wrong@127.0.0.1:{server.port}/0"):
        backend = RedisBackend(url, prefix=unique_prefix)
        with pytest.raises(ConfigurationError, match="refused"):
            await backend.open()
        await backend.close()
    good = RedisBackend(f"redis://:right@127.0.0.1:{server.port}/0", prefix=unique_prefix)
    await good.open()
    await good.save(new_key(), b"x", 10)
    await good.close()


async def test_a_user_without_the_rights_to_run_scripts_fails_the_start(
    own_redis: Callable[..., RedisServer], unique_prefix: str
) -> None:
    server = own_redis("--save", "", "--appendonly", "no")
    admin = aioredis.Redis.from_url(server.url)
    try:
        await admin.execute_command("ACL", "SETUSER", "limited", "on", ">s3cr3t-acl", "~*", "+@all")
        await admin.execute_command("ACL", "SETUSER", "limited", "-@scripting")
    finally:
        await admin.aclose()
    url = f"redis://limited:s3cr3t-acl@127.0.0.1:{server.port}/0"
    backend = RedisBackend(url, prefix=unique_prefix)
    with pytest.raises(ConfigurationError, match=r"refused.*NoPermissionError") as raised:
        await backend.open()  # not "unreachable": waiting will not grant the right
    await backend.close()
    assert "s3cr3t" not in str(raised.value)


@pytest.mark.parametrize("db", ["16", "99999999999999999999"])
async def test_a_db_redis_does_not_have_fails_the_start(
    redis_url: str, db: str, unique_prefix: str
) -> None:
    url = redis_url.rsplit("/", 1)[0] + f"/{db}"
    backend = RedisBackend(url, prefix=unique_prefix)
    with pytest.raises(ConfigurationError, match="refused"):
        await backend.open()
    await backend.close()


# -- TTLs and the lock ---------------------------------------------------------------------


async def test_ttl_is_native_and_rounded_up_to_milliseconds(
    backend: RedisBackend, direct: aioredis.Redis
) -> None:
    key = new_key()
    await backend.save(key, b"v", 12.0001)
    pttl = await direct.pttl(backend._keys.data(key))
    assert 11_900 < pttl <= 12_001
    assert await backend.touch(key, 100)
    assert 99_000 < await direct.pttl(backend._keys.data(key)) <= 100_000
    assert await direct.hget(backend._keys.data(key), "v") == b"v"


async def test_a_lock_can_be_held_across_processes_only_once(
    backend: RedisBackend, direct: aioredis.Redis
) -> None:
    key = new_key()
    lock = backend.lock(key, timeout=1, lease=7)
    await lock.acquire()
    lock_key = backend._keys.lock(key)
    token = await direct.get(lock_key)
    assert token is not None and len(token) == 32
    assert 6_000 < await direct.pttl(lock_key) <= 7_000
    # Someone else's token in the lock key (another process took it after our lease).
    await direct.set(lock_key, b"someone-else", px=10_000)
    with pytest.raises(LockLost):
        await lock.save_and_release(encode_value(1), 30)
    assert await backend.load(key) is None  # fenced: nothing written
    await lock.release()
    assert await direct.get(lock_key) == b"someone-else"  # and their lock left alone


async def test_extend_after_the_lease_ran_out_is_lock_lost(
    backend: RedisBackend, direct: aioredis.Redis
) -> None:
    key = new_key()
    lock = backend.lock(key, timeout=1, lease=0.2)
    await lock.acquire()

    async def lease_over() -> bool:  # Redis keeps the lease (PX): wait for it, boundedly
        return not await direct.exists(backend._keys.lock(key))

    assert await wait_until(lease_over, 30)
    with pytest.raises(LockLost):
        await lock.extend(5)


async def test_acquire_replayed_by_the_same_holder_still_holds(backend: RedisBackend) -> None:
    """A retried acquire (its first reply lost) must not lock its own holder out."""
    key = new_key()
    lock = backend.lock(key, timeout=1, lease=5)
    keys = [backend._keys.data(key), backend._keys.lock(key), backend._keys.void(key, lock._token)]
    first = await backend._scripts.acquire(keys, [lock._token, 5000])
    again = await backend._scripts.acquire(keys, [lock._token, 5000])
    assert first == [] and again == []  # taken (no session stored yet)
    other = await backend._scripts.acquire(keys, ["another-token", 5000])
    assert isinstance(other, int) and 4000 < other <= 5000  # busy: the holder's lease left


# -- the per-user index ----------------------------------------------------------------------


async def test_index_entry_always_outlives_the_session(
    backend: RedisBackend, direct: aioredis.Redis
) -> None:
    user = f"u-{uuid.uuid4().hex[:6]}"
    key = new_key()
    index = backend._keys.index(user)
    await backend.save(key, b"a", 1, user_id=user)  # short session: a short index entry
    await backend.save(key, b"b", 10_000, user_id=user, replace_only=True)  # then far longer
    assert await backend.touch(key, 100_000)  # and longer again, by touch
    data_expiry = await direct.pexpiretime(backend._keys.data(key))  # epoch ms
    score = await direct.zscore(index, key)
    assert score is not None and score >= data_expiry
    assert await direct.pexpiretime(index) >= score  # the index key lives as long
    assert set(await backend.list_user_sessions(user)) == {key}


async def test_index_follows_a_change_of_user(
    backend: RedisBackend, direct: aioredis.Redis
) -> None:
    alice, bob = f"alice-{uuid.uuid4().hex[:6]}", f"bob-{uuid.uuid4().hex[:6]}"
    key = new_key()
    await backend.save(key, b"1", 60, user_id=alice)
    await backend.save(key, b"2", 60, user_id=bob, replace_only=True)
    assert await direct.zscore(backend._keys.index(alice), key) is None  # removed eagerly
    assert set(await backend.list_user_sessions(bob)) == {key}
    await backend.save(key, b"3", 60, replace_only=True)  # logged out, session kept
    assert await direct.zscore(backend._keys.index(bob), key) is None
    assert await backend.list_user_sessions(bob) == {}
    assert await direct.hgetall(backend._keys.data(key)) == {b"v": b"3"}  # no user fields left


async def test_index_removal_spares_an_entry_added_again_since(
    backend: RedisBackend, direct: aioredis.Redis
) -> None:
    """A late removal (stamp of an older entry) must not drop a newer entry of the same key."""
    user = f"u-{uuid.uuid4().hex[:6]}"
    key = new_key()
    _, old_stamp = await backend._index_add(user, key, 60_000)
    _, new_stamp = await backend._index_add(user, key, 60_000)
    assert int(new_stamp) > int(old_stamp)
    await backend._index_forget(user, key, old_stamp)
    assert await direct.zscore(backend._keys.index(user), key) == float(new_stamp)
    await backend._index_forget(user, key, new_stamp)
    assert await direct.zscore(backend._keys.index(user), key) is None


async def test_logout_everywhere_beats_a_concurrent_locked_save(backend: RedisBackend) -> None:
    """A request holding a session's lock cannot resurrect it after delete_user_sessions."""
    user = f"u-{uuid.uuid4().hex[:6]}"
    here, there = new_key(), new_key()
    await backend.save(here, encode_value(1), 60, user_id=user)
    await backend.save(there, encode_value(1), 60, user_id=user)
    lock = backend.lock(there, timeout=1, lease=10)
    assert decode_stored(await lock.acquire()) == 1  # a request on the other device, mid-way
    assert await backend.delete_user_sessions(user, keep=here) == 1
    # It finishes: the core saves an existing session with replace_only=True.
    assert (
        await lock.save_and_release(encode_value(2), 60, user_id=user, replace_only=True) is False
    )
    assert await backend.load(there) is None
    assert set(await backend.list_user_sessions(user)) == {here}
    relock = backend.lock(there, timeout=1, lease=10)  # and the lock was released
    assert await relock.acquire() is None
    await relock.release()


async def test_delete_user_sessions_leaves_sessions_that_changed_owner(
    backend: RedisBackend,
) -> None:
    alice, bob = f"alice-{uuid.uuid4().hex[:6]}", f"bob-{uuid.uuid4().hex[:6]}"
    key = new_key()
    await backend.save(key, b"1", 60, user_id=alice)
    # A stale entry in alice's index (e.g. its removal failed) for a session now bob's.
    await backend._index_add(alice, key, 60_000)
    await backend.save(key, b"2", 60, user_id=bob, replace_only=True)
    await backend._index_add(alice, key, 60_000)
    assert await backend.delete_user_sessions(alice) == 0
    assert await backend.load(key) is not None


# -- through Sanic ---------------------------------------------------------------------------


def redis_app(backend: RedisBackend) -> Sanic[Any, Any]:
    app = Sanic(f"t{uuid.uuid4().hex}")
    # Plain-http test client: this test app (only) sends a non-Secure cookie.
    Session(app, backend=backend, secure=False)

    @app.get("/incr")
    async def incr(request: Request) -> HTTPResponse:
        async with request.ctx.session as sess:
            n = sess["n"] = sess.get("n", 0) + 1
        return json({"n": n})

    @app.get("/logout")
    async def logout(request: Request) -> HTTPResponse:
        async with request.ctx.session as sess:
            sess.destroy()
        return json({})

    return app


def cookie_of(response: Any) -> str:
    for header in response.headers.get_list("set-cookie"):
        name, _, rest = header.partition("=")
        if name == "session":
            return f"session={rest.split(';', 1)[0]}"
    raise AssertionError("no session cookie")


async def test_session_round_trip_through_sanic(
    redis_url: str, unique_prefix: str, direct: aioredis.Redis
) -> None:
    backend = RedisBackend.from_url(redis_url, prefix=unique_prefix)
    app = redis_app(backend)  # the ASGI test client starts and stops the app per request
    _, first = await app.asgi_client.get("/incr")
    cookie = cookie_of(first)
    sid = cookie.partition("=")[2]
    data_key = f"{unique_prefix}{{{store_key(sid)}}}"
    assert await direct.exists(data_key) == 1
    assert sid.encode() not in b"".join(await direct.keys(f"{unique_prefix}*"))
    for expected in (2, 3):
        _, again = await app.asgi_client.get("/incr", headers={"Cookie": cookie})
        assert again.json == {"n": expected}
    _, out = await app.asgi_client.get("/logout", headers={"Cookie": cookie})
    assert "max-age=0" in out.headers["set-cookie"].lower()
    assert await direct.exists(data_key) == 0
    _, after = await app.asgi_client.get("/incr", headers={"Cookie": cookie})
    assert after.json == {"n": 1}  # the old cookie starts nothing but a fresh session


async def test_scripts_lost_by_the_server_are_loaded_again(
    own_redis: Callable[..., RedisServer], unique_prefix: str
) -> None:
    """After SCRIPT FLUSH (or a restart) EVALSHA meets NOSCRIPT: the script is sent again."""
    server = own_redis("--save", "", "--appendonly", "no")
    backend = RedisBackend(server.url, prefix=unique_prefix)
    await backend.open()
    try:
        key = new_key()
        await backend.save(key, encode_value(1), 30, user_id="u")
        async with aioredis.Redis(port=server.port) as admin:
            await admin.script_flush()
            assert await admin.script_exists(backend._scripts.load.sha) == [False]
        assert decode_stored(await backend.load(key)) == 1
        lock = backend.lock(key, timeout=1, lease=5)
        assert decode_stored(await lock.acquire()) == 1
        assert await lock.save_and_release(encode_value(2), 30, user_id="u", replace_only=True)
        assert set(await backend.list_user_sessions("u")) == {key}
    finally:
        await backend.close()
