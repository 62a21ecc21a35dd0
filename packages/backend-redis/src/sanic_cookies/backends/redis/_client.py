"""Building the redis-py asyncio client, and calling the scripts through it."""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeAlias
from urllib.parse import unquote, urlsplit, urlunsplit

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, RedisError
from sanic_cookies import ConfigurationError, redact_url, split_backend_url

from . import _scripts
from ._sentinel import (
    build_sentinel_client,
    check_db_once,
    is_sentinel_url,
    sentinel_location,
)

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_SOCKET_TIMEOUT",
    "AnyRedis",
    "Runner",
    "Script",
    "Scripts",
    "build_client",
    "ms",
    "public_location",
]

#: Either kind of asyncio client: one server, or a Redis Cluster.
AnyRedis: TypeAlias = Redis | RedisCluster

#: Sends one command, returns its reply: an `AutoPipeline`'s or a client's ``execute_command``.
Runner: TypeAlias = Callable[..., Awaitable[Any]]

#: Seconds to wait for a TCP (and TLS) connection: a dead Redis fails a request this fast.
DEFAULT_CONNECT_TIMEOUT = 1.0
#: Seconds to wait for a command's reply.
DEFAULT_SOCKET_TIMEOUT = 2.0


def ms(seconds: float) -> int:
    """Seconds as whole milliseconds, rounded up, at least 1 (Redis rejects a zero TTL)."""
    return max(1, math.ceil(seconds * 1000))


def build_client(url: str, *, cluster: bool, options: dict[str, Any]) -> AnyRedis:
    """A new client for `url`: a `RedisCluster` if `cluster`, else a `Redis`.

    A ``redis+sentinel://`` or ``rediss+sentinel://`` `url` gives a `Redis`
    whose connections go to the master the sentinels name (see `_sentinel`).

    Short timeouts and no automatic retries are the defaults (each overridable
    in `options` or in the URL's query string): a request needing a dead Redis
    must fail in about a second, and a retried script could replay a write
    whose reply was lost (a fenced save would then report its own success as
    `LockLost`). redis-py still reconnects by itself: a connection the server
    closed is detected and replaced when it is next taken from the pool.

    Raises:
        ConfigurationError: An option redis-py does not know or cannot parse.
    """
    kwargs: dict[str, Any] = {
        "socket_connect_timeout": DEFAULT_CONNECT_TIMEOUT,
        "socket_timeout": DEFAULT_SOCKET_TIMEOUT,
        "retry": Retry(NoBackoff(), 0),
    }
    kwargs.update(options)
    try:
        if cluster:
            _check_db(url, cluster=True)
            return RedisCluster.from_url(url, **kwargs)
        client: Redis
        if is_sentinel_url(url):
            client = build_sentinel_client(url, kwargs)
        else:
            _check_db(url)
            client = Redis.from_url(url, **kwargs)
        # Connection options are only used when a connection is made: make one now
        # (unconnected) so a misspelt option fails at start-up, not as "Redis unreachable".
        client.connection_pool.make_connection()  # type: ignore[no-untyped-call]
    except ConfigurationError:
        raise
    except (TypeError, ValueError, RedisError) as exc:
        # (No connection is made here: a RedisError is redis-py refusing an option, such
        # as ssl_cert_reqs=bogus or protocol=9.)
        raise ConfigurationError(f"Bad Redis option for {public_location(url)}: {exc}") from None
    return client


def _check_db(url: str, *, cluster: bool = False) -> None:
    # redis-py reads a path that is not a number as db 0, without a word.
    parts = urlsplit(url)
    db = unquote(parts.path.strip("/"))
    check_db_once(db, parts.query, public_location(url))
    if cluster and db not in ("", "0"):
        raise ConfigurationError(
            f"Redis Cluster has only db 0, got {db!r} in {public_location(url)}"
        )
    if db and not re.fullmatch("[0-9]+", db):
        raise ConfigurationError(
            f"The path of a Redis URL is the db number, got {db!r} in {public_location(url)}"
        )


def public_location(url: str) -> str:
    """`url` without its credentials or query, for log lines.

    Raises:
        ConfigurationError: `url` does not parse (its message shows it redacted).
    """
    parts = split_backend_url(url)
    if is_sentinel_url(url):  # several hosts: urlsplit cannot read the port
        return sentinel_location(url)
    if "," in parts.netloc.rpartition("@")[2]:  # (a password may hold a comma)
        raise ConfigurationError(
            f"A Redis URL names one host: for Redis Cluster, one node (the others are "
            f"found from it); for Sentinel, redis+sentinel:// (got {redact_url(url)!r})"
        )
    port = parts.port
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"  # IPv6
    if port is not None:
        host = f"{host}:{port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


class Script:
    """One Lua script, run by EVALSHA; on NOSCRIPT (a flushed or restarted server) by EVAL.

    Not redis-py's `Script` object: that one costs a few µs more per call, and
    its pipeline form checks SCRIPT EXISTS first, an extra round trip.
    Sending EVAL after NOSCRIPT is safe: the script did not run, and EVAL
    caches it again for the next EVALSHA.
    """

    __slots__ = ("_run", "script", "sha")

    def __init__(self, run: Runner, script: str) -> None:
        self._run = run
        self.script = script
        self.sha = hashlib.sha1(script.encode(), usedforsecurity=False).hexdigest()

    async def __call__(self, keys: Sequence[str], args: Sequence[Any] = ()) -> Any:
        """Run the script on `keys` with `args`; its reply."""
        try:
            return await self._run("EVALSHA", self.sha, len(keys), *keys, *args)
        except NoScriptError:
            return await self._run("EVAL", self.script, len(keys), *keys, *args)


class Scripts:
    """The Lua scripts of `_scripts`, each sent through `run`.

    The scripts that write or delete a session's data (save, delete,
    delete_if_owned) go through `write_run` if given: a `ReplicatedWrites`
    when ``min_replicas`` is set.
    """

    _NAMES = (
        "acquire",
        "delete",
        "delete_if_owned",
        "extend",
        "index_add",
        "index_members",
        "index_remove",
        "load",
        "load_if_owned",
        "release",
        "save",
        "touch",
        "void",
    )
    __slots__ = (*_NAMES, "run")

    def __init__(self, run: Runner, write_run: Runner | None = None) -> None:
        self.run = run
        writes = write_run or run

        def register(source: str, runner: Runner = run) -> Script:
            return Script(runner, source)

        self.load = register(_scripts.LOAD)
        self.acquire = register(_scripts.ACQUIRE)
        self.save = register(_scripts.SAVE, writes)
        self.delete = register(_scripts.DELETE, writes)
        self.touch = register(_scripts.TOUCH)
        self.release = register(_scripts.RELEASE)
        self.void = register(_scripts.VOID)
        self.extend = register(_scripts.EXTEND)
        self.index_add = register(_scripts.INDEX_ADD)
        self.index_remove = register(_scripts.INDEX_REMOVE)
        self.index_members = register(_scripts.INDEX_MEMBERS)
        self.load_if_owned = register(_scripts.LOAD_IF_OWNED)
        self.delete_if_owned = register(_scripts.DELETE_IF_OWNED, writes)

    def all(self) -> list[Script]:
        """Every script, e.g. to load them into the server's cache at start-up."""
        return [getattr(self, name) for name in self._NAMES]
