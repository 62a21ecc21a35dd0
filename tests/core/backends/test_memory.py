"""The in-memory backend against the conformance suite, plus its own behaviour."""

from __future__ import annotations

from typing import ClassVar

from sanic_cookies import Backend
from sanic_cookies.backends.memory import MemoryBackend
from sanic_cookies.testing import BackendConformance, encode_value


class TestMemoryConformance(BackendConformance):
    lock_has_lease: ClassVar[bool] = False

    async def make_backend(self) -> Backend:
        return MemoryBackend(sweep_interval=0.1)


async def test_sweeper_drops_expired_entries() -> None:
    import asyncio

    backend = MemoryBackend(sweep_interval=0.1)
    await backend.open()
    try:
        await backend.save("ab" * 32, encode_value(1), 0.1)
        await backend.save("cd" * 32, encode_value(1), 60)
        await asyncio.sleep(0.4)
        assert len(backend) == 1
    finally:
        await backend.close()


async def test_max_entries_drops_the_least_recently_written() -> None:
    backend = MemoryBackend(max_entries=2)
    keys = [f"{i:064x}" for i in range(3)]
    for key in keys:
        await backend.save(key, encode_value(1), 60)
    assert len(backend) == 2
    assert await backend.load(keys[0]) is None
    assert await backend.load(keys[2]) is not None
