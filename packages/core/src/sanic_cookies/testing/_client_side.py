"""The tests every client-side backend must pass (see `sanic_cookies.testing`)."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
from collections.abc import AsyncIterator
from typing import Any, ClassVar, NamedTuple

import pytest
import pytest_asyncio

from sanic_cookies._backend import ClientSideBackend
from sanic_cookies._errors import LockTimeout, SessionTooLarge, UnsupportedOperation
from sanic_cookies._ids import store_key
from sanic_cookies.clock import ManualClock, now

from ._clock import wait_until
from ._opened import opened
from ._processes import Peer
from ._values import decode_stored

__all__ = ["ClientSideBackendConformance", "KeyRotation"]

# RFC 6265 cookie-octet: printable ASCII but space, '"', ',', ';' and '\'.
_COOKIE_OCTETS = re.compile(r"[\x21\x23-\x2B\x2D-\x3A\x3C-\x5B\x5D-\x7E]+")


class KeyRotation(NamedTuple):
    """Three backends of one kind, for the key-rotation tests.

    Attributes:
        before: Encrypts (and decrypts) with the old key only.
        during: The new key prepended: encrypts with the new key, decrypts with both.
        after: The old key dropped: the new key only.
    """

    before: ClientSideBackend
    during: ClientSideBackend
    after: ClientSideBackend


def _value(n: int) -> bytes:
    return b'{"n":%d,"pad":"%s"}' % (n, secrets.token_hex(8).encode())


@pytest.mark.asyncio
class ClientSideBackendConformance:
    """The contract of `sanic_cookies.ClientSideBackend`, as tests.

    Subclass it (as ``Test<Something>``) and implement the ``make_*`` methods;
    each returns fresh, unopened backends. The suite opens and closes them.

    Attributes:
        revokes: `make_backend` returns a backend whose `revoke_cookie` makes
            tokens unusable (a revocation list is configured). If False, the
            suite checks instead that revoking is a harmless no-op.
        ttl_resolution: Seconds of slack the backend's expiry may take.
        wait_limit: The most seconds an expiry test waits for a token to stop
            decoding after moving the library's clock (``manual_clock``): none
            for a backend that reads `sanic_cookies.clock.now`; a bound for one
            that reads another clock.
    """

    revokes: ClassVar[bool] = True
    ttl_resolution: ClassVar[float] = 0.2
    wait_limit: ClassVar[float] = 30.0

    async def make_backend(self) -> ClientSideBackend:
        """Return a fresh, unopened backend."""
        raise NotImplementedError(
            "Implement make_backend() in your ClientSideBackendConformance subclass"
        )

    def backend_url(self) -> str:
        """The URL `make_backend`'s backend is built from, for the cross-process test.

        Optional: implement it (and `backend_options`) to prove, with a second OS
        process opened from the same URL and options, that tokens minted by one
        worker decode in another and that a revocation in one holds in the other.
        """
        raise NotImplementedError

    def backend_options(self) -> dict[str, Any]:
        """Keyword options for ``from_url`` with `backend_url` (JSON values). Default: none."""
        return {}

    async def make_foreign_backend(self) -> ClientSideBackend:
        """Return a backend of the same kind whose secret differs from `make_backend`'s."""
        raise NotImplementedError(
            "Implement make_foreign_backend() in your ClientSideBackendConformance subclass"
        )

    async def make_rotation(self) -> KeyRotation:
        """Return the three stages of a key rotation (see `KeyRotation`)."""
        raise NotImplementedError(
            "Implement make_rotation() in your ClientSideBackendConformance subclass"
        )

    @pytest_asyncio.fixture
    async def backend(self) -> AsyncIterator[ClientSideBackend]:
        async with opened(await self.make_backend()) as backend:
            yield backend

    @pytest_asyncio.fixture
    async def foreign(self) -> AsyncIterator[ClientSideBackend]:
        async with opened(await self.make_foreign_backend()) as backend:
            yield backend

    @pytest_asyncio.fixture
    async def rotation(self) -> AsyncIterator[KeyRotation]:
        stages = await self.make_rotation()
        for backend in stages:
            await backend.open()
        try:
            yield stages
        finally:
            for backend in stages:
                await backend.close()

    # -- round trip -------------------------------------------------------------------

    async def test_round_trip(self, backend: ClientSideBackend) -> None:
        value = _value(1)
        before = now()
        token = await backend.encode_cookie(value, 100)
        assert isinstance(token, str)
        assert _COOKIE_OCTETS.fullmatch(token), "the token must be a cookie value as it is"
        stored = await backend.decode_cookie(token)
        assert stored is not None
        assert stored.value == value
        assert before + 100 - 2 <= stored.expires_at <= now() + 100 + 1

    async def test_binary_values_survive(self, backend: ClientSideBackend) -> None:
        value = bytes(range(256)) * 4
        stored = await backend.decode_cookie(await backend.encode_cookie(value, 60))
        assert stored is not None and stored.value == value

    async def test_every_write_is_a_new_token(self, backend: ClientSideBackend) -> None:
        value = _value(2)
        first = await backend.encode_cookie(value, 60)
        second = await backend.encode_cookie(value, 60)
        assert first != second
        for token in (first, second):
            stored = await backend.decode_cookie(token)
            assert stored is not None and stored.value == value

    async def test_tokens_are_independent(self, backend: ClientSideBackend) -> None:
        a = await backend.encode_cookie(_value(1), 60)
        b = await backend.encode_cookie(_value(2), 60)
        stored_a, stored_b = await backend.decode_cookie(a), await backend.decode_cookie(b)
        assert stored_a is not None and stored_a.value.startswith(b'{"n":1,')
        assert stored_b is not None and stored_b.value.startswith(b'{"n":2,')

    async def test_continued_session_round_trips(self, backend: ClientSideBackend) -> None:
        first = await backend.encode_cookie(_value(1), 60)
        second = await backend.encode_cookie(_value(2), 60, previous=first)
        stored = await backend.decode_cookie(second)
        assert stored is not None and stored.value.startswith(b'{"n":2,')
        # A previous token that is garbage starts a new session, without an error.
        third = await backend.encode_cookie(_value(3), 60, previous="garbage")
        assert await backend.decode_cookie(third) is not None

    # -- expiry -----------------------------------------------------------------------

    async def _refused(self, backend: ClientSideBackend, token: str) -> bool:
        """Wait until `token` no longer decodes; False if it still does after `wait_limit`.

        Immediate for a backend on the library's clock (moved by the test).
        """

        async def refused() -> bool:
            return await backend.decode_cookie(token) is None

        return await wait_until(refused, self.wait_limit + self.ttl_resolution)

    async def test_token_expires_after_ttl(
        self, backend: ClientSideBackend, manual_clock: ManualClock
    ) -> None:
        token = await backend.encode_cookie(_value(1), 0.5)
        assert await backend.decode_cookie(token) is not None
        manual_clock.advance(0.5 + self.ttl_resolution)
        assert await self._refused(backend, token)

    async def test_token_expires_at_the_deadline(
        self, backend: ClientSideBackend, manual_clock: ManualClock
    ) -> None:
        deadline = now() + 0.5
        token = await backend.encode_cookie(_value(1), 3600, deadline=deadline)
        stored = await backend.decode_cookie(token)
        assert stored is not None
        assert stored.expires_at <= deadline + 0.01, "expiry must be capped by the deadline"
        manual_clock.advance(0.5 + self.ttl_resolution)
        assert await self._refused(backend, token)

    async def test_expires_at_is_issue_time_plus_ttl(self, backend: ClientSideBackend) -> None:
        before = now()
        token = await backend.encode_cookie(_value(1), 30, deadline=before + 3600)
        after = now()
        stored = await backend.decode_cookie(token)
        assert stored is not None
        assert before + 30 - 0.01 <= stored.expires_at <= after + 30 + 0.01

    # -- what must not decode -----------------------------------------------------------

    async def test_tampered_tokens_are_none(self, backend: ClientSideBackend) -> None:
        token = await backend.encode_cookie(_value(1), 60)
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        positions = sorted({0, 1, 5, 10, len(token) // 2, len(token) - 2, len(token) - 1})
        for i in positions:
            other = alphabet[(alphabet.index(token[i]) + 7) % 64] if token[i] in alphabet else "A"
            tampered = token[:i] + other + token[i + 1 :]
            assert await backend.decode_cookie(tampered) is None, f"changed at {i}"
        for cut in (1, 4, len(token) // 2, len(token) - 1):
            assert await backend.decode_cookie(token[:-cut]) is None, f"cut {cut} at the end"
            assert await backend.decode_cookie(token[cut:]) is None, f"cut {cut} at the start"
        for extra in ("A", "AAAA", "=", "==", ".", token):
            assert await backend.decode_cookie(token + extra) is None, f"appended {extra!r}"

    async def test_garbage_is_none(self, backend: ClientSideBackend) -> None:
        garbage: list[Any] = [
            "",
            " ",
            "x",
            "null",
            "é" * 50,
            "\x00" * 100,
            "☃" * 300,
            "A" * 200,
            "gAAAAA" + "A" * 200,
            secrets.token_urlsafe(300),
            os.urandom(300).decode("latin-1"),
            "a" * 100_000,
            None,
            b"bytes",
            123,
            ["list"],
        ]
        for value in garbage:
            assert await backend.decode_cookie(value) is None, repr(value)[:40]

    async def test_foreign_key_is_none(
        self, backend: ClientSideBackend, foreign: ClientSideBackend
    ) -> None:
        token = await foreign.encode_cookie(_value(1), 60)
        assert await foreign.decode_cookie(token) is not None
        assert await backend.decode_cookie(token) is None
        mine = await backend.encode_cookie(_value(1), 60)
        assert await foreign.decode_cookie(mine) is None

    # -- key rotation -------------------------------------------------------------------

    async def test_rotation_old_key_still_decrypts_while_listed(
        self, rotation: KeyRotation
    ) -> None:
        old = await rotation.before.encode_cookie(_value(1), 60)
        stored = await rotation.during.decode_cookie(old)
        assert stored is not None and stored.value.startswith(b'{"n":1,')
        # Re-encrypted under the new key at the next write: the key-less-old stage reads it.
        new = await rotation.during.encode_cookie(stored.value, 60, previous=old)
        assert await rotation.after.decode_cookie(new) is not None
        assert await rotation.before.decode_cookie(new) is None, "must use the new key"

    async def test_rotation_retired_key_is_none(self, rotation: KeyRotation) -> None:
        old = await rotation.before.encode_cookie(_value(1), 60)
        assert await rotation.after.decode_cookie(old) is None

    # -- size ---------------------------------------------------------------------------

    async def test_oversized_value_raises_session_too_large(
        self, backend: ClientSideBackend
    ) -> None:
        with pytest.raises(SessionTooLarge) as caught:
            await backend.encode_cookie(os.urandom(2 * backend.max_cookie_size), 60)
        assert caught.value.limit <= backend.max_cookie_size
        assert caught.value.size > caught.value.limit
        assert str(caught.value.limit) in str(caught.value)

    async def test_every_accepted_token_fits(self, backend: ClientSideBackend) -> None:
        # Incompressible values of growing size: all accepted tokens fit, then refusal.
        accepted = 0
        for size in range(0, 2 * backend.max_cookie_size, 37):
            try:
                token = await backend.encode_cookie(os.urandom(size), 60)
            except SessionTooLarge as exc:
                assert exc.size > exc.limit
                break
            accepted += 1
            assert len(token) <= backend.max_cookie_size
        else:
            pytest.fail("no size was refused")
        assert accepted > 10, "a cookie should hold more than a few hundred bytes"

    # -- revocation ---------------------------------------------------------------------

    async def test_revoked_token_is_none(self, backend: ClientSideBackend) -> None:
        token = await backend.encode_cookie(_value(1), 60)
        other = await backend.encode_cookie(_value(2), 60)
        stored = await backend.decode_cookie(token)
        assert stored is not None
        await backend.revoke_cookie(token, stored.expires_at)
        if not self.revokes:
            # Documented: without a revocation list a copied cookie lives until it expires.
            assert await backend.decode_cookie(token) is not None
            return
        assert await backend.decode_cookie(token) is None
        assert await backend.decode_cookie(other) is not None, "only that session is revoked"

    async def test_revoking_covers_earlier_tokens_of_the_session(
        self, backend: ClientSideBackend
    ) -> None:
        first = await backend.encode_cookie(_value(1), 60)
        second = await backend.encode_cookie(_value(2), 60, previous=first)
        rotated = await backend.encode_cookie(_value(3), 60)  # previous=None: a new id
        await backend.revoke_cookie(second, now() + 60)
        if not self.revokes:
            assert await backend.decode_cookie(first) is not None
            return
        assert await backend.decode_cookie(second) is None
        assert await backend.decode_cookie(first) is None, "a copy taken before the last write"
        assert await backend.decode_cookie(rotated) is not None

    async def test_decode_cookie_now_agrees_or_is_unsupported(
        self, backend: ClientSideBackend
    ) -> None:
        # `loads_now` promises plain access can decode on the event loop.
        token = await backend.encode_cookie(_value(1), 60)
        if not backend.loads_now:
            with pytest.raises(UnsupportedOperation):
                backend.decode_cookie_now(token)
            return
        assert backend.decode_cookie_now(token) == await backend.decode_cookie(token)
        for bad in ("", "garbage", token[:-4]):
            assert backend.decode_cookie_now(bad) is None
        stored = await backend.decode_cookie(token)
        assert stored is not None
        await backend.revoke_cookie(token, stored.expires_at)
        assert (backend.decode_cookie_now(token) is None) == self.revokes

    async def test_revoking_garbage_is_harmless(self, backend: ClientSideBackend) -> None:
        for value in ("", "garbage", "A" * 300):
            await backend.revoke_cookie(value, now() + 60)

    # -- locking ------------------------------------------------------------------------

    async def test_lock_is_exclusive_in_process(self, backend: ClientSideBackend) -> None:
        key = store_key(await backend.encode_cookie(_value(1), 60))
        first = backend.lock(key, timeout=2, lease=10)
        assert await first.acquire() is None, "the core decodes the cookie itself"
        second = backend.lock(key, timeout=0.3, lease=10)
        with pytest.raises(LockTimeout):
            await second.acquire()
        other = backend.lock(store_key("another"), timeout=1, lease=10)
        await other.acquire()
        await other.release()
        await first.release()
        await first.release()  # idempotent
        third = backend.lock(key, timeout=2, lease=10)
        await third.acquire()
        await third.release()

    async def test_lock_serialises_concurrent_holders(self, backend: ClientSideBackend) -> None:
        key = store_key("shared")
        inside = 0
        most = 0

        async def hold() -> None:
            nonlocal inside, most
            lock = backend.lock(key, timeout=10, lease=10)
            await lock.acquire()
            try:
                inside += 1
                most = max(most, inside)
                await asyncio.sleep(0.001)
                inside -= 1
            finally:
                await lock.release()

        await asyncio.gather(*(hold() for _ in range(20)))
        assert most == 1

    # -- between processes ----------------------------------------------------------------

    async def test_cross_process_tokens_and_revocation(self, backend: ClientSideBackend) -> None:
        if backend.per_process:
            pytest.skip(f"{backend.label} declares per_process = True")
        try:
            url = self.backend_url()
        except NotImplementedError:
            pytest.skip("backend_url() is not implemented: the cross-process test needs it")
        async with Peer(type(backend), url, self.backend_options()) as peer:
            theirs = (await peer.call("encode", n=1, ttl=60))["token"]
            assert decode_stored(await backend.decode_cookie(theirs)) == 1, (
                "a token another worker minted from the same configuration must decode here"
            )
            mine = await backend.encode_cookie(b'{"n":2}', 60)
            assert (await peer.call("decode", token=mine))["n"] == 2
            await backend.revoke_cookie(theirs, now() + 60)
            seen = (await peer.call("decode", token=theirs))["n"]
            if self.revokes:
                assert seen is None, (
                    "a token revoked (logout) in one process still decodes in another: the "
                    "revocation list must be shared by every process (the cross-process rule)"
                )
            else:
                assert seen == 1

    # -- what does not exist here ---------------------------------------------------------

    async def test_user_index_is_unsupported(self, backend: ClientSideBackend) -> None:
        assert backend.supports_user_index is False
        with pytest.raises(UnsupportedOperation, match=r"\S"):
            await backend.list_user_sessions("someone")
        with pytest.raises(UnsupportedOperation, match=r"\S"):
            await backend.delete_user_sessions("someone")

    async def test_key_value_operations_are_unsupported(self, backend: ClientSideBackend) -> None:
        key = store_key("x")
        with pytest.raises(UnsupportedOperation):
            await backend.load(key)
        with pytest.raises(UnsupportedOperation):
            await backend.save(key, b"{}", 60)
        with pytest.raises(UnsupportedOperation):
            await backend.delete(key)
        with pytest.raises(UnsupportedOperation):
            await backend.touch(key, 60)
