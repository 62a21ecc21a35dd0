"""RedisBackend against the conformance suite, on the shared Redis at 127.0.0.1:6379."""

from __future__ import annotations

from typing import Any

import pytest

from sanic_cookies.testing import BackendConformance

pytestmark = pytest.mark.redis


class TestRedisConformance(BackendConformance):
    @pytest.fixture(autouse=True)
    def _server(self, redis_url: str, redis_key_prefix: str) -> None:
        self.url = redis_url
        self.prefix = f"{redis_key_prefix}conformance:"

    def backend_url(self) -> str:
        return self.url

    def backend_options(self) -> dict[str, Any]:
        return {"prefix": self.prefix}
