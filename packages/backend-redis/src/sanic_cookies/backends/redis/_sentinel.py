"""Redis Sentinel: ``redis+sentinel://`` URLs, and a client that follows the master.

A URL names the sentinels, the monitored service and the database::

    redis+sentinel://[[user]:password@]host:port[,host:port...]/service_name[/db][?options]

The credentials and the query options are those of the Redis servers (as in a
``redis://`` URL); ``sentinel_username`` / ``sentinel_password`` in the query
authenticate to the sentinels themselves. ``rediss+sentinel`` uses TLS for
both. The client asks the sentinels for the current master each time it opens
a connection (redis-py's `SentinelConnectionPool`), so after a failover every
new connection, including the auto-pipeline's, goes to the new master.

Connections already open to a demoted master are the danger: in a switchover
(``SENTINEL FAILOVER``) the old master keeps accepting writes until a sentinel
turns it into a replica, which can take seconds, and its full resync with the
new master then throws those writes away. So `MasterWatch` asks every
sentinel for the master every `MASTER_POLL` seconds, believes the answer with
the highest config epoch (the sentinel that led the failover knows first), and
when the address changes, the pool connects only there and the backend drops
every open connection before further writes. What remains is the poll's
window (see docs/production.md). A connection to a dead master fails on its
own; one answered ``READONLY`` is dropped by redis-py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from redis.asyncio import Redis
from redis.asyncio.connection import parse_url
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError, AuthorizationError, ResponseError
from sanic_cookies import ConfigurationError

__all__ = [
    "DEFAULT_SENTINEL_PORT",
    "MASTER_POLL",
    "SCHEMES",
    "MasterWatch",
    "SentinelRedis",
    "SentinelTarget",
    "build_sentinel_client",
    "is_sentinel_url",
    "parse_sentinel_url",
    "sentinel_addresses",
    "sentinel_location",
]

#: URL schemes served through Redis Sentinel (the second with TLS).
SCHEMES = ("redis+sentinel", "rediss+sentinel")
#: The port of a sentinel given without one.
DEFAULT_SENTINEL_PORT = 26379
#: Seconds between two questions to the sentinels about the master (`MasterWatch`).
MASTER_POLL = 0.25

logger = logging.getLogger("sanic_cookies.backends.redis")

# Query options that configure the connections to the sentinels, not to Redis.
_SENTINEL_OPTIONS = {"sentinel_username": "username", "sentinel_password": "password"}


def is_sentinel_url(url: str) -> bool:
    """True if `url` has a ``redis+sentinel`` or ``rediss+sentinel`` scheme."""
    return url.partition("://")[0].lower() in SCHEMES


@dataclass(frozen=True)
class SentinelTarget:
    """What a Sentinel URL says.

    Attributes:
        sentinels: (host, port) of each sentinel, in the URL's order.
        service: The name the sentinels monitor the master under.
        tls: Whether to use TLS (``rediss+sentinel``).
        redis_options: Keyword arguments for connections to Redis (db,
            credentials, query options).
        sentinel_options: Keyword arguments for connections to the sentinels
            from the URL (``sentinel_username``, ``sentinel_password``).
    """

    sentinels: list[tuple[str, int]]
    service: str
    tls: bool
    redis_options: dict[str, Any] = field(default_factory=dict)
    sentinel_options: dict[str, Any] = field(default_factory=dict)


def parse_sentinel_url(url: str) -> SentinelTarget:
    """Split a ``redis+sentinel://`` URL into sentinels, service and options.

    Raises:
        ConfigurationError: Not a Sentinel URL, no sentinel, no service name,
            a bad port or database, or a query option redis-py cannot parse.
    """
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in SCHEMES:
        raise ConfigurationError(f"Not a Redis Sentinel URL: {sentinel_location(url)!r}")
    parts = urlsplit(f"redis://{rest}")
    userinfo, _, hosts = parts.netloc.rpartition("@")
    sentinels = [_host_port(item, url) for item in hosts.split(",") if item.strip()]
    if not sentinels:
        raise ConfigurationError(
            f"{sentinel_location(url)!r} names no sentinel: write "
            f"{scheme}://host:port[,host:port...]/service_name/db"
        )
    service, db = _service_and_db(scheme, parts.path, url)
    check_db_once(db, parts.query, sentinel_location(url))
    sentinel_options, query = _split_query(parts.query)
    options = _redis_options(userinfo, db, query, url)
    tls = scheme == "rediss+sentinel"
    return SentinelTarget(sentinels, service, tls, options, sentinel_options)


def check_db_once(path_db: str, query: str, location: str) -> None:
    """Refuse a db given twice: in the path and as ``?db=``, or as ``?db=`` twice.

    redis-py would take one of them without a word (``?db=`` over the path, the first
    of two ``?db=``).
    """
    given = [value for name, value in parse_qsl(query, keep_blank_values=True) if name == "db"]
    if len(given) + bool(path_db) > 1:
        raise ConfigurationError(
            f"A Redis URL gives its db once, in the path or as ?db=, not both: {location}"
        )


def _service_and_db(scheme: str, path: str, url: str) -> tuple[str, str]:
    """The service name and database number (a string of digits) of a Sentinel URL's path."""
    segments = [unquote(s) for s in path.split("/") if s]
    if not segments or len(segments) > 2:
        raise ConfigurationError(
            f"{sentinel_location(url)!r} must name the service (and optionally the db) "
            f"in its path: {scheme}://host:port/service_name/db"
        )
    db = segments[1] if len(segments) == 2 else ""  # none: the keyword's, or redis-py's 0
    if db and not db.isdigit():
        raise ConfigurationError(f"Database {db!r} in {sentinel_location(url)!r} is not a number")
    return segments[0], db


