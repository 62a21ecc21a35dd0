"""Redis Sentinel: ``redis+sentinel://`` URLs, and a client that follows the master.

A URL names the sentinels, the monitored service and the database::

    redis+sentinel://[[user]:password@]host:port[,host:port...]/service_name[/db][?options]

The credentials and the query options are those of the Redis servers (as in a
``redis://`` URL); ``sentinel_username`` / ``sentinel_password`` in the query
authenticate to the sentinels themselves. ``rediss+sentinel`` uses TLS for
both. The client asks the sentinels for the current master each time it opens
a connection (redis-py's `SentinelConnectionPool`), so after a failover every
new connection, including the auto-pipeline's, goes to the new master. A
connection still open to a demoted master is dropped on its first ``READONLY``
reply (redis-py's `SentinelManagedConnection` turns it into a
`ConnectionError`), and one to a dead master fails on its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from redis.asyncio import Redis
from redis.asyncio.connection import parse_url
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff
from sanic_cookies import ConfigurationError

__all__ = [
    "DEFAULT_SENTINEL_PORT",
    "SCHEMES",
    "SentinelRedis",
    "SentinelTarget",
    "build_sentinel_client",
    "is_sentinel_url",
    "parse_sentinel_url",
    "sentinel_location",
]

#: URL schemes served through Redis Sentinel (the second with TLS).
SCHEMES = ("redis+sentinel", "rediss+sentinel")
#: The port of a sentinel given without one.
DEFAULT_SENTINEL_PORT = 26379

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
    segments = [unquote(s) for s in parts.path.split("/") if s]
    if not segments or len(segments) > 2:
        raise ConfigurationError(
            f"{sentinel_location(url)!r} must name the service (and optionally the db) "
            f"in its path: {scheme}://host:port/service_name/db"
        )
    service = segments[0]
    db = segments[1] if len(segments) == 2 else "0"
    if not db.isdigit():
        raise ConfigurationError(f"Database {db!r} in {sentinel_location(url)!r} is not a number")
    sentinel_options: dict[str, Any] = {}
    query = []
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name in _SENTINEL_OPTIONS:
            sentinel_options[_SENTINEL_OPTIONS[name]] = value
        else:
            query.append((name, value))
    # redis-py parses the credentials, db and query options exactly as for redis://.
    credentials = f"{userinfo}@" if userinfo else ""
    try:
        options: dict[str, Any] = dict(
            parse_url(f"redis://{credentials}localhost/{db}?{urlencode(query)}")
        )
    except ValueError as exc:
        raise ConfigurationError(f"Bad Redis option in {sentinel_location(url)!r}: {exc}") from None
    options.pop("host", None)
    options.pop("port", None)
    tls = scheme == "rediss+sentinel"
    return SentinelTarget(sentinels, service, tls, options, sentinel_options)


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


class SentinelRedis(Redis):
    """A client of the master a Sentinel names; closing it closes the sentinel clients too."""

    _sentinel: Sentinel | None = None

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
    connections and lose to the URL's query options, as for ``redis://``.
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
    client: SentinelRedis = sentinel.master_for(target.service, redis_class=SentinelRedis)
    client._sentinel = sentinel
    return client
