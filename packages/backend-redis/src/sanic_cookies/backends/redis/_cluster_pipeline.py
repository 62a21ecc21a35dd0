"""`ClusterAutoPipeline`: auto-pipelining on Redis Cluster, one `AutoPipeline` per node.

A command is sent to the primary that owns its key's slot, through that node's
`AutoPipeline`, so the commands of one event-loop tick go out as one write per
node and each caller waits for its own reply. Every command here is a script
(EVALSHA / EVAL) whose keys share one hash tag, so it has exactly one slot.

Redirections are followed as redis-py's cluster client follows them:

* ``MOVED`` (the slot has a new owner for good: a finished migration or a
  failover): the command is sent again to the node named (it did not run
  where it was refused) and a refresh of the slot map is asked for; until it
  lands, the slot's other commands take the same detour. (redis-py's own
  in-place patch of the slot map is not public, and changed between versions.)
* ``ASK`` (the slot is being migrated and this key has left already): the
  command is sent to the importing node preceded by ``ASKING``, both queued
  back to back so they leave in one write on one connection: nothing can come
  between them. The slot map is not changed.
* ``TRYAGAIN`` (a multi-key command whose keys are split by a migration in
  progress: a session's record has moved, its lock key has not, until the
  slot changes owner): sent again after a pause that grows from 10 to 100 ms,
  for at most `TRYAGAIN_WITHIN` seconds. Bounded by time, not by a count: the
  split lasts until the migration of the whole slot ends, which takes longer
  on a busy cluster (a lock refused after a fixed 8 tries answered 503 during
  a slow resharding).

A lost connection, a reply timeout or ``CLUSTERDOWN`` fails the command (the
request answers 503: the command may or may not have run, so it is not
replayed) and asks for a refresh of the slot map, so the next commands find a
promoted replica. Refreshes run one at a time, at most one per
`REFRESH_INTERVAL`, in the background.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import (
    AskError,
    ClusterDownError,
    ClusterError,
    ConnectionError,
    MovedError,
    SlotNotCoveredError,
    TimeoutError,
    TryAgainError,
)
from sanic_cookies import clock

from . import _compat
from ._pipeline import AutoPipeline

__all__ = ["REFRESH_INTERVAL", "TRYAGAIN_WITHIN", "ClusterAutoPipeline"]

logger = logging.getLogger("sanic_cookies.redis")

#: Seconds between two refreshes of the slot map asked for by errors.
REFRESH_INTERVAL = 0.1
#: Seconds one command keeps retrying ``TRYAGAIN`` before it fails (503).
TRYAGAIN_WITHIN = 2.0
# How many MOVED / ASK replies one command follows in a row before failing
# (redis-py's cluster client allows 16 as well); a TRYAGAIN starts the count again.
_MAX_REDIRECTS = 16
# Pauses before sending a command refused with TRYAGAIN again (seconds): the first, the most.
_TRYAGAIN_DELAY = 0.01
_TRYAGAIN_MAX_DELAY = 0.1
# Errors after which the slot map may be stale: a node died or gave up a slot.
_STALE_MAP = (ConnectionError, TimeoutError, ClusterDownError, SlotNotCoveredError)
# Where a MOVED / ASK reply sends a command: ((host, port), whether it is an ASK).
_Redirect = tuple[tuple[str, int], bool]


class _NodeConnections:
    """Makes connections to one node, with the settings the cluster client gives its own."""

    __slots__ = ("_node",)

    def __init__(self, node: ClusterNode) -> None:
        self._node = node

    def make_connection(self) -> AbstractConnection:
        return self._node.connection_class(**self._node.connection_kwargs)


class ClusterAutoPipeline:
    """Sends each script to its slot's primary, batched per node and event-loop tick.

    Each primary gets one dedicated connection (outside the cluster client's
    pools, closed by `aclose`). Commands without a key go through the
    cluster client itself.

    The counters `moved`, `asked` and `retried` tell how many ``MOVED``,
    ``ASK`` and ``TRYAGAIN`` replies were followed, for monitoring.

    Args:
        client: The cluster client whose slot map and connection settings to use.
    """

    __slots__ = (
        "_client",
        "_closed",
        "_last_refresh",
        "_pipelines",
        "_refreshing",
        "asked",
        "moved",
        "retried",
    )

    def __init__(self, client: RedisCluster) -> None:
        self._client = client
        self._pipelines: dict[str, AutoPipeline] = {}
        self._refreshing: asyncio.Task[None] | None = None
        self._last_refresh = -REFRESH_INTERVAL
        self._closed = False
        self.moved = self.asked = self.retried = 0

    async def execute(self, *args: Any) -> Any:
        """Run one command on the node that owns its key; its reply (or its error)."""
        if self._closed:  # a straggler must not reconnect (and leak) the closed client
            raise ConnectionError("The Redis session store is closed")
        key = _key_of(args)
        if key is None:
            return await self._client.execute_command(*args)
        await _compat.ensure_slot_map(self._client)
        slot = self._client.keyslot(key)
        redirect: _Redirect | None = None  # where MOVED or ASK sent the command
        redirects, delay, give_up = 0, _TRYAGAIN_DELAY, 0.0
        while True:
            host, future = self._send(args, key, slot, redirect)
            redirect = None
            try:
                return await future
            except AskError as exc:  # MovedError is a subclass
                redirects += 1
                if redirects > _MAX_REDIRECTS:
                    raise ClusterError(
                        f"Redis Cluster redirected a command more than {_MAX_REDIRECTS} times"
                    ) from exc
                redirect = self._follow(exc, host)
            except TryAgainError:
                self.retried += 1
                now = clock.monotonic()
                give_up = give_up or now + TRYAGAIN_WITHIN
                if now >= give_up:
                    raise
                redirects = 0
                await asyncio.sleep(delay)
                delay = min(delay * 2, _TRYAGAIN_MAX_DELAY)
            except _STALE_MAP:
                self.request_refresh()
                raise

    def _send(
        self, args: tuple[Any, ...], key: Any, slot: int, redirect: _Redirect | None
    ) -> tuple[str, asyncio.Future[Any]]:
        """Queue `args` on the slot's primary, or where a redirection said; (host, reply)."""
        if redirect is None:
            node = _compat.cluster_primary(self._client, key, slot)
            return node.host, self._pipeline_of(node).execute(*args)
        (host, port), asking = redirect
        pipeline = self._pipeline_at(host, port)
        if asking:
            ask = pipeline.execute("ASKING")
            ask.add_done_callback(_consume)  # its OK (or error) is awaited by no one
        # Queued right after ASKING, so both leave in one write on one connection.
        return host, pipeline.execute(*args)

    def _follow(self, exc: AskError, host: str) -> _Redirect:
        """Where a ``MOVED`` or ``ASK`` reply from `host` sends the command, and whether
        it is an ``ASK`` (sent after ``ASKING``, the slot map unchanged)."""
        # ``MOVED 3999 :6380`` (no host) means the replying node's own host.
        address = _compat.cluster_address(self._client, exc.host or host, exc.port)
        if isinstance(exc, MovedError):
            self.moved += 1
            self.request_refresh()
            return address, False
        self.asked += 1
        return address, True

    def _pipeline_of(self, node: ClusterNode) -> AutoPipeline:
        pipeline = self._pipelines.get(node.name)
        if pipeline is None:
            if self._closed:  # closed while this command was being redirected
                raise ConnectionError("The Redis session store is closed")
            pipeline = self._pipelines[node.name] = AutoPipeline(_NodeConnections(node))
        return pipeline

    def _pipeline_at(self, host: str, port: int) -> AutoPipeline:
        client = self._client
        node = client.get_node(host=host, port=port)
        if node is None:  # a node the slot map does not know yet (being added)
            settings: dict[str, Any] = client.get_connection_kwargs()
            node = ClusterNode(host, port, **settings)
        return self._pipeline_of(node)

    def request_refresh(self) -> None:
        """Refresh the slot map in the background, unless one ran or runs just now."""
        if self._closed or self._refreshing is not None:
            return
        if time.monotonic() - self._last_refresh < REFRESH_INTERVAL:
            return
        self._refreshing = asyncio.get_running_loop().create_task(self._refresh())

    async def _refresh(self) -> None:
        try:
            await _compat.refresh_slot_map(self._client)
        except Exception as exc:  # no node answered: the next error asks again
            logger.debug("Redis Cluster slot map not refreshed: %s: %s", type(exc).__name__, exc)
        finally:
            self._last_refresh = time.monotonic()
            self._refreshing = None
        # Connections to nodes that left the cluster are closed; a node that is
        # back later gets a new pipeline.
        known = {node.name for node in self._client.get_nodes()}
        for name in [name for name in self._pipelines if name not in known]:
            with contextlib.suppress(Exception):
                await self._pipelines.pop(name).aclose()

    async def aclose(self) -> None:
        """Close every node's connection, failing what is queued or in flight."""
        self._closed = True
        task, self._refreshing = self._refreshing, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        pipelines, self._pipelines = self._pipelines, {}
        for pipeline in pipelines.values():
            await pipeline.aclose()


def _key_of(args: tuple[Any, ...]) -> Any:
    """The first key of an EVAL / EVALSHA, or None (another command, or no key)."""
    if len(args) > 3 and str(args[0]).upper() in ("EVALSHA", "EVAL") and int(args[2]) > 0:
        return args[3]
    return None


def _consume(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
