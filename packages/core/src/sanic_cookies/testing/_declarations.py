"""The tests of `BackendConformance` that hold a backend to what it declares and documents.

Each failure names its rule: `from_url` raises `ConfigurationError` for a bad option,
`open` works again after `close`, `cleanup` removes what a store that does not expire
entries by itself leaves behind, ``per_process = True`` only for a store no other
instance shares, and ``lock_has_lease = False`` only for an in-process lock.
"""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from sanic_cookies._backend import Backend
from sanic_cookies._errors import ConfigurationError
from sanic_cookies.clock import ManualClock

from ._clock import wait_until
from ._opened import opened
from ._values import decode_stored, encode_value, new_key

__all__ = ["DeclarationTests"]

FROM_URL_RULE = (
    "rule: from_url raises ConfigurationError for a bad URL or option (it runs at server "
    "start-up; sanic_cookies.parse_backend_url does the parsing and the raising)"
)
REOPEN_RULE = (
    "rule: open() works again after close() (test clients and restarted apps reopen a backend)"
)
CLEANUP_RULE = (
    "rule: a backend that does not declare expires_entries_itself = True removes expired "
    "entries in cleanup() and returns how many (sanic-cookies cleanup runs it from cron; "
    "declare expires_entries_itself = True only if the store drops them by itself)"
)
PER_PROCESS_RULE = (
    "rule: per_process = True only for a store each backend instance has to itself (the "
    "in-memory kind); a shared store must say per_process = False and lock across processes"
)
LEASE_DECLARATION_RULE = (
    "rule: lock_has_lease = False only for an in-process lock (LocalLock) of a backend that "
    "declares per_process = True; a lock on a shared store needs a lease"
)


class DeclarationTests:
    """Mixed into `BackendConformance`."""

    lock_has_lease: ClassVar[bool]
    ttl_resolution: ClassVar[float]
    wait_limit: ClassVar[float]

    def backend_url(self) -> str:
        raise NotImplementedError

    def backend_options(self) -> dict[str, Any]:
        raise NotImplementedError

    async def new_backend(self) -> Backend:
        raise NotImplementedError

    def bad_backend_url(self) -> str:
        """A URL `from_url` must refuse (with `backend_options`), for the `from_url` test.

        Default: `backend_url` with an option no backend takes. A backend whose URLs
        hand unknown query options on to its client (PostgreSQL's go to the server)
        returns another mistake it refuses, such as an out-of-range value.
        """
        url = self.backend_url()
        return url + ("&" if "?" in url else "?") + "no_such_option_xyz=1"

    async def test_from_url_refuses_a_bad_url(self, backend: Backend) -> None:
        try:
            bad = self.bad_backend_url()
        except NotImplementedError:
            pytest.skip("the backend is built by make_backend(), not from a backend_url()")
        try:
            type(backend).from_url(bad, **self.backend_options())
        except ConfigurationError:
            return
        except Exception as exc:
            pytest.fail(
                f"from_url({bad!r}) raised {type(exc).__name__}: {exc} instead of "
                f"ConfigurationError ({FROM_URL_RULE})"
            )
        pytest.fail(f"from_url({bad!r}) accepted a URL it cannot use ({FROM_URL_RULE})")

    async def test_reopens_after_close(self, backend: Backend) -> None:
        key = new_key()
        await backend.save(key, encode_value(1), 60)
        await backend.close()
        try:
            await backend.open()
            await backend.save(key, encode_value(2), 60)
            got = decode_stored(await backend.load(key))
            lock = backend.lock(key, timeout=2, lease=30)
            await lock.acquire()
            await lock.save_and_release(encode_value(3), 60)
            await lock.release()
        except Exception as exc:
            pytest.fail(
                f"After close() and open() again, the backend failed: {type(exc).__name__}: "
                f"{exc} ({REOPEN_RULE})"
            )
        assert got == 2, f"after reopening, load() gave {got} where 2 was saved ({REOPEN_RULE})"

    async def test_cleanup_removes_expired_entries(
        self, backend: Backend, manual_clock: ManualClock
    ) -> None:
        if backend.per_process:
            pytest.skip(f"{backend.label} declares per_process = True: no sweep from outside")
        if backend.expires_entries_itself:
            pytest.skip(f"{backend.label} declares expires_entries_itself = True")
        key = new_key()
        await backend.save(key, encode_value(1), 0.2)
        manual_clock.advance(0.2 + self.ttl_resolution)

        async def gone() -> bool:  # expired on the store's clock
            return await backend.load(key) is None

        if not await wait_until(gone, self.wait_limit + self.ttl_resolution):
            pytest.fail(
                f"A value saved with a 0.2s TTL was still loaded {self.wait_limit:g}s later "
                "(rule: load() never returns a value past its TTL)"
            )
        removed = await backend.cleanup()
        if not isinstance(removed, int) or isinstance(removed, bool) or removed < 1:
            pytest.fail(
                f"{backend.label}.cleanup() returned {removed!r} with an expired entry in the "
                f"store ({CLEANUP_RULE})"
            )

    async def test_per_process_tells_whether_instances_share_data(self, backend: Backend) -> None:
        key = new_key()
        await backend.save(key, encode_value(1), 60)
        async with opened(await self.new_backend()) as other:
            seen = await other.load(key)
        if backend.per_process and seen is not None:
            pytest.fail(
                f"{backend.label} declares per_process = True, but a second instance built "
                f"the same way reads what the first one saved: they share a store "
                f"({PER_PROCESS_RULE})"
            )
        if not backend.per_process and seen is None:
            pytest.fail(
                f"{backend.label} declares per_process = False (a shared store), but a second "
                "instance built the same way does not see what the first one saved: declare "
                "per_process = True if its data lives in each instance, or make make_backend() "
                f"build the same store every time ({PER_PROCESS_RULE})"
            )

    async def test_lock_has_lease_is_declared_consistently(self, backend: Backend) -> None:
        if not self.lock_has_lease and not backend.per_process:
            pytest.fail(
                f"The suite for {backend.label} sets lock_has_lease = False, but the backend "
                f"does not declare per_process = True ({LEASE_DECLARATION_RULE})"
            )
