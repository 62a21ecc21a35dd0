"""`opened`: a backend opened for the length of a block, closed however the block ends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypeVar

from sanic_cookies._backend import Backend

__all__ = ["opened"]

B = TypeVar("B", bound=Backend)


@asynccontextmanager
async def opened(backend: B) -> AsyncIterator[B]:
    """Open `backend`, yield it, and close it when the block ends (the suites' fixtures).

    Args:
        backend: A fresh, unopened backend.

    Yields:
        The same backend, opened.
    """
    await backend.open()
    try:
        yield backend
    finally:
        await backend.close()
