"""Microseconds per `MemoryBackend.save`, with the entry cap off, under it, and at it.

``python -m bench.memory_cap [--n 200000] [--cap 100000]`` saves `n` new sessions
(the costly case: each one adds an entry) into a fresh backend per scenario and
prints CPU microseconds per save, best of three runs:

* ``no cap``: ``max_entries=None``.
* ``under cap``: the cap is above `n`, so nothing is evicted.
* ``at cap``: the backend is filled to the cap first, so every save evicts one.
* ``rewrite``: saves to keys that already exist (a session's next write), at the cap.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import time

from sanic_cookies.backends.memory import MemoryBackend

VALUE = b"x" * 120  # about the size of a small session record


def keys(n: int, salt: str) -> list[str]:
    """`n` distinct 64-hex store keys."""
    return [(salt + os.urandom(28).hex() + f"{i:08x}")[-64:] for i in range(n)]


async def _fill(backend: MemoryBackend, names: list[str]) -> None:
    for i, key in enumerate(names):
        await backend.save(key, VALUE, 3600 + (i % 997))


async def _per_save(backend: MemoryBackend, names: list[str]) -> float:
    start = time.process_time()
    for i, key in enumerate(names):
        await backend.save(key, VALUE, 3600 + (i % 997))
    return (time.process_time() - start) / len(names) * 1e6


async def scenario(name: str, n: int, cap: int) -> float:
    """CPU µs per save in scenario `name`."""
    if name == "no cap":
        backend = MemoryBackend(max_entries=None)
        return await _per_save(backend, keys(n, "a"))
    if name == "under cap":
        backend = MemoryBackend(max_entries=n + 1)
        return await _per_save(backend, keys(n, "b"))
    backend = MemoryBackend(max_entries=cap)
    first = keys(cap, "c")
    await _fill(backend, first)
    if name == "at cap":
        return await _per_save(backend, keys(n, "d"))
    return await _per_save(backend, first[: min(n, cap)])


async def main(n: int, cap: int) -> None:
    logging.getLogger("sanic_cookies").setLevel(logging.ERROR)  # the "cap reached" warning
    print(f"MemoryBackend.save, {n} saves, cap {cap}: CPU µs per save (best of 3)")
    for name in ("no cap", "under cap", "at cap", "rewrite"):
        best = min([await scenario(name, n, cap) for _ in range(3)])
        print(f"  {name:<10} {best:6.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--cap", type=int, default=100_000)
    args = parser.parse_args()
    asyncio.run(main(args.n, args.cap))
