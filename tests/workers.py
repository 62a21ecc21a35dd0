"""A client whose connections reach more than one worker of a multi-worker server.

Sanic's workers accept from one shared socket: on a busy machine the first worker to
wake can take a whole burst of new connections, and every request of a test then goes
to it (seen once in CI: "only one worker answered"). A test that proves something
across processes sends its load through ``async with client_on_several_workers(...)``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

__all__ = ["client_on_several_workers"]


@contextlib.asynccontextmanager
async def client_on_several_workers(
    base_url: str,
    connections: int,
    worker_of: Callable[[httpx.Response], object],
    *,
    path: str = "/ping",
    request_timeout: float = 180.0,
    attempts: int = 20,
) -> AsyncIterator[httpx.AsyncClient]:
    """A client with up to `connections` keep-alive connections, opened by concurrent GETs
    of `path` until their answers name (by `worker_of`) more than one worker."""
    # No client-side expiry of idle connections (httpx's default is 5 s): on a busy
    # machine a connection to the second worker can sit idle that long before the load
    # reaches it, and its replacement may go to the first worker again.
    limits = httpx.Limits(
        max_connections=connections, max_keepalive_connections=connections, keepalive_expiry=None
    )
    for _ in range(attempts):
        client = httpx.AsyncClient(base_url=base_url, timeout=request_timeout, limits=limits)
        try:
            replies = await asyncio.gather(*(client.get(path) for _ in range(connections)))
        except BaseException:
            await client.aclose()
            raise
        if len({worker_of(reply) for reply in replies}) > 1:
            try:
                yield client
            finally:
                await client.aclose()
            return
        await client.aclose()
    pytest.fail(f"{attempts} bursts of {connections} connections all reached one worker")
