"""A release that never reaches the store: the lock frees itself at the end of its lease.

The fault matrix covers a release whose answer was lost (the lock is free at
once). When the release itself never arrives — the store went away between
the handler's read and its release — nothing can free the lock but its lease;
that is what the lease is for. An in-process lock cannot fail to release, so
only the shared stores are tested. These drive the lock directly: the ASGI
test client closes the backend after each request, which would free a
PostgreSQL lock (its connection drops) and hide the case.
"""

from __future__ import annotations

from typing import Any

import pytest

from sanic_cookies import LockTimeout
from sanic_cookies.testing import FaultyBackend, InjectedFault, decode_stored, encode_value

KEY = "9a" * 32


@pytest.mark.parametrize("kind", ["redis", "postgres"])
async def test_a_lost_release_holds_the_lock_until_its_lease_ends(
    kind: str, stores: Any, tag: str
) -> None:
    backend, _ = await stores(kind, tag)
    faulty = FaultyBackend(backend)
    await faulty.open()
    try:
        await faulty.save(KEY, encode_value(1), 60)
        holder = faulty.lock(KEY, timeout=2.0, lease=1.0)
        await holder.acquire()
        faulty.fail("release", when="before")
        with pytest.raises(InjectedFault):
            await holder.release()

        # Still held: a waiter shorter than the lease gives up...
        with pytest.raises(LockTimeout):
            await backend.lock(KEY, timeout=0.3, lease=1.0).acquire()
        # ...one that outwaits the lease gets it, with the data intact.
        waiter = backend.lock(KEY, timeout=5.0, lease=5.0)
        assert decode_stored(await waiter.acquire()) == 1
        assert await waiter.save_and_release(encode_value(2), 60) is True
        assert decode_stored(await backend.load(KEY)) == 2
    finally:
        await faulty.close()
