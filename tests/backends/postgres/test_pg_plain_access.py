"""0.4-style plain access on PostgreSQL, with autoload (the session is read in the middleware)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from plain_access_support import check_plain_access, plain_access_app

from sanic_cookies.backends.postgres import PostgresStore

pytestmark = pytest.mark.postgres


@pytest.mark.parametrize("kind", ["asyncpg", "sqlalchemy"])
async def test_plain_access_on_postgres_with_autoload(
    kind: str, make_backend: Callable[..., PostgresStore]
) -> None:
    def make(**settings: Any) -> Any:
        backend = make_backend(kind, table=f"plain_{kind}_{uuid.uuid4().hex[:8]}")
        assert not backend.loads_now
        return plain_access_app(backend, autoload=True, **settings)

    await check_plain_access(make)
