"""`RedisBackend`: sessions in Redis or Redis Cluster, with a distributed lock."""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
from collections.abc import Coroutine, Iterable, Mapping
from typing import Any, ClassVar, Self, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from redis.asyncio.cluster import RedisCluster
from redis.exceptions import (
    AuthenticationError,
    AuthorizationError,
    NoPermissionError,
    ResponseError,
)
from sanic_cookies import (
    Backend,
    ConfigurationError,
    KeyTurns,
    LockLost,
    StoredSession,
    clock,
    redact_url,
)

from ._client import AnyRedis, Runner, Scripts, build_client, ms, public_location
from ._cluster_pipeline import ClusterAutoPipeline
from ._keys import KeySpace
from ._lock import RedisLock
from ._lock_store import LockStore
from ._pipeline import AutoPipeline
from ._replicated import DEFAULT_MIN_REPLICAS_TIMEOUT, ReplicatedWrites, check_min_replicas
from ._sentinel import MasterWatch, SentinelRedis
from ._wakeup import Wakeups

__all__ = ["RedisBackend"]

logger = logging.getLogger("sanic_cookies.redis")

# Redis's answers to a SELECT of a db it does not have (out of range, or not a number).
_REFUSED_DB = re.compile("DB index|value is not an integer or out of range")

T = TypeVar("T")

_SCHEMES = {
    "redis": ("redis", False),
    "rediss": ("rediss", False),
    "redis+cluster": ("redis", True),
    "rediss+cluster": ("rediss", True),
    "redis+sentinel": ("redis+sentinel", False),
    "rediss+sentinel": ("rediss+sentinel", False),
}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}

# How many per-session commands `list_user_sessions` / `delete_user_sessions` keep in flight.
_FAN_OUT = 32


