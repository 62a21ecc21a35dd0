"""0.4-style plain access on Redis, with autoload (the session is read in the middleware)."""

from __future__ import annotations

import uuid

import pytest
from environment import require_module
from plain_access_support import check_plain_access, plain_access_app

pytestmark = pytest.mark.redis


async def test_plain_access_on_redis_with_autoload(redis_url: str, redis_key_prefix: str) -> None:
    require_module("sanic_cookies.backends.redis", "sanic-cookies-redis")
    from sanic_cookies.backends.redis import RedisBackend

    def make(**settings: object) -> object:
        backend = RedisBackend.from_url(redis_url, prefix=f"{redis_key_prefix}{uuid.uuid4().hex}:")
        assert not backend.loads_now
        return plain_access_app(backend, autoload=True, **settings)

    await check_plain_access(make)  # type: ignore[arg-type]