def _split_query(query: str) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The options for the sentinels (renamed as redis-py takes them), and the others."""
    sentinel_options: dict[str, Any] = {}
    others = []
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name in _SENTINEL_OPTIONS:
            sentinel_options[_SENTINEL_OPTIONS[name]] = value
        else:
            others.append((name, value))
    return sentinel_options, others


def _redis_options(
    userinfo: str, db: str, query: list[tuple[str, str]], url: str
) -> dict[str, Any]:
    """Connection options for Redis: redis-py parses the credentials, db and query
    options exactly as for redis:// (host and port come from the sentinels)."""
    credentials = f"{userinfo}@" if userinfo else ""
    try:
        options: dict[str, Any] = dict(
            parse_url(f"redis://{credentials}localhost/{db}?{urlencode(query)}")
        )
    except ValueError as exc:
        raise ConfigurationError(f"Bad Redis option in {sentinel_location(url)!r}: {exc}") from None
    options.pop("host", None)
    options.pop("port", None)
    return options


def _host_port(item: str, url: str) -> tuple[str, int]:
    parts = urlsplit(f"//{item.strip()}")
    try:
        port = parts.port or DEFAULT_SENTINEL_PORT
    except ValueError:
        raise ConfigurationError(
            f"Bad sentinel address {item!r} in {sentinel_location(url)!r}"
        ) from None
    if not parts.hostname:
        raise ConfigurationError(f"Bad sentinel address {item!r} in {sentinel_location(url)!r}")
    return parts.hostname, port


def sentinel_location(url: str) -> str:
    """`url` without credentials or query, for log lines and errors."""
    scheme, sep, rest = url.partition("://")
    rest = rest.split("?", 1)[0].split("#", 1)[0]
    hosts, slash, path = rest.partition("/")
    return f"{scheme}{sep}{hosts.rpartition('@')[2]}{slash}{path}"


class _FollowingPool(SentinelConnectionPool):
    """A `SentinelConnectionPool` that connects where `MasterWatch` last saw the master.

    redis-py's pool believes the first sentinel that answers, which may not
    have heard of a failover yet and would send a new connection straight back
    to the demoted master.
    """

    known: tuple[str, int] | None = None

    async def get_master_address(self) -> Any:
        """The watched master's address, or the first sentinel's answer before any poll."""
        if self.known is None:
            return await super().get_master_address()  # type: ignore[no-untyped-call]
        return self.known


class SentinelRedis(Redis):
    """A client of the master a Sentinel names; closing it closes the sentinel clients too."""

    _sentinel: Sentinel | None = None
    _service: str = ""

    def close_with(self, sentinel: Sentinel, service: str) -> None:
        """Remember the `sentinel` that found the master of `service`; `aclose` closes it too."""
        self._sentinel = sentinel
        self._service = service

    @property
    def sentinel_client(self) -> Sentinel | None:
        """The sentinel clients that found this master (None once closed)."""
        return self._sentinel

    @property
    def service_name(self) -> str:
        """The name of the service (master) the sentinels monitor."""
        return self._service

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        """Close the connections to the master, then those to the sentinels."""
        try:
            await super().aclose(close_connection_pool)
        finally:
            sentinel, self._sentinel = self._sentinel, None
            if sentinel is not None:
                await sentinel.aclose()


