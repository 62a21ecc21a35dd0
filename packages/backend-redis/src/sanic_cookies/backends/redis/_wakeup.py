"""`Wakeups`: wake a waiting lock in this process when another process releases it.

Every script that frees a session lock (`RELEASE`, a fenced `SAVE` or `DELETE`)
publishes on a channel named after the lock key. A waiter that found the lock
busy subscribes to that channel on this process's one pub/sub connection, then
waits for a message or its poll delay, whichever comes first: a release
anywhere wakes it within a round trip, and polling remains only as the
fallback (a message lost with a dropped connection, a Redis without pub/sub).

Only the head of each key's local queue (`sanic_cookies._turns`) waits here, so
a process holds at most one subscription per contended session.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from redis.asyncio.client import PubSub

__all__ = ["Wakeups"]

logger = logging.getLogger("sanic_cookies.redis")

# After the pub/sub connection failed: seconds of polling only, before trying again.
_RETRY_AFTER = 1.0
# Seconds a subscription may take to be confirmed before the waiter polls instead.
_CONFIRM_WITHIN = 1.0


class _Channel:
    """A subscribed channel: its confirmation, its wake-up event, how many use it."""

    __slots__ = ("confirmed", "event", "users")

    def __init__(self, confirmed: asyncio.Future[None]) -> None:
        self.confirmed = confirmed
        self.event = asyncio.Event()
        self.users = 0


class Wakeups:
    """The pub/sub side of the lock wake-up, for one backend in one event loop.

    Args:
        pubsub: Makes the pub/sub object (``client.pubsub``) when first needed;
            None disables the wake-up (waiters poll).
    """

    def __init__(self, pubsub: Any | None) -> None:
        self._make = pubsub
        self._pubsub: PubSub | None = None
        self._reader: asyncio.Task[None] | None = None
        self._channels: dict[bytes, _Channel] = {}
        self._broken_until = 0.0

    @property
    def enabled(self) -> bool:
        """False when waiters can only poll (no pub/sub, or it failed a moment ago)."""
        return self._make is not None and time.monotonic() >= self._broken_until

    @contextlib.asynccontextmanager
    async def watching(self, channel: bytes) -> Any:
        """Subscribe to `channel` for the block; yields an `asyncio.Event` set on each message.

        Yields None when the wake-up is unavailable: the caller polls. The event is
        set as soon as the subscription is confirmed too, so the caller's next try
        (after which any release is sure to be heard) comes at once.
        """
        entry = await self._subscribe(channel) if self.enabled else None
        try:
            yield None if entry is None else entry.event
        finally:
            if entry is not None:
                await self._unsubscribe(channel, entry)

    async def _subscribe(self, channel: bytes) -> _Channel | None:
        entry = self._channels.get(channel)
        if entry is None:
            confirmed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            entry = self._channels[channel] = _Channel(confirmed)
            try:
                pubsub = self._connect()
                await pubsub.subscribe(channel)
                self._start_reader(pubsub)
            except Exception as exc:
                self._fail(exc)
                return None
        entry.users += 1
        try:
            await asyncio.wait_for(asyncio.shield(entry.confirmed), _CONFIRM_WITHIN)
        except (TimeoutError, ConnectionError):
            await self._unsubscribe(channel, entry)
            return None
        except BaseException:
            await self._unsubscribe(channel, entry)
            raise
        return entry

    async def _unsubscribe(self, channel: bytes, entry: _Channel) -> None:
        entry.users -= 1
        if entry.users > 0 or self._channels.get(channel) is not entry:
            return
        del self._channels[channel]
        pubsub = self._pubsub
        if pubsub is not None:
            # Written before any later SUBSCRIBE of the same channel (the write
            # happens before the first suspension); the reader reads the reply.
            try:
                await pubsub.unsubscribe(channel)
            except Exception as exc:
                self._fail(exc)

    def _connect(self) -> PubSub:
        if self._pubsub is None:
            assert self._make is not None
            self._pubsub = self._make()
        return self._pubsub

    def _start_reader(self, pubsub: PubSub) -> None:
        if self._reader is None or self._reader.done():
            self._reader = asyncio.get_running_loop().create_task(
                self._read(pubsub), name="sanic-cookies redis lock wake-up"
            )

    async def _read(self, pubsub: PubSub) -> None:
        try:
            while pubsub.subscribed or self._channels:
                message = await pubsub.get_message(timeout=None)
                if message is not None:
                    self._dispatch(message)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._fail(exc)

    def _dispatch(self, message: dict[str, Any]) -> None:
        entry = self._channels.get(message.get("channel", b""))
        if entry is None:
            return
        kind = message.get("type")
        if kind == "subscribe":
            if not entry.confirmed.done():
                entry.confirmed.set_result(None)
            entry.event.set()
        elif kind == "message":
            entry.event.set()

    def _fail(self, exc: BaseException) -> None:
        """Give up the pub/sub connection for a while; wake everyone (they poll now)."""
        logger.debug("lock wake-up via pub/sub failed (%s: %s); polling", type(exc).__name__, exc)
        self._broken_until = time.monotonic() + _RETRY_AFTER
        channels, self._channels = self._channels, {}
        for entry in channels.values():
            if not entry.confirmed.done():
                entry.confirmed.set_exception(ConnectionError("pub/sub connection failed"))
                entry.confirmed.exception()  # retrieved: no "never retrieved" warning
            entry.event.set()
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            task = asyncio.get_running_loop().create_task(_close(pubsub))
            _BACKGROUND.add(task)
            task.add_done_callback(_BACKGROUND.discard)

    async def aclose(self) -> None:
        """Stop the reader and close the pub/sub connection."""
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
        for entry in self._channels.values():
            entry.event.set()
        self._channels = {}
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            await _close(pubsub)


_BACKGROUND: set[asyncio.Task[None]] = set()


async def _close(pubsub: PubSub) -> None:
    with contextlib.suppress(Exception):
        await pubsub.aclose()
