"""`ReplicatedWrites`: a write acknowledged only once replicas have it (``WAIT``).

Redis replicates asynchronously: a master acknowledges a write before any
replica has it, so when the master dies and Sentinel promotes a replica, the
writes of the last moments before the crash can be gone. With ``min_replicas``
set, the backend sends each session write followed by ``WAIT min_replicas
timeout`` on the same connection (one round trip, one pipeline): WAIT returns
once that many replicas acknowledged everything the master had received up to
the write (the replication stream is ordered, so that covers the user-index
entry written just before it too), or when the timeout runs out.

Fewer acknowledgements than asked fail the request with `BackendUnavailable`
(HTTP 503): the write is on the master and may still reach the replicas, but
the backend no longer vouches for it. WAIT blocks its connection on the
server, so it never goes through the auto-pipeline (it would hold up every
other request's commands): it takes a connection from the client's pool.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis
from sanic_cookies import BackendUnavailable, ConfigurationError

from ._client import ms

__all__ = ["DEFAULT_MIN_REPLICAS_TIMEOUT", "ReplicatedWrites", "check_min_replicas"]

#: Seconds a write waits for its replicas before the request fails.
DEFAULT_MIN_REPLICAS_TIMEOUT = 0.5


def check_min_replicas(
    replicas: int, timeout: float, *, socket_timeout: float | None, cluster: bool
) -> None:
    """Refuse ``min_replicas`` settings that cannot work.

    Raises:
        ConfigurationError: A negative count, a timeout that is not positive
            or not below the reply timeout, or Redis Cluster.
    """
    if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 0:
        raise ConfigurationError(f"min_replicas must be a whole number >= 0, got {replicas!r}")
    if not replicas:
        return
    if cluster:
        raise ConfigurationError(
            "min_replicas is not supported on Redis Cluster; use it with one server or Sentinel"
        )
    if not timeout > 0:
        raise ConfigurationError(f"min_replicas_timeout must be > 0 seconds, got {timeout!r}")
    if socket_timeout is not None and timeout >= socket_timeout:
        raise ConfigurationError(
            f"min_replicas_timeout ({timeout}s) must be below socket_timeout ({socket_timeout}s), "
            "or every write that waits for a missing replica fails as a timeout"
        )


class ReplicatedWrites:
    """Runs a write command, then ``WAIT replicas timeout``, on one pooled connection.

    Used as the runner of the session-writing scripts (save, delete); its
    reply is the write's.

    Args:
        client: The client whose pool to take the connection from.
        replicas: How many replicas must acknowledge each write.
        timeout: Seconds to wait for them.
        where: The store's address, for the error message.
    """

    __slots__ = ("_client", "_replicas", "_timeout_ms", "_where")

    def __init__(self, client: Redis, replicas: int, timeout: float, where: str) -> None:
        self._client = client
        self._replicas = replicas
        self._timeout_ms = ms(timeout)
        self._where = where

    async def __call__(self, *args: Any) -> Any:
        """Send the command `args` and WAIT; the command's reply.

        Raises:
            BackendUnavailable: The write was made, but fewer than `replicas`
                replicas acknowledged it in time.
            redis.exceptions.RedisError: The command's own error (NOSCRIPT
                included), or the connection's.
        """
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.execute_command(*args)
            pipe.execute_command("WAIT", self._replicas, self._timeout_ms)
            reply, acked = await pipe.execute(raise_on_error=False)
        if isinstance(reply, Exception):  # nothing was written: WAIT's answer is moot
            raise reply
        if isinstance(acked, Exception):
            raise acked
        if int(acked) < self._replicas:
            raise BackendUnavailable(
                f"Redis at {self._where}: a session write reached {int(acked)} of the "
                f"{self._replicas} replicas min_replicas asks for within "
                f"{self._timeout_ms} ms; it is on the master but may be lost in a failover"
            )
        return reply
