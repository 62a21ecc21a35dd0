"""A session's life through a real Sanic server on each PostgreSQL backend, checked in the table."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import asyncpg
import httpx
import pytest
from pg_support import cookie_header, served, session_app

from sanic_cookies._ids import store_key
from sanic_cookies.backends.postgres import PostgresStore

pytestmark = pytest.mark.postgres


async def _get(client: httpx.AsyncClient, path: str, cookie: str | None = None) -> httpx.Response:
    client.cookies.clear()
    response = await client.get(path, headers={"cookie": cookie} if cookie else {})
    assert response.status_code == 200, (path, response.status_code, response.text)
    return response


def _sid(cookie: str) -> str:
    return cookie.partition("=")[2]


@pytest.mark.parametrize("kind", ["asyncpg", "sqlalchemy"])
async def test_session_life_through_sanic(
    kind: str, make_backend: Callable[..., PostgresStore], postgres_dsn: str, pg_schema: str
) -> None:
    table = f"{pg_schema}.e2e_{kind}"
    app, _ = session_app(backend=make_backend(kind, table=f"e2e_{kind}"), warn_lock=False)
    db = await asyncpg.connect(postgres_dsn)

    async def rows() -> dict[str, Any]:
        return {r["key"]: r for r in await db.fetch(f"SELECT * FROM {table}")}

    try:
        async with served(app) as client:
            # A new session is written under the hash of its id, never the id itself.
            cookie = cookie_header(await _get(client, "/set?colour=blue"))
            stored = await rows()
            assert list(stored) == [store_key(_sid(cookie))]
            assert _sid(cookie).encode() not in bytes(stored[store_key(_sid(cookie))]["data"])
            row = stored[store_key(_sid(cookie))]
            assert row["expires"].tzinfo is not None and row["created"] < row["expires"]

            assert (await _get(client, "/incr", cookie)).json() == {"n": 1}
            assert (await _get(client, "/incr", cookie)).json() == {"n": 2}
            assert (await _get(client, "/read", cookie)).json() == {"colour": "blue", "n": 2}

            # Rotation: a new id, the data kept, the old id dead.
            rotated = cookie_header(await _get(client, "/regenerate", cookie))
            assert rotated != cookie
            assert set(await rows()) == {store_key(_sid(rotated))}
            assert (await _get(client, "/read", rotated)).json() == {"colour": "blue", "n": 2}
            assert (await _get(client, "/read", cookie)).json() == {}

            # An expired row is a fresh, empty session (and no error).
            await db.execute(f"UPDATE {table} SET expires = now() - interval '1 second'")
            assert (await _get(client, "/read", rotated)).json() == {}
            await db.execute(f"UPDATE {table} SET expires = now() + interval '1 hour'")

            # Garbage cookies are new sessions too.
            for junk in ("session=garbage", "session=" + "A" * 43, "session=%00%ff"):
                assert (await _get(client, "/read", junk)).json() == {}

            # Logout (destroy) is final: the row is gone and the cookie is cleared.
            response = await _get(client, "/destroy", rotated)
            assert "session=;" in response.headers.get("set-cookie", "").replace('""', "")
            assert await rows() == {}
            assert (await _get(client, "/read", rotated)).json() == {}
    finally:
        await db.close()
