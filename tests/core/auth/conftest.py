"""The backends every AuthSession end-to-end test runs against.

To run these tests on another backend, add an entry to `AUTH_BACKENDS`:
its id, the module that must be importable (None for in-tree ones) and a
builder taking the pytest request (use ``request.getfixturevalue("redis_url")``
and friends for servers) and returning what ``AuthSession(backend=...)``
accepts: a URL or a `Backend` instance. A backend whose distribution is not
installed is skipped, or fails where every distribution must be (see
tests/environment.py). Client-side backends (no
user index) are expected to raise `UnsupportedOperation` from
``logout_everywhere``/``list_sessions``; the tests check that.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from auth_support import ProxyBackend, SignedCookieBackend, build_app
from environment import require_module
from sanic import Sanic

from sanic_cookies import AuthSession, Backend

Builder = Callable[[pytest.FixtureRequest], Backend | str]


AUTH_BACKENDS: dict[str, tuple[str | None, Builder]] = {
    "memory": (None, lambda request: "memory://"),
    # A backend the core has never heard of: login must rotate the id there too (0.4's D4).
    "custom": (None, lambda request: ProxyBackend()),
    # A minimal client-side backend of our own: no store, no user index.
    "client-side": (None, lambda request: SignedCookieBackend()),
    # The real encrypted-cookie backend, with a revocation list so logout is final.
    "cookie": ("sanic_cookies.backends.cookie", lambda request: _cookie_backend()),
    # The shared Redis at 127.0.0.1:6379 (skipped, or failed under CI, when it is down).
    "redis": ("sanic_cookies.backends.redis", lambda request: _redis_url(request)),
    # The shared PostgreSQL, in a schema of this run (dropped at the end).
    "postgres": ("sanic_cookies.backends.postgres", lambda request: _postgres_url(request)),
    # The same through SQLAlchemyBackend (its own AsyncEngine from the URL).
    "postgres-sqlalchemy": (
        "sanic_cookies.backends.postgres",
        lambda request: "postgresql+asyncpg://" + _postgres_url(request).split("://", 1)[1],
    ),
}


def _postgres_url(request: pytest.FixtureRequest) -> str:
    schema = request.getfixturevalue("auth_pg_schema")
    table = f"auth_{os.urandom(4).hex()}"  # one per test: user names repeat across tests
    dsn = request.getfixturevalue("postgres_dsn")
    return f"{dsn}?schema={schema}&table={table}&create_table=true"


@pytest.fixture(scope="session")
def auth_pg_schema(postgres_dsn: str, postgres_schema: str) -> Iterator[str]:
    """A schema of this run for the auth tests' sessions table, dropped at the end."""
    import asyncpg

    schema = f"{postgres_schema}_auth"

    async def drop() -> None:
        connection = await asyncpg.connect(postgres_dsn)
        try:
            await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await connection.close()

    yield schema
    asyncio.run(drop())


def _redis_url(request: pytest.FixtureRequest) -> str:
    prefix = f"{request.getfixturevalue('redis_key_prefix')}auth:{os.urandom(4).hex()}:"
    return f"{request.getfixturevalue('redis_url')}?prefix={prefix}"


def _cookie_backend() -> Backend:
    import base64

    from sanic_cookies.backends.cookie import CookieBackend
    from sanic_cookies.backends.memory import MemoryBackend

    key = base64.urlsafe_b64encode(os.urandom(32)).decode()
    return CookieBackend(
        keys=[key], revocation=MemoryBackend(max_entries=None), single_process=True
    )


@pytest.fixture(params=list(AUTH_BACKENDS))
def auth_backend(request: pytest.FixtureRequest) -> Backend | str:
    """A fresh backend (URL or instance) for one test's AuthSession."""
    module, build = AUTH_BACKENDS[request.param]
    if module is not None:
        require_module(module, "sanic-cookies-" + module.rsplit(".", 1)[-1])
    return build(request)


@pytest.fixture
def make_app(auth_backend: Backend | str) -> Callable[..., tuple[Sanic[Any, Any], AuthSession]]:
    """``make_app(**settings)``: a test app (see `auth_support.build_app`) on the backend."""

    def make(**settings: Any) -> tuple[Sanic[Any, Any], AuthSession]:
        return build_app(auth_backend, **settings)

    return make