class RedisBackend(Backend):
    """Sessions in Redis (5.0 or newer), with native TTLs and a lock across processes.

    Build it from a URL (``redis://``, ``rediss://`` for TLS, ``redis+cluster://``
    or ``rediss+cluster://`` for Redis Cluster, ``redis+sentinel://`` or
    ``rediss+sentinel://`` for a master found through Redis Sentinel)::

        Session(app, backend="redis://:secret@cache:6379/2?prefix=myapp:session:")
        Session(app, backend="redis+sentinel://:secret@s1:26379,s2:26379,s3:26379/mymaster/0")
        RedisBackend.from_url("rediss://cache:6380/0", socket_timeout=1.0)

    or wrap a client the application already has (it is not closed by `close`)::

        RedisBackend(client=app.ctx.redis, prefix="myapp:session:")

    Each operation is one Lua script (EVALSHA, one round trip): `load` returns
    the value and its expiry together, `lock().acquire()` takes the lock and
    loads, `save_and_release` writes and releases, so a locked
    read-modify-write costs two round trips and an untouched session none.

    The commands of concurrent requests are auto-pipelined: those issued in
    the same event-loop tick go out in one write on one dedicated connection
    (see `AutoPipeline`), which costs the worker 3-4 times less CPU per
    command than redis-py's connection pool. On Redis Cluster that is one
    connection and one write per primary, each command going to the owner of
    its slot, with ``MOVED`` and ``ASK`` followed (see `ClusterAutoPipeline`).
    Each request still waits for its own reply only.

    Redis being down or unreachable makes each call fail within the connect
    timeout (1 s) or reply timeout (2 s); the core answers 503 and logs one
    line. The client reconnects by itself when Redis is back; nothing is
    deleted or rewritten because of an error. `open` does not fail the app's
    start when Redis is briefly away: it logs a warning, and requests get 503
    until Redis answers (a wrong password or database fails the start).

    Storage: a session is a hash ``<prefix>{<key>}`` with the PX expiry of the
    session; its lock is ``<prefix>{<key>}:lock``; the per-user index is a
    sorted set ``<prefix>user:{<user id>}``. The hash tags keep a session's
    keys in one cluster slot.

    Args:
        url: Where Redis is, as for `redis.asyncio.Redis.from_url`: the db,
            password, TLS and pool options may be in the URL. Ignored when
            `client` is given.
        client: An existing `redis.asyncio.Redis` or `RedisCluster` to use
            instead of building one. It must not decode responses.
        prefix: Prepended to every key (no ``{`` or ``}``).
        cluster: Build a `RedisCluster` client from `url`.
        auto_pipeline: Send the commands of one server (of each cluster
            primary) through one shared, pipelined connection (made with the
            client's settings, outside its pool). False sends each through
            the client's pool. Behind Sentinel the shared connection, like
            the pool's, asks the sentinels for the master whenever it
            (re)connects.
        min_replicas: Acknowledge a session write (save, delete) only once
            this many replicas have it: each is followed by ``WAIT`` on the
            same pooled connection, and a write fewer replicas acknowledged
            within `min_replicas_timeout` answers 503 (`BackendUnavailable`).
            0 (the default) does not wait: Redis replication is
            asynchronous, so a failover can lose the last writes the old
            master acknowledged. Not on Redis Cluster.
        min_replicas_timeout: Seconds a write waits for `min_replicas`
            replicas; below the reply timeout (``socket_timeout``).
        **client_options: Keyword arguments for the redis-py client, over
            these defaults: ``socket_connect_timeout=1.0``,
            ``socket_timeout=2.0``, no automatic retries (see
            `build_client`). Query-string options in `url` win over them.

    Raises:
        ConfigurationError: Options that contradict each other, a bad prefix,
            or a client that decodes responses.
    """

    name: ClassVar[str] = "redis"
    supports_user_index: ClassVar[bool] = True
    per_process: ClassVar[bool] = False
    # Every key carries a TTL: Redis drops expired sessions itself; cleanup() has nothing to do.
    expires_entries_itself: ClassVar[bool] = True

    # The user-index entry of a session is written to outlive the session by
    # this much (ms) beyond twice its TTL, so a session saved or touched again
    # and again rewrites its index entry only about once per TTL.
    _INDEX_EXTRA_MS: ClassVar[int] = 60_000
    # The data records its index entry as ending this much (ms) earlier than it
    # does, which absorbs the delay between writing the two.
    _INDEX_SAFETY_MS: ClassVar[int] = 5_000

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        client: AnyRedis | None = None,
        prefix: str = "session:",
        cluster: bool = False,
        auto_pipeline: bool = True,
        min_replicas: int = 0,
        min_replicas_timeout: float = DEFAULT_MIN_REPLICAS_TIMEOUT,
        **client_options: Any,
    ) -> None:
        self._keys = KeySpace(prefix)
        if client is not None:
            if client_options:
                raise ConfigurationError(
                    "RedisBackend(client=...) uses that client as it is: configure it there, "
                    f"not with {', '.join(sorted(client_options))}"
                )
            if client.get_encoder().decode_responses:
                raise ConfigurationError(
                    "RedisBackend needs a client with decode_responses=False (sessions are bytes)"
                )
            cluster = isinstance(client, RedisCluster)
            self._where = "a client of the application"
        else:
            self._where = public_location(url)
        self._url = url
        self._cluster = cluster
        self._client_options = client_options
        self._given = client
        self._client: AnyRedis | None = client
        self._auto_pipeline = auto_pipeline
        self._pipeline: AutoPipeline | ClusterAutoPipeline | None = None
        self._watch: MasterWatch | None = None
        self._scripts_cache: Scripts | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False  # background work is refused between close and open
        # The lock's waiters: in-process turns per key, and the cross-process wake-up.
        self._turns = KeyTurns()
        self._wakeups_cache: Wakeups | None = None
        # All a RedisLock may use of this backend (it reads nothing else of it).
        self._lock_store = LockStore(
            label=self.label,
            keys=self._keys,
            turns=self._turns,
            scripts=lambda: self._scripts,
            watching=lambda channel: self._wakeups.watching(channel),
            save=self._save,
            delete=self._delete,
            expires_at=self._expires_at,
            spawn=self._spawn,
            index_safety_ms=self._INDEX_SAFETY_MS,
        )
        if client is None:
            self._client = build_client(url, cluster=cluster, options=dict(client_options))
        built = self._client
        socket_timeout = (
            None
            if built is None or isinstance(built, RedisCluster)
            else built.connection_pool.connection_kwargs.get("socket_timeout")
        )
        check_min_replicas(
            min_replicas, min_replicas_timeout, socket_timeout=socket_timeout, cluster=cluster
        )
        self._min_replicas = min_replicas
        self._min_replicas_timeout = min_replicas_timeout

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """Build the backend from a URL; keyword options override the URL's.

        Besides what redis-py reads from a URL (db in the path, user and
        password, ``socket_timeout``, ``max_connections``, ... in the query),
        the query string may hold ``prefix`` (the key prefix),
        ``cluster=true`` (same as a ``redis+cluster://`` scheme),
        ``auto_pipeline=false``, ``min_replicas`` and ``min_replicas_timeout``::

            redis://:pw@localhost:6379/0?prefix=shop:sess:&socket_timeout=1
            rediss+cluster://node1:7000?prefix=shop:
            redis+sentinel://:pw@s1:26379,s2:26379/mymaster/0?min_replicas=1

        A Sentinel URL lists the sentinels, then the service name and the db
        in its path; its password is the Redis servers' (``sentinel_password``
        in the query is the sentinels' own).

        Args:
            url: A ``redis``, ``rediss``, ``redis+cluster``, ``rediss+cluster``,
                ``redis+sentinel`` or ``rediss+sentinel`` URL.
            **options: ``prefix``, ``cluster``, ``auto_pipeline``,
                ``min_replicas``, ``min_replicas_timeout``, ``client`` or
                redis-py client options.

        Raises:
            ConfigurationError: An unknown scheme or a bad option value.
        """
        public_location(url)  # a URL that does not parse fails here, shown redacted
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in _SCHEMES:
            raise ConfigurationError(
                f"RedisBackend serves {', '.join(s + '://' for s in _SCHEMES)} URLs, "
                f"got {redact_url(url)!r}"
            )
        real_scheme, cluster = _SCHEMES[scheme]
        kwargs: dict[str, Any] = {"cluster": cluster}
        query = []
        for name, value in parse_qsl(parts.query, keep_blank_values=True):
            if name == "prefix":
                kwargs["prefix"] = value
            elif name == "cluster":
                kwargs["cluster"] = _flag(name, value) or cluster
            elif name == "auto_pipeline":
                kwargs["auto_pipeline"] = _flag(name, value)
            elif name == "min_replicas":
                kwargs["min_replicas"] = _number(name, value, int)
            elif name == "min_replicas_timeout":
                kwargs["min_replicas_timeout"] = _number(name, value, float)
            elif name not in options:  # (redis-py lets the URL win: the keyword must)
                query.append((name, value))
        kwargs.update(options)
        if kwargs["cluster"] and scheme.endswith("+sentinel"):
            raise ConfigurationError(
                f"A Sentinel URL cannot also be a cluster: {redact_url(url)!r}"
            )
        netloc, path = _without_keywords(parts.netloc, parts.path, options, scheme)
        redis_url = urlunsplit((real_scheme, netloc, path, urlencode(query), parts.fragment))
        if not parts.netloc:
            # urlunsplit drops an empty authority ("scheme:/path"); keep it, so the URL
            # parsers below name the real problem (no host, no sentinel).
            redis_url = redis_url.replace(":", "://", 1)
        return cls(redis_url, **kwargs)

    # -- connection --------------------------------------------------------------

    @property
    def client(self) -> AnyRedis:
        """The redis-py client in use (built on first use if the backend built its own)."""
        if self._client is None:
            self._client = build_client(
                self._url, cluster=self._cluster, options=dict(self._client_options)
            )
            self._scripts_cache = self._pipeline = None
            self._wakeups_cache = None
        return self._client

    @property
    def _scripts(self) -> Scripts:
        if self._scripts_cache is None:
            write_run: Runner | None = None
            client = self.client
            if self._min_replicas and not isinstance(client, RedisCluster):
                write_run = ReplicatedWrites(
                    client, self._min_replicas, self._min_replicas_timeout, self._where
                )
            self._scripts_cache = Scripts(self._runner(), write_run)
        return self._scripts_cache

    @property
    def _wakeups(self) -> Wakeups:
        if self._wakeups_cache is None:
            self._wakeups_cache = Wakeups(getattr(self.client, "pubsub", None))
        return self._wakeups_cache

    def _runner(self) -> Runner:
        client = self.client
        if not self._auto_pipeline:
            return client.execute_command
        if isinstance(client, RedisCluster):
            cluster_pipeline = ClusterAutoPipeline(client)
            self._pipeline = cluster_pipeline
            return cluster_pipeline.execute
        self._pipeline = AutoPipeline(client.connection_pool)
        return self._pipeline.execute

    async def open(self) -> None:
        """Connect, check Redis answers, and load the scripts into its cache.

        A Redis that cannot be reached is logged as a warning, not raised: the
        app starts, requests needing a session get 503 until Redis is back.
        Works again after `close` (a new client is built if the backend owns it).

        Behind Sentinel, a `MasterWatch` starts polling the sentinels: when
        the master moves, every connection to the old one is dropped before
        further writes (see `_sentinel`).

        Raises:
            ConfigurationError: Redis refused the credentials, the user's rights
                (an ACL without EVALSHA, SCRIPT or PING) or the database,
                or (behind Sentinel) the sentinels refused their credentials or
                monitor no service of the URL's name.
        """
        self._closed = False
        client = self.client
        scripts = self._scripts
        try:
            if isinstance(client, SentinelRedis):
                if self._watch is None:
                    self._watch = MasterWatch(client, self._master_moved)
                await self._watch.check()  # before the first connection: a wrong name fails here
                self._watch.start()
            if isinstance(client, RedisCluster):  # SCRIPT LOAD goes to every primary
                await client.ping()
                await asyncio.gather(*(client.script_load(s.script) for s in scripts.all()))
            else:  # auto-pipelined, one round trip that opens the shared connection too
                run = scripts.run
                replies = await asyncio.gather(
                    run("PING"),
                    *(run("SCRIPT", "LOAD", s.script) for s in scripts.all()),
                    return_exceptions=True,
                )
                for reply in replies:
                    if isinstance(reply, BaseException):
                        raise reply
        except ConfigurationError:
            raise
        except Exception as exc:
            refused = isinstance(
                exc, AuthenticationError | AuthorizationError | NoPermissionError
            ) or (isinstance(exc, ResponseError) and _REFUSED_DB.search(str(exc)) is not None)
            if refused:  # a mistake in the settings, which waiting will not fix
                raise ConfigurationError(
                    f"Redis at {self._where} refused the session store: {type(exc).__name__}: {exc}"
                ) from exc
            # One short line: redis-py's sentinel errors carry kilobytes of reprs.
            detail = str(exc).splitlines()[0][:160] if str(exc) else ""
            if isinstance(client, SentinelRedis):
                detail = "no sentinel named a reachable master"
            logger.warning(
                "Redis session store at %s is unreachable at start-up (%s: %s); "
                "requests that need a session answer 503 until it is back",
                self._where,
                type(exc).__name__,
                detail,
            )

    async def close(self) -> None:
        """Finish background lock releases and close the client, unless it was given to us.

        The auto-pipeline's connections are closed in both cases.
        """
        self._closed = True
        tasks, self._tasks = self._tasks, set()
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=1.0)
            for task in pending:
                task.cancel()
        watch, self._watch = self._watch, None
        if watch is not None:
            await watch.aclose()
        pipeline, self._pipeline = self._pipeline, None
        self._scripts_cache = None
        wakeups, self._wakeups_cache = self._wakeups_cache, None
        if wakeups is not None:
            await wakeups.aclose()
        if pipeline is not None:
            await pipeline.aclose()
        if self._given is None:
            client, self._client = self._client, None
            if client is not None:
                await client.aclose()

    def _master_moved(self) -> None:
        """The sentinels name a new master: drop every connection to the old one now.

        Its writes would be lost when it turns replica and resyncs; the
        commands in flight on them fail (503s), the next ones connect anew.
        """
        pipeline = self._pipeline
        if isinstance(pipeline, AutoPipeline):
            pipeline.drop_connection()
        client = self._client
        if isinstance(client, SentinelRedis):
            self._spawn(client.connection_pool.disconnect(inuse_connections=True))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run `coro` in the background, keeping a reference until it is done.

        Not once the backend is closed: it would rebuild the client `close` closed.
        """
        if self._closed:
            coro.close()
            return
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    def _expires_at(pttl: int) -> float:
        if pttl == -1:  # no expiry: only a key written by someone else
            return math.inf
        # What Redis has left, counted from the library's clock (the TTL runs on Redis's).
        return clock.now() + max(pttl, 0) / 1000

    def __repr__(self) -> str:
        kind = "cluster" if self._cluster else "server"
        if self._given is None and self._url.partition("://")[0].endswith("+sentinel"):
            kind = "sentinel"
        return f"<RedisBackend {kind} {self._where} prefix={self._keys.prefix!r}>"

    # -- the Backend contract -------------------------------------------------------

    async def load(self, key: str) -> StoredSession | None:
        """The value stored under `key` and its expiry (one script, one round trip)."""
        reply = await self._scripts.load([self._keys.data(key)])
        if reply is None:
            return None
        return StoredSession(bytes(reply[0]), self._expires_at(int(reply[1])))

    async def save(
        self,
        key: str,
        value: bytes,
        ttl: float,
        *,
        user_id: str | None = None,
        replace_only: bool = False,
    ) -> bool:
        """Store `value` under `key` for `ttl` seconds (PX, rounded up to a millisecond).

        One round trip; a new entry in a user's index costs one more, written
        before the session so logout-everywhere can never miss it.
        """
        return await self._save(
            key,
            value,
            ms(ttl),
            user_id=user_id,
            replace_only=replace_only,
            token=None,
            index_first=user_id is not None and not replace_only,
        )

    async def delete(self, key: str) -> None:
        """Delete `key`, then its user-index entry. Missing keys are not an error."""
        await self._delete(key, token=None)

    async def touch(self, key: str, ttl: float) -> bool:
        """Set the TTL of `key` to `ttl` seconds (PEXPIRE), without rewriting the value."""
        ttl_ms = ms(ttl)
        data = self._keys.data(key)
        reply = await self._scripts.touch([data], [ttl_ms, 0, ""])
        if reply[0] == -2:  # the session would outlive its user-index entry: renew that first
            until, stamp = await self._index_add(reply[1].decode(), key, ttl_ms)
            reply = await self._scripts.touch([data], [ttl_ms, until, stamp])
        if reply[0] == -2:
            raise RuntimeError(f"touch of a session on {self.label}: user index not renewed")
        return bool(reply[0] == 1)

    def lock(self, key: str, *, timeout: float, lease: float) -> RedisLock:
        """A `RedisLock` on `key` (not yet acquired)."""
        return RedisLock(self._lock_store, key, timeout=timeout, lease=lease)

    async def list_user_sessions(self, user_id: str) -> Mapping[str, StoredSession]:
        """The live sessions of `user_id`, by key.

        Index entries whose guarantee has run out are pruned; sessions that
        expired, were deleted or changed owner are skipped (their entries go
        when their guarantee ends: see `_scripts`).
        """
        keys = await self._index_members(user_id)
        replies = await _bounded(
            self._scripts.load_if_owned([self._keys.data(k)], [user_id]) for k in keys
        )
        return {
            k: StoredSession(bytes(r[0]), self._expires_at(int(r[1])))
            for k, r in zip(keys, replies, strict=True)
            if r is not None
        }

    async def delete_user_sessions(self, user_id: str, *, keep: str | None = None) -> int:
        """Delete every session of `user_id` but `keep`; return how many were deleted.

        Each session is deleted by a script that checks it still belongs to
        the user. Deleting the data key is final: a request holding the
        session's lock saves with ``replace_only`` and so cannot bring it back.
        """
        keys = [k for k in await self._index_members(user_id) if k != keep]
        replies = await _bounded(
            self._scripts.delete_if_owned([self._keys.data(k)], [user_id]) for k in keys
        )
        deleted = [(k, r[1]) for k, r in zip(keys, replies, strict=True) if r[0] == 1]
        await _bounded(self._index_forget(user_id, k, stamp) for k, stamp in deleted)
        return len(deleted)

    # -- shared with RedisLock (through its LockStore) ------------------------------

    async def _save(
        self,
        key: str,
        value: bytes,
        ttl_ms: int,
        *,
        user_id: str | None,
        replace_only: bool,
        token: str | None,
        index_first: bool,
    ) -> bool:
        """The save script, fenced by `token` (and then releasing) if given.

        With a `user_id`, the session's user-index entry must outlive the data.
        Redis Cluster keeps the index in another slot than the session, so it
        cannot be updated in the same script. Consistency comes from ordering
        instead: the index entry is written first, and the save script refuses
        (code -2, nothing written) unless the data records an index entry that
        outlives the new expiry. So every live session of a user is in the
        user's index whenever logout-everywhere reads it; the converse is not
        needed, since the index is only a list of candidates that readers check.
        """
        data = self._keys.data(key)
        keys = [data] if token is None else [data, self._keys.lock(key)]
        until, stamp = 0, ""
        if user_id is not None and index_first:
            until, stamp = await self._index_add(user_id, key, ttl_ms)
        for attempt in range(2):
            args: list[bytes | str | int] = [token or "", value, ttl_ms, 1 if replace_only else 0]
            if user_id is not None:
                args += (user_id, until, stamp)
            reply = await self._scripts.save(keys, args)
            if reply != -2 or user_id is None or attempt:
                break
            until, stamp = await self._index_add(user_id, key, ttl_ms)
        if isinstance(reply, list):  # written, and the session changed owner
            await self._index_forget(reply[0].decode(), key, reply[1])
            return True
        code = reply
        if code == -1:
            raise LockLost(
                f"Session lock on {self.label} expired before the save; nothing was written"
            )
        if code == -2:
            raise RuntimeError(f"save of a session on {self.label}: user index not renewed")
        return bool(code == 1)

    async def _delete(self, key: str, *, token: str | None) -> None:
        data = self._keys.data(key)
        keys = [data] if token is None else [data, self._keys.lock(key)]
        reply = await self._scripts.delete(keys, [token or ""])
        if reply[0] == -1:
            raise LockLost(
                f"Session lock on {self.label} expired before the delete; nothing was deleted"
            )
        if reply[1] is not None and reply[2] is not None:
            await self._index_forget(reply[1].decode(), key, reply[2])

    # -- the per-user index ---------------------------------------------------------
    #
    # On Redis Cluster a user's index (hash tag: the user id) and a session (hash
    # tag: the session key) live in different slots, so no script may touch both.
    # Every index operation is therefore its own single-key command, and
    # consistency rests on ordering and on readers checking, not on atomicity:
    #
    # 1. The index is a list of candidates. `list_user_sessions` and
    #    `delete_user_sessions` act on a candidate only after a script on the
    #    session itself confirms it is live and still owned by the user (and the
    #    delete is that same check-and-delete script). A stale entry (session
    #    expired, deleted, or now someone else's) is skipped, never reported or
    #    deleted wrongly.
    # 2. The converse must hold: every live session owned by a user is in the
    #    user's index, or logout-everywhere would miss it. A session's entry is
    #    written BEFORE the session (`_index_add`, then the save script), and
    #    with a score (an expiry on the index node's clock) beyond the session's
    #    own expiry. The session records until when its entry is guaranteed
    #    (``ix``); the save and touch scripts refuse (code -2, nothing written)
    #    to give the session a user or an expiry its entry does not cover, and
    #    the client renews the entry and retries. Entries are pruned only once
    #    their score has passed, when their session must be gone too. So
    #    whenever a live session has owner U, U's index lists it.
    # 3. Eager removals (the old owner's entry after a change of user, the entry
    #    of a deleted session) are conditional on the entry's stamp (its score
    #    when the session last wrote it); re-adding always raises the score, so
    #    a late removal can never drop an entry someone has written since.
    # 4. Deleting a session's data is final: a request holding its lock saves an
    #    existing session with ``replace_only``, which the save script refuses
    #    once the data is gone, so logout-everywhere cannot be undone by a save
    #    in flight. What no ordering can settle is a brand-new session (a new
    #    id) created while logout-everywhere runs: it is a new login, and stays.

    async def _index_add(self, user_id: str, key: str, ttl_ms: int) -> tuple[int, str]:
        """Add or renew `key` in the index of `user_id`.

        Returns:
            (ms the data may count on the entry, measured from the data
            script's clock; the entry's stamp) for the save or touch script.
        """
        until = 2 * ttl_ms + self._INDEX_EXTRA_MS
        started = time.monotonic()  # real time: it measures a TTL Redis keeps
        score = await self._scripts.index_add([self._keys.index(user_id)], [key, until])
        elapsed = math.ceil((time.monotonic() - started) * 1000)
        return max(1, until - elapsed - self._INDEX_SAFETY_MS), str(int(score))

    async def _index_forget(self, user_id: str, key: str, stamp: bytes | str) -> None:
        """Remove `key` from the index of `user_id`, unless re-added since `stamp`.

        Best effort: the session write it follows has already happened, and an
        entry left behind is harmless (readers check ownership; it is pruned
        when its guarantee runs out), so a failure is logged, not raised.
        """
        try:
            await self._scripts.index_remove([self._keys.index(user_id)], [key, stamp])
        except Exception as exc:
            logger.warning(
                "Redis session store at %s: user-index entry not removed (%s: %s); "
                "it is pruned later",
                self._where,
                type(exc).__name__,
                exc,
            )

    async def _index_members(self, user_id: str) -> list[str]:
        members = await self._scripts.index_members([self._keys.index(user_id)])
        return [m.decode() for m in members]


def _number(name: str, value: str, kind: type[int] | type[float]) -> Any:
    try:
        return kind(value)
    except ValueError:
        raise ConfigurationError(f"Redis URL option {name}={value!r} is not a number") from None


def _without_keywords(
    netloc: str, path: str, options: Mapping[str, Any], scheme: str
) -> tuple[str, str]:
    """The URL's authority and path without the db and credentials a keyword sets.

    redis-py lets the URL win over its keyword arguments; `from_url` says the
    keyword wins.
    """
    if "db" in options:  # a Sentinel URL's path is /service[/db]
        path = "/" + path.strip("/").split("/")[0] if scheme.endswith("+sentinel") else ""
    if "username" in options or "password" in options:
        credentials, _, hosts = netloc.rpartition("@")
        user, _, password = credentials.partition(":")
        user = "" if "username" in options else user
        password = "" if "password" in options else password
        netloc = (f"{user}:{password}@" if password else f"{user}@" if user else "") + hosts
    return netloc, path


def _flag(name: str, value: str) -> bool:
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ConfigurationError(f"Redis URL option {name}={value!r} is not a boolean")


async def _bounded(awaitables: Iterable[Coroutine[Any, Any, T]]) -> list[T]:
    """Await many single-key commands, at most `_FAN_OUT` at a time; results in order.

    They hit different keys (different cluster slots), so they cannot be one
    script; running them side by side keeps the latency near one round trip.
    Every command of a batch finishes before the first error is raised.
    """
    items = list(awaitables)
    results: list[T] = []
    for start in range(0, len(items), _FAN_OUT):
        batch = await asyncio.gather(*items[start : start + _FAN_OUT], return_exceptions=True)
        for outcome in batch:
            if isinstance(outcome, BaseException):
                for left in items[start + _FAN_OUT :]:
                    left.close()
                raise outcome
            results.append(outcome)
    return results
