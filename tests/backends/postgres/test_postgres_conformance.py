"""Both PostgreSQL backends, with each lock scope, against the conformance suite.

`lock_has_lease` holds: the lease is ``idle_session_timeout`` (session scope) or
``idle_in_transaction_session_timeout`` (transaction scope), so the server
closes a silent holder's connection either way. The suite builds each backend
from `backend_url` / `backend_options` (through the entry points), here and in
the second process of its cross-process tests.
"""

from __future__ import annotations

from typing import Any

import pytest
from pg_support import sqlalchemy_url

from sanic_cookies.testing import BackendConformance

pytestmark = pytest.mark.postgres


class TestPostgresConformance(BackendConformance):
    table = "conformance_asyncpg"
    query = ""

    @pytest.fixture(autouse=True)
    def _server(self, postgres_dsn: str, pg_schema: str) -> None:
        self.dsn = postgres_dsn
        self.schema = pg_schema

    def backend_url(self) -> str:
        return self.dsn + self.query

    def backend_options(self) -> dict[str, Any]:
        return {"schema": self.schema, "table": self.table, "create_table": True}

    def bad_backend_url(self) -> str:
        # Unknown query options are libpq's and go to asyncpg / the server: a bad value
        # of the backend's own option is the mistake from_url must refuse.
        url = self.backend_url()
        return url + ("&" if "?" in url else "?") + "command_timeout=0"


class TestSQLAlchemyConformance(TestPostgresConformance):
    table = "conformance_sqlalchemy"

    def backend_url(self) -> str:
        return sqlalchemy_url(self.dsn)


class TestPostgresTransactionScopeConformance(TestPostgresConformance):
    table = "conformance_asyncpg_tx"
    query = "?lock_scope=transaction"


class TestSQLAlchemyTransactionScopeConformance(TestSQLAlchemyConformance):
    table = "conformance_sqlalchemy_tx"

    def backend_options(self) -> dict[str, Any]:
        return {**super().backend_options(), "lock_scope": "transaction"}