def build_sentinel_client(url: str, options: dict[str, Any]) -> SentinelRedis:
    """A client of the current master of the service `url` names.

    `options` (the backend's defaults and keyword options) go to the Redis
    connections and lose to what the URL holds, as for ``redis://``
    (`RedisBackend.from_url` takes out of the URL what a keyword option sets).
    The sentinels get the same timeouts and TLS settings, no retries (redis-py
    already asks the next sentinel when one fails), and the
    ``sentinel_username`` / ``sentinel_password`` of the URL or of `options`.

    Raises:
        ConfigurationError: A bad URL or option.
    """
    target = parse_sentinel_url(url)
    redis_options = dict(options)
    sentinel_options = {
        _SENTINEL_OPTIONS[name]: redis_options.pop(name)
        for name in list(redis_options)
        if name in _SENTINEL_OPTIONS
    }
    sentinel_options.update(target.sentinel_options)
    redis_options.update(target.redis_options)
    if target.tls:
        redis_options["ssl"] = True
    shared = {
        name: value for name, value in redis_options.items() if name.startswith(("socket_", "ssl"))
    }
    sentinel = Sentinel(
        target.sentinels,
        sentinel_kwargs={**shared, "retry": Retry(NoBackoff(), 0), **sentinel_options},
        **redis_options,
    )
    client: SentinelRedis = sentinel.master_for(
        target.service, redis_class=SentinelRedis, connection_pool_class=_FollowingPool
    )
    client.close_with(sentinel, target.service)
    return client


def sentinel_addresses(sentinel: Sentinel) -> str:
    """``host:port,host:port`` of the sentinels, for short log lines and errors."""
    found = []
    for client in sentinel.sentinels:
        kwargs = client.connection_pool.connection_kwargs
        found.append(f"{kwargs.get('host')}:{kwargs.get('port')}")
    return ",".join(found)


def _master_of(state: object) -> tuple[int, str, int] | None:
    """``(config epoch, ip, port)`` of a sentinel's answer naming a master that is up."""
    if not isinstance(state, dict) or not state.get("is_master") or state.get("is_odown"):
        return None  # an error, or a master that is down
    return int(state.get("config-epoch", 0)), str(state["ip"]), int(state["port"])


def _epoch(master: tuple[int, str, int]) -> int:
    return master[0]


def _freshest_master(answers: Sequence[object]) -> tuple[int, str, int] | None:
    """The master named with the highest config epoch (the first such answer on a tie),
    among the sentinels' `answers` (errors and masters that are down are skipped)."""
    return max(filter(None, map(_master_of, answers)), default=None, key=_epoch)


def _refusal(state: object, service: str) -> str | None:
    """What a sentinel's error says is wrong with the settings, or None."""
    if isinstance(state, AuthenticationError | AuthorizationError):
        return f"refused the credentials ({type(state).__name__})"
    if isinstance(state, ResponseError) and "no such master" in str(state).lower():
        return f"monitors no service named {service!r}"
    return None


class MasterWatch:
    """Asks the sentinels for the master every `poll` seconds; on a change, calls `moved`.

    Args:
        client: The `SentinelRedis` whose pool to point at the master.
        moved: Called (with no argument) after the pool points at a new master:
            it drops every connection still open to the old one.
        poll: Seconds between two polls.
    """

    def __init__(
        self, client: SentinelRedis, moved: Callable[[], None], poll: float = MASTER_POLL
    ) -> None:
        self._client = client
        self._moved = moved
        self._poll = poll
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start polling in the background (idempotent)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def aclose(self) -> None:
        """Stop polling."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task

    async def check(self) -> None:
        """Poll once: point the pool at the master the freshest sentinel names.

        Raises:
            ConfigurationError: No sentinel named a master, and some refused
                the credentials or do not monitor the service: a mistake in
                the settings, which waiting will not fix. (Sentinels that
                cannot be reached are not an error here.)
        """
        sentinel = self._client.sentinel_client
        pool = self._client.connection_pool
        if sentinel is None or not isinstance(pool, _FollowingPool):
            return
        service = self._client.service_name
        answers = await asyncio.gather(
            *(s.sentinel_master(service) for s in sentinel.sentinels), return_exceptions=True
        )
        best = _freshest_master(answers)
        if best is None:
            refusals = [r for r in (_refusal(state, service) for state in answers) if r]
            if refusals:
                raise ConfigurationError(
                    f"Redis Sentinel {sentinel_addresses(sentinel)}: a sentinel {refusals[0]}; "
                    "check the service name in the URL's path and sentinel_password / "
                    "sentinel_username in its query"
                )
            return  # no sentinel answered: keep what we know
        self._point_at(pool, (best[1], best[2]), service)

    def _point_at(self, pool: _FollowingPool, address: tuple[str, int], service: str) -> None:
        """Point `pool` at the master's `address`; if it moved, drop the old connections."""
        previous, pool.known = pool.known, address
        if previous is not None and previous != address:
            logger.warning(
                "Redis Sentinel service %r moved from %s:%d to %s:%d: dropping the "
                "connections to the old master",
                service,
                *previous,
                *address,
            )
            self._moved()

    async def _run(self) -> None:
        while True:
            try:
                await self.check()
            except Exception as exc:  # never let the watch die; the next poll tries again
                logger.debug("Redis Sentinel poll failed: %s", type(exc).__name__)
            await asyncio.sleep(self._poll)
