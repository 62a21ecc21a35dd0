"""The cookie backend against the client-side conformance suite, with and without revocation."""

from __future__ import annotations

import secrets
from typing import Any, ClassVar

import pytest
from cookie_support import new_key
from environment import require_module

from sanic_cookies import ClientSideBackend, backend_from_url
from sanic_cookies.backends.cookie import CookieBackend
from sanic_cookies.backends.memory import MemoryBackend
from sanic_cookies.testing import ClientSideBackendConformance, KeyRotation

pytestmark = pytest.mark.cookie


class _Keys(ClientSideBackendConformance):
    """Keys shared by the three ``make_*`` methods of one test."""

    def _keys(self) -> list[str]:
        if not hasattr(self, "_key_list"):
            self._key_list = [new_key()]
        return self._key_list

    async def make_foreign_backend(self) -> ClientSideBackend:
        return CookieBackend(keys=[new_key()])

    async def make_rotation(self) -> KeyRotation:
        old, new = new_key(), new_key()
        return KeyRotation(
            before=CookieBackend(keys=[old]),
            during=CookieBackend(keys=[new, old]),
            after=CookieBackend(keys=[new]),
        )


class TestCookieWithMemoryRevocation(_Keys):
    async def make_backend(self) -> ClientSideBackend:
        return CookieBackend(
            keys=self._keys(), revocation=MemoryBackend(max_entries=None), single_process=True
        )


class TestCookieWithoutRevocation(_Keys):
    revokes: ClassVar[bool] = False

    def backend_url(self) -> str:
        return "cookie://"

    def backend_options(self) -> dict[str, Any]:
        return {"keys": self._keys()}

    async def make_backend(self) -> ClientSideBackend:
        return CookieBackend(keys=self._keys())


class TestCookieFromUrlWithRevocationUrl(_Keys):
    async def make_backend(self) -> ClientSideBackend:
        return backend_from_url(
            "cookie://", keys=self._keys(), revocation="memory://", single_process=True
        )  # type: ignore[return-value]


@pytest.mark.redis
class TestCookieWithRedisRevocation(_Keys):
    @pytest.fixture(autouse=True)
    def _redis(self, redis_url: str, redis_key_prefix: str) -> None:
        require_module("sanic_cookies.backends.redis", "sanic-cookies-redis")
        self._url = f"{redis_url}?prefix={redis_key_prefix}ck{secrets.token_hex(4)}:"

    def backend_url(self) -> str:
        # Built from the URL by the suite's second process: revocations must cross over.
        return "cookie://"

    def backend_options(self) -> dict[str, Any]:
        return {"keys": self._keys(), "revocation": self._url}

    async def make_backend(self) -> ClientSideBackend:
        return CookieBackend(keys=self._keys(), revocation=self._url)
