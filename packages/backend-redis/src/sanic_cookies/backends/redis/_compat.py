"""Every private redis-py (and asyncio stream) attribute the Redis backend uses, with fallbacks.

The auto-pipeline (`_pipeline`) writes batches straight to a connection's
stream writer and looks at its stream reader before reusing an idle
connection. redis-py offers neither as public API, so they are used only here,
only when present, and each has a fallback built on redis-py's public API:

* Writing a batch: ``conn._writer.writelines(chunks)``, synchronous, so the
  batches leave in the order they were queued. Fallback: one task per batch
  running ``conn.send_packed_command(chunks, check_health=False)``; tasks start
  in the order they were made and write before their first pause, so the order
  holds, at the cost of a task per batch.
* Whether a connection may carry more commands: ``conn._reader`` /
  ``conn._writer``, the transport's state and, while idle, the bytes asyncio
  holds unread (``reader._buffer``). Fallback: ``conn.is_connected``. A
  connection the server closed while idle is then found out by the first
  command sent on it (which fails, as on a pooled connection without health
  checks) instead of before it.
* Dropping a connection at once (``conn._writer.transport.abort()``: a graceful
  close could still flush queued bytes to a server that stopped being the
  master). Fallback: ``conn.disconnect(nowait=True)`` in a task, which closes
  the transport without waiting.
* Redis Cluster's slot map (`_cluster_pipeline`), kept by the cluster client's
  ``nodes_manager``, which redis-py does not document:

  - whether the client has a slot map yet (``nodes_manager.slots_cache``).
    Fallback: ``await client.initialize()`` each time, which returns at once
    once the client is initialized;
  - the primary of a slot (``nodes_manager.get_node_from_slot``). Fallback:
    ``client.get_node_from_key(key)``, which hashes the key again;
  - the address a ``MOVED`` / ``ASK`` reply names, as the client's
    ``address_remap`` maps it (``nodes_manager.remap_host_port``). Fallback: the
    address as the reply gives it, so a client behind an address remap
    follows redirections only on the fast path;
  - a refresh of the slot map (``nodes_manager.initialize()``). Fallback:
    ``await client.aclose()`` then ``await client.initialize()``, which also
    drops the client's pooled connections (the auto-pipeline's are its own).
* hiredis's C packer (``hiredis.pack_command``, public in hiredis, which is an
  optional extra): fallback None, the pure-Python packer.

Callers look the functions up on this module at call time
(``_compat.write_batch(...)``), so `use_private_internals` switches every
caller, which is how the tests run the fallbacks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from redis.asyncio.cluster import ClusterNode, NodesManager, RedisCluster
from redis.asyncio.connection import AbstractConnection, Connection

__all__ = [
    "PRIVATE_INTERNALS_AVAILABLE",
    "abort_connection",
    "cluster_address",
    "cluster_primary",
    "connection_broken",
    "ensure_slot_map",
    "hiredis_pack",
    "refresh_slot_map",
    "use_private_internals",
    "write_batch",
]

#: hiredis's ``pack_command`` (it packs str as UTF-8, redis-py's default), or None.
hiredis_pack: Callable[[tuple[Any, ...]], bytes] | None
try:  # installed with the 'hiredis' extra
    from hiredis import pack_command as hiredis_pack  # type: ignore[import-not-found,no-redef,unused-ignore]
except ImportError:  # pragma: no cover - depends on the environment
    hiredis_pack = None


def _connection_has_private_streams() -> bool:
    """Whether redis-py's connections keep their asyncio streams in ``_reader``, ``_writer``."""
    probe = Connection()
    return hasattr(probe, "_reader") and hasattr(probe, "_writer")


def _nodes_manager_has_slot_map() -> bool:
    """Whether redis-py's cluster `NodesManager` has the methods the fast paths call."""
    return all(
        callable(getattr(NodesManager, name, None))
        for name in ("get_node_from_slot", "remap_host_port", "initialize")
    )


#: Whether the private attributes this module knows of are there.
PRIVATE_INTERNALS_AVAILABLE: bool = (
    _connection_has_private_streams() and _nodes_manager_has_slot_map()
)


def _private_write(conn: AbstractConnection, chunks: Sequence[bytes | memoryview]) -> None:
    conn._writer.writelines(chunks)  # type: ignore[union-attr]


def _public_write(conn: AbstractConnection, chunks: Sequence[bytes | memoryview]) -> None:
    task = asyncio.get_running_loop().create_task(
        conn.send_packed_command([bytes(chunk) for chunk in chunks], check_health=False)
    )
    # A failed write has closed the connection: the reader fails the callers.
    task.add_done_callback(_retrieve)
    _WRITES.add(task)
    task.add_done_callback(_WRITES.discard)


