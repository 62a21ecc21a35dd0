"""Both PostgreSQL backends, with each lock scope, against the conformance suite.

`lock_has_lease` holds: the lease is ``idle_session_timeout`` (session scope) or
``idle_in_transaction_session_timeout`` (transaction scope), so the server
closes a silent holder's connection either way.
"""

from __future__ import annotations

import pytest
from pg_support import sqlalchemy_url

from sanic_cookies import Backend
from sanic_cookies.backends.postgres import PostgresBackend, SQLAlchemyBackend
from sanic_cookies.testing import BackendConformance

pytestmark = pytest.mark.postgres


class TestPostgresConformance(BackendConformance):
    @pytest.fixture(autouse=True)
    def _server(self, postgres_dsn: str, pg_schema: str) -> None:
        self.dsn = postgres_dsn
        self.schema = pg_schema

    async def make_backend(self) -> Backend:
        return PostgresBackend.from_url(
            self.dsn, schema=self.schema, table="conformance_asyncpg", create_table=True
        )


class TestSQLAlchemyConformance(BackendConformance):
    @pytest.fixture(autouse=True)
    def _server(self, postgres_dsn: str, pg_schema: str) -> None:
        self.url = sqlalchemy_url(postgres_dsn)
        self.schema = pg_schema

    async def make_backend(self) -> Backend:
        return SQLAlchemyBackend.from_url(
            self.url, schema=self.schema, table="conformance_sqlalchemy", create_table=True
        )


class TestPostgresTransactionScopeConformance(TestPostgresConformance):
    async def make_backend(self) -> Backend:
        return PostgresBackend.from_url(
            self.dsn + "?lock_scope=transaction",
            schema=self.schema,
            table="conformance_asyncpg_tx",
            create_table=True,
        )


class TestSQLAlchemyTransactionScopeConformance(TestSQLAlchemyConformance):
    async def make_backend(self) -> Backend:
        return SQLAlchemyBackend.from_url(
            self.url,
            schema=self.schema,
            table="conformance_sqlalchemy_tx",
            create_table=True,
            lock_scope="transaction",
        )
