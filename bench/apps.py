"""The Sanic apps the benchmark loads: bare Sanic, hand-written floors, sanic-cookies targets.

Every app answers the same four paths, one per scenario:

* ``/rmw``: read a counter from the session, increment it, write it back (inside
  ``async with`` for sanic-cookies). Loaded with a cookie: the returning visitor.
* ``/new``: the same handler, loaded without a cookie: a new visitor each request.
* ``/untouched``: the session is present but the handler never uses it.
* ``/read``: read-only (``await request.ctx.session.load()`` for sanic-cookies).

The floors are what a careful developer writes by hand, with no library: a dict
keyed by the cookie, redis-py GET+SET, asyncpg SELECT+upsert. One more, ``dict-locked``,
is the memory backend's own work written by hand in one place: how fast the library's
design could be with every layer fused away.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
import time
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec
from sanic import Request, Sanic
from sanic.cookies.request import parse_cookie
from sanic.response import BaseHTTPResponse, HTTPResponse, text

if TYPE_CHECKING:
    import redis.asyncio as aioredis

COOKIE = "session"
TTL = 3600
SCENARIO_PATHS = {"rmw": "/rmw", "new": "/new", "untouched": "/untouched", "read": "/read"}

Handler = Callable[[Request], Coroutine[Any, Any, HTTPResponse]]
_json = msgspec.json.Encoder()
_json_dict = msgspec.json.Decoder(dict[str, Any])


@dataclass(frozen=True)
class StoreOptions:
    """Where the store-backed apps keep their data.

    Attributes:
        redis_url: Redis server URL.
        postgres_dsn: PostgreSQL DSN (asyncpg form, ``postgresql://...``).
        schema: PostgreSQL schema owned by this benchmark run.
        prefix: Redis key prefix owned by this benchmark run.
        pool_size: Connections per PostgreSQL pool (floor and backends alike).
        sweep_interval: The PostgreSQL backends' ``sweep_interval`` (None: their default;
            0: no background sweeper, for a benchmark that sweeps on its own).
    """

    redis_url: str = "redis://127.0.0.1:6379/0"
    postgres_dsn: str = "postgresql://postgres@127.0.0.1:5432/test"
    schema: str = "bench"
    prefix: str = "bench:"
    pool_size: int = 10
    sweep_interval: float | None = None


def _routes(app: Sanic[Any, Any], rmw: Handler, untouched: Handler, read: Handler) -> None:
    app.add_route(rmw, "/rmw", name="rmw")
    app.add_route(rmw, "/new", name="new")
    app.add_route(untouched, "/untouched", name="untouched")
    app.add_route(read, "/read", name="read")


async def _ok(request: Request) -> HTTPResponse:
    return text("ok")


async def _locked_rmw(request: Request) -> HTTPResponse:
    """The read-modify-write of a session used through ``async with`` (sanic-cookies' way)."""
    async with request.ctx.session as sess:
        n = sess.get("n", 0) + 1
        sess["n"] = n
    return text(str(n))


def _new_cookie(response: HTTPResponse, sid: str) -> None:
    response.add_cookie(
        COOKIE, sid, path="/", max_age=TTL, httponly=True, secure=True, samesite="Lax"
    )


def _app(name: str) -> Sanic[Any, Any]:
    app: Sanic[Any, Any] = Sanic(f"bench_{name.replace('-', '_').replace('.', '_')}")
    app.config.ACCESS_LOG = False
    app.config.MOTD = False
    return app


# -- bare Sanic: the handlers without any session ------------------------------------------


def bare_app(options: StoreOptions) -> Sanic[Any, Any]:
    """Bare Sanic: every path answers a constant (the cost of no session at all)."""
    app = _app("bare")

    async def rmw(request: Request) -> HTTPResponse:
        return text("1")

    _routes(app, rmw, _ok, rmw)
    return app


def middleware_app(options: StoreOptions) -> Sanic[Any, Any]:
    """Bare Sanic plus a no-op request and response middleware (what any hook costs)."""
    app = bare_app(options)

    async def on_request(request: Request) -> None:
        request.ctx.session = None

    async def on_response(request: Request, response: BaseHTTPResponse) -> None:
        return None

    app.register_middleware(on_request, "request")
    app.register_middleware(on_response, "response")
    return app


# -- floor: a plain dict keyed by the cookie -------------------------------------------------


def dict_app(options: StoreOptions) -> Sanic[Any, Any]:
    """A dict in process memory keyed by the cookie value (no library, no lock needed)."""
    app = _app("dict")
    store: dict[str, dict[str, Any]] = {}

    async def rmw(request: Request) -> HTTPResponse:
        sid = request.cookies.get(COOKIE)
        data = store.get(sid) if sid else None
        created = data is None
        if data is None:
            sid = secrets.token_urlsafe(32)
            data = store[sid] = {}
        n = data.get("n", 0) + 1
        data["n"] = n
        response = text(str(n))
        if created:
            assert sid is not None
            _new_cookie(response, sid)
        return response

    async def read(request: Request) -> HTTPResponse:
        sid = request.cookies.get(COOKIE)
        data = store.get(sid, {}) if sid else {}
        return text(str(data.get("n", 0)))

    _routes(app, rmw, _ok, read)
    return app


# -- floor: the memory backend's work, by hand in one place -------------------------------

#: What a session id this floor issues looks like (``secrets.token_urlsafe(32)``).
_ID = re.compile(r"[A-Za-z0-9_-]{43}")
#: The sliding expiry moves at most this often (the library's default refresh interval).
_REFRESH_AFTER = 60.0
#: The absolute lifetime of a session (the library's default).
_LIFETIME = 86400.0


class _Record(msgspec.Struct, array_like=True):
    """What the ``dict-locked`` floor stores: the data as raw JSON and three timestamps."""

    data: msgspec.Raw
    created: float
    deadline: float
    expires_at: float


_record_json = msgspec.json.Decoder(_Record)


async def _take(locks: dict[bytes, list[asyncio.Future[None]]], key: bytes) -> None:
    """Lock `key`: wait while another request holds it."""
    while key in locks:
        waiter = asyncio.get_running_loop().create_future()
        locks[key].append(waiter)
        await waiter
    locks[key] = []


def _give(locks: dict[bytes, list[asyncio.Future[None]]], key: bytes) -> None:
    """Unlock `key`: wake whoever waits for it."""
    for waiter in locks.pop(key):
        if not waiter.done():
            waiter.set_result(None)


def dict_locked_app(options: StoreOptions) -> Sanic[Any, Any]:
    """The memory backend's work by hand, with no layers: how fast the library could be.

    What the library does on a memory backend and the ``dict`` floor skips: the session
    is made lazily per request (an untouched one costs no lookup), the id's shape is
    checked, the session is stored under the SHA-256 of its id (a store dump holds no
    cookie that works) and locked per key for the length of ``async with``; the record
    holds the data as raw JSON, the creation time, an absolute deadline and a sliding
    expiry; it is rewritten only when the data changed or the expiry is due, and then a
    cookie with Max-Age goes out. Left out: logins, typed data, metrics, store errors,
    settings, destroy and regenerate. The request and response middleware are the
    library's own cost too: it is one.
    """
    app = _app("dict-locked")
    store: dict[bytes, bytes] = {}
    locks: dict[bytes, list[asyncio.Future[None]]] = {}

    class LockedSession:
        """One request's session: ``async with`` locks, loads and writes it."""

        # (The headers, not the request: request -> ctx -> session -> request is a cycle.)
        __slots__ = ("_headers", "_key", "_orig", "_record", "data", "send", "sid")

        def __init__(self, headers: Any) -> None:
            self._headers = headers
            self.send = False
            self.sid = ""

        async def __aenter__(self) -> dict[str, Any]:
            t = time.time()
            sid = parse_cookie(self._headers.getone("cookie", "")).get(COOKIE, [""])[0]
            record = None
            if _ID.fullmatch(sid):
                self._key = hashlib.sha256(sid.encode()).digest()
                await _take(locks, self._key)
                raw = store.get(self._key)
                record = None if raw is None else _record_json.decode(raw)
                if record is None or min(record.expires_at, record.deadline) <= t:
                    _give(locks, self._key)
                    record = None
            if record is None:  # no cookie, or an unknown or expired one: a new session
                sid = secrets.token_urlsafe(32)
                self._key = hashlib.sha256(sid.encode()).digest()
                await _take(locks, self._key)
                record = _Record(msgspec.Raw(b"{}"), t, t + _LIFETIME, 0.0)
            self.sid, self._record, self._orig = sid, record, bytes(record.data)
            self.data = _json_dict.decode(record.data)
            return self.data

        async def __aexit__(self, *exc_info: object) -> None:
            try:
                data = _json.encode(self.data)
                record = self._record
                expires_at = min(time.time() + TTL, record.deadline)
                refresh = expires_at - record.expires_at >= _REFRESH_AFTER
                if exc_info[0] is None and (data != self._orig or refresh):
                    record = _Record(msgspec.Raw(data), record.created, record.deadline, expires_at)
                    store[self._key] = _json.encode(record)
                    self._record, self._orig, self.send = record, data, refresh
            finally:
                _give(locks, self._key)

    async def on_request(request: Request) -> None:
        request.ctx.session = LockedSession(request.headers)

    async def on_response(request: Request, response: BaseHTTPResponse) -> None:
        session = request.ctx.session
        if session.send:
            _new_cookie(response, session.sid)

    app.register_middleware(on_request, "request")
    app.register_middleware(on_response, "response")

    async def read(request: Request) -> HTTPResponse:
        async with request.ctx.session as sess:
            return text(str(sess.get("n", 0)))

    _routes(app, _locked_rmw, _ok, read)
    return app


# -- floor: redis-py GET + SET -----------------------------------------------------------------


def redis_client(app: Sanic[Any, Any], url: str) -> list[aioredis.Redis]:
    """A redis-py client for `app`'s server: the list holds it from start-up to shutdown.

    Default client options, as a developer would write it (and as the backend uses).
    """
    import redis.asyncio as aioredis

    client: list[aioredis.Redis] = []

    @app.before_server_start
    async def connect(app: Sanic[Any, Any]) -> None:
        client.append(aioredis.Redis.from_url(url))

    @app.after_server_stop
    async def disconnect(app: Sanic[Any, Any]) -> None:
        await client[0].aclose()

    return client


def redis_raw_app(options: StoreOptions) -> Sanic[Any, Any]:
    """redis-py GET + SET per request (two round trips), no lock."""
    app = _app("redis-raw")
    client = redis_client(app, options.redis_url)

    async def rmw(request: Request) -> HTTPResponse:
        r = client[0]
        sid = request.cookies.get(COOKIE)
        raw = await r.get(options.prefix + sid) if sid else None
        created = raw is None
        if sid is None or raw is None:
            sid = secrets.token_urlsafe(32)
            data: dict[str, Any] = {}
        else:
            data = _json_dict.decode(raw)
        n = data.get("n", 0) + 1
        data["n"] = n
        await r.set(options.prefix + sid, _json.encode(data), ex=TTL)
        response = text(str(n))
        if created:
            _new_cookie(response, sid)
        return response

    async def read(request: Request) -> HTTPResponse:
        sid = request.cookies.get(COOKIE)
        raw = await client[0].get(options.prefix + sid) if sid else None
        data = _json_dict.decode(raw) if raw else {}
        return text(str(data.get("n", 0)))

    _routes(app, _locked_rmw, _ok, read)
    return app


# -- floor: redis-py GET + SET, concurrent requests pipelined on one connection -------------


class PipelinedRedis:
    """Raw redis-py, by hand: the commands of one event-loop tick go out in one write.

    What a careful developer writes once redis-py's per-command cost shows (a
    connection taken from the pool under a lock, a reply timer, hooks): one
    dedicated redis-py `Connection`, made and connected at start-up with the
    client's settings; the commands queued in a tick are packed with redis-py's
    own packer and written together by one task, and one reader task hands the
    replies back in order (Redis answers a connection's commands in the order
    it got them). The same idea as the Redis backend's auto-pipeline, written
    with redis-py's public connection API only. Each caller still waits for
    its own reply, so a request's GET and SET are still two round trips.

    A floor, not a library: no reply timeout and no reconnection (a lost
    connection fails what is in flight and every later command).
    """

    def __init__(self, client: aioredis.Redis) -> None:
        self._conn = client.connection_pool.make_connection()
        self._queue: list[tuple[tuple[Any, ...], asyncio.Future[Any]]] = []
        self._waiting: deque[asyncio.Future[Any]] = deque()
        self._reader: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def connect(self) -> None:
        """Open the connection (before the first command)."""
        await self._conn.connect()  # type: ignore[no-untyped-call]

    async def aclose(self) -> None:
        """Close the connection."""
        await self._conn.disconnect()

    def execute(self, *args: Any) -> asyncio.Future[Any]:
        """Queue one command; its reply arrives in the future."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.append((args, future))
        if len(self._queue) == 1:  # the first of this tick: send the batch on the next one
            self._keep(loop.create_task(self._send()))
        return future

    def _keep(self, task: asyncio.Task[None]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self) -> None:
        batch, self._queue = self._queue, []
        self._waiting.extend(future for _, future in batch)
        if self._reader is None:
            self._reader = asyncio.get_running_loop().create_task(self._read())
        packed = self._conn.pack_commands([args for args, _ in batch])
        # Connected already: it writes before its first pause, so batches keep their order.
        await self._conn.send_packed_command(packed, check_health=False)

    async def _read(self) -> None:
        from redis.exceptions import ResponseError

        waiting = self._waiting
        try:
            while waiting:
                try:
                    reply = await self._conn.read_response()
                except ResponseError as exc:  # an error reply: this command only
                    reply = exc
                future = waiting.popleft()
                if future.done():  # its caller was cancelled (a client hung up)
                    continue
                if isinstance(reply, ResponseError):
                    future.set_exception(reply)
                else:
                    future.set_result(reply)
        except Exception as exc:
            while waiting:
                future = waiting.popleft()
                if not future.done():
                    future.set_exception(exc)
        finally:
            self._reader = None


def redis_pipe_app(options: StoreOptions) -> Sanic[Any, Any]:
    """redis-py GET + SET per request like ``redis-raw``, auto-pipelined (`PipelinedRedis`)."""
    app = _app("redis-pipe")
    client = redis_client(app, options.redis_url)
    pipe: list[PipelinedRedis] = []

    @app.before_server_start
    async def connect(app: Sanic[Any, Any]) -> None:
        pipe.append(PipelinedRedis(client[0]))
        await pipe[0].connect()

    @app.after_server_stop
    async def disconnect(app: Sanic[Any, Any]) -> None:
        await pipe[0].aclose()

    async def rmw(request: Request) -> HTTPResponse:
        run = pipe[0].execute
        sid = request.cookies.get(COOKIE)
        raw = await run("GET", options.prefix + sid) if sid else None
        created = raw is None
        if sid is None or raw is None:
            sid = secrets.token_urlsafe(32)
            data: dict[str, Any] = {}
        else:
            data = _json_dict.decode(raw)
        n = data.get("n", 0) + 1
        data["n"] = n
        await run("SET", options.prefix + sid, _json.encode(data), "EX", TTL)
        response = text(str(n))
        if created:
            _new_cookie(response, sid)
        return response

    async def read(request: Request) -> HTTPResponse:
        sid = request.cookies.get(COOKIE)
        raw = await pipe[0].execute("GET", options.prefix + sid) if sid else None
        data = _json_dict.decode(raw) if raw else {}
        return text(str(data.get("n", 0)))

    _routes(app, rmw, _ok, read)
    return app


# -- floor: asyncpg SELECT + upsert ------------------------------------------------------------

RAW_TABLE = "raw_sessions"


def pg_raw_app(options: StoreOptions) -> Sanic[Any, Any]:
    """asyncpg SELECT + upsert on one pooled connection per request (two round trips).

    The pool's reset-on-release query is turned off (it would be a third round trip):
    this floor holds no session state that needs resetting.
    """
    import asyncpg

    app = _app("pg-raw")
    pools: list[asyncpg.Pool] = []
    table = f'"{options.schema}".{RAW_TABLE}'
    select = f"SELECT value FROM {table} WHERE key = $1 AND expires_at > $2"
    upsert = (
        f"INSERT INTO {table} (key, value, expires_at) VALUES ($1, $2, $3) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at"
    )

    async def no_reset(conn: asyncpg.Connection) -> None:
        return None

    @app.before_server_start
    async def connect(app: Sanic[Any, Any]) -> None:
        pool = await asyncpg.create_pool(
            options.postgres_dsn,
            min_size=1,
            max_size=options.pool_size,
            reset=no_reset,
        )
        async with pool.acquire() as conn:
            await conn.execute(
                f"CREATE TABLE IF NOT EXISTS {table} "
                "(key text PRIMARY KEY, value bytea NOT NULL, expires_at double precision NOT NULL)"
            )
        pools.append(pool)

    @app.after_server_stop
    async def disconnect(app: Sanic[Any, Any]) -> None:
        await pools[0].close()

    async def rmw(request: Request) -> HTTPResponse:
        sid = request.cookies.get(COOKIE)
        t = time.time()
        async with pools[0].acquire() as conn:
            row = await conn.fetchrow(select, sid, t) if sid else None
            created = row is None
            if sid is None or row is None:
                sid = secrets.token_urlsafe(32)
                data: dict[str, Any] = {}
            else:
                data = _json_dict.decode(row[0])
            n = data.get("n", 0) + 1
            data["n"] = n
            await conn.execute(upsert, sid, _json.encode(data), t + TTL)
        response = text(str(n))
        if created:
            _new_cookie(response, sid)
        return response

    async def read(request: Request) -> HTTPResponse:
        sid = request.cookies.get(COOKIE)
        row = None
        if sid:
            async with pools[0].acquire() as conn:
                row = await conn.fetchrow(select, sid, time.time())
        data = _json_dict.decode(row[0]) if row else {}
        return text(str(data.get("n", 0)))

    _routes(app, rmw, _ok, read)
    return app


# -- sanic-cookies ---------------------------------------------------------------------------


def _session_app(
    name: str,
    backend: Any,
    backend_options: dict[str, Any] | None = None,
    *,
    autoload: bool = False,
) -> Sanic[Any, Any]:
    from sanic_cookies import Session

    app = _app(name)
    # warn_lock off: the read-only scenario reads outside `async with` on purpose.
    Session(
        app, backend=backend, backend_options=backend_options, warn_lock=False, autoload=autoload
    )

    async def read(request: Request) -> HTTPResponse:
        sess = await request.ctx.session.load()
        return text(str(sess.get("n", 0)))

    async def plain_read(request: Request) -> HTTPResponse:
        # What autoload is for: 0.4-style plain access, loaded by the middleware.
        return text(str(request.ctx.session.get("n", 0)))

    _routes(app, _locked_rmw, _ok, plain_read if autoload else read)
    return app


def memory_app(options: StoreOptions) -> Sanic[Any, Any]:
    """sanic-cookies with the built-in memory backend."""
    return _session_app("memory", "memory://")


def _query(url: str, **params: Any) -> str:
    from urllib.parse import urlencode

    return f"{url}{'&' if '?' in url else '?'}{urlencode(params)}"


def redis_app(options: StoreOptions) -> Sanic[Any, Any]:
    """sanic-cookies with the Redis backend (its default client options)."""
    return _session_app("redis", _query(options.redis_url, prefix=options.prefix + "s:"))


def redis_autoload_app(options: StoreOptions) -> Sanic[Any, Any]:
    """sanic-cookies on Redis with ``autoload=True``; ``/read`` uses plain access."""
    url = _query(options.redis_url, prefix=options.prefix + "s:")
    return _session_app("redis-autoload", url, autoload=True)


def postgres_app(options: StoreOptions) -> Sanic[Any, Any]:
    """sanic-cookies with the PostgreSQL backend on asyncpg."""
    url = _query(
        options.postgres_dsn, schema=options.schema, create_table="true", max_size=options.pool_size
    )
    if options.sweep_interval is not None:
        url = _query(url, sweep_interval=options.sweep_interval)
    return _session_app("postgres", url)


def postgres_sqla_app(options: StoreOptions) -> Sanic[Any, Any]:
    """sanic-cookies with the PostgreSQL backend on SQLAlchemy (asyncpg driver)."""
    dsn = options.postgres_dsn.replace("postgresql://", "postgresql+asyncpg://", 1)
    url = _query(
        dsn,
        schema=options.schema,
        table="sessions_sqla",
        create_table="true",
        pool_size=options.pool_size,
    )
    return _session_app("postgres-sqla", url)


def cookie_app(options: StoreOptions) -> Sanic[Any, Any]:
    """sanic-cookies with the encrypted-cookie backend (a fresh key per server)."""
    from cryptography.fernet import Fernet

    return _session_app("cookie", "cookie://", {"keys": [Fernet.generate_key().decode()]})


def cookie_v1_app(options: StoreOptions) -> Sanic[Any, Any]:
    """The same with 1.0.0's token format (Fernet, deflate): the baseline of the new one."""
    from cryptography.fernet import Fernet

    from bench.cookie_v1 import CookieBackendV1

    return _session_app("cookie-1.0", CookieBackendV1(keys=[Fernet.generate_key().decode()]))


AppFactory = Callable[[StoreOptions], Sanic[Any, Any]]

#: Every app by name. Backends that are not installed fail when built, not when listed.
APPS: dict[str, AppFactory] = {
    "bare": bare_app,
    "middleware": middleware_app,
    "dict": dict_app,
    "dict-locked": dict_locked_app,
    "redis-raw": redis_raw_app,
    "redis-pipe": redis_pipe_app,
    "pg-raw": pg_raw_app,
    "memory": memory_app,
    "redis": redis_app,
    "redis-autoload": redis_autoload_app,
    "postgres": postgres_app,
    "postgres-sqla": postgres_sqla_app,
    "cookie": cookie_app,
    "cookie-1.0": cookie_v1_app,
}