_WRITES: set[asyncio.Task[None]] = set()  # keeps the fallback's write tasks alive


def _retrieve(task: asyncio.Task[None]) -> None:
    if not task.cancelled():
        task.exception()


def _private_broken(conn: AbstractConnection, *, idle: bool) -> bool:
    reader, writer = conn._reader, conn._writer
    if reader is None or writer is None or writer.transport.is_closing():
        return True
    if not idle:
        return False
    unread = getattr(reader, "_buffer", b"")  # what asyncio holds for the next read
    return bool(reader.at_eof() or reader.exception() is not None or unread)


def _public_broken(conn: AbstractConnection, *, idle: bool) -> bool:
    return not conn.is_connected


def _private_abort(conn: AbstractConnection) -> None:
    transport = getattr(conn._writer, "transport", None)
    if transport is not None:
        transport.abort()


def _public_abort(conn: AbstractConnection) -> None:
    task = asyncio.get_running_loop().create_task(conn.disconnect(nowait=True))
    task.add_done_callback(_retrieve)
    _WRITES.add(task)
    task.add_done_callback(_WRITES.discard)


async def _private_ensure_slot_map(client: RedisCluster) -> None:
    if not client.nodes_manager.slots_cache:  # not connected yet (or closed since)
        await client.initialize()


async def _public_ensure_slot_map(client: RedisCluster) -> None:
    await client.initialize()


def _private_primary(client: RedisCluster, key: Any, slot: int) -> ClusterNode:
    return client.nodes_manager.get_node_from_slot(slot)


def _public_primary(client: RedisCluster, key: Any, slot: int) -> ClusterNode:
    node = client.get_node_from_key(key)
    assert node is not None  # None only for a replica
    return node


def _private_address(client: RedisCluster, host: str, port: int) -> tuple[str, int]:
    return client.nodes_manager.remap_host_port(host, port)


def _public_address(client: RedisCluster, host: str, port: int) -> tuple[str, int]:
    return host, port


async def _private_refresh(client: RedisCluster) -> None:
    await client.nodes_manager.initialize()


async def _public_refresh(client: RedisCluster) -> None:
    await client.aclose()
    await client.initialize()


#: ``await ensure_slot_map(client)``: the cluster client has a slot map (initialized).
ensure_slot_map: Callable[[RedisCluster], Awaitable[None]] = _private_ensure_slot_map
#: ``cluster_primary(client, key, slot)``: the primary that owns `slot` (`key`'s slot).
cluster_primary: Callable[[RedisCluster, Any, int], ClusterNode] = _private_primary
#: ``cluster_address(client, host, port)``: where to reach a node a redirection names.
cluster_address: Callable[[RedisCluster, str, int], tuple[str, int]] = _private_address
#: ``await refresh_slot_map(client)``: ask the cluster for its slot map again.
refresh_slot_map: Callable[[RedisCluster], Awaitable[None]] = _private_refresh

#: ``abort_connection(conn)``: close `conn` now, dropping whatever it has not sent yet.
abort_connection: Callable[[AbstractConnection], None] = _private_abort

#: ``write_batch(conn, chunks)``: send packed commands now, in call order, without waiting.
write_batch: Callable[[AbstractConnection, Sequence[bytes | memoryview]], None] = _private_write


#: ``connection_broken(conn, idle=...)``: True if nothing more may be written to `conn`.
connection_broken: Callable[..., bool] = _private_broken


def use_private_internals(enabled: bool) -> None:
    """Use redis-py's private attributes (if this redis-py has them) or only its public API.

    Args:
        enabled: False switches every caller to the public-API fallbacks (the
            tests do, to keep those paths working); True goes back to the fast
            paths where `PRIVATE_INTERNALS_AVAILABLE`.
    """
    global write_batch, connection_broken, abort_connection
    global ensure_slot_map, cluster_primary, cluster_address, refresh_slot_map
    private = enabled and PRIVATE_INTERNALS_AVAILABLE
    ensure_slot_map = _private_ensure_slot_map if private else _public_ensure_slot_map
    cluster_primary = _private_primary if private else _public_primary
    cluster_address = _private_address if private else _public_address
    refresh_slot_map = _private_refresh if private else _public_refresh
    write_batch = _private_write if private else _public_write
    connection_broken = _private_broken if private else _public_broken
    abort_connection = _private_abort if private else _public_abort


use_private_internals(True)
