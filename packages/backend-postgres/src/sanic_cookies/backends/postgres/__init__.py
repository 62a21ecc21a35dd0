"""PostgreSQL backends for sanic-cookies: asyncpg (``postgresql://``) and SQLAlchemy.

::

    from sanic_cookies import Session

    Session(app, backend="postgresql://app@db:5432/app?create_table=true")

    # with the application's SQLAlchemy engine, and the table in its metadata:
    from sanic_cookies.backends.postgres import SQLAlchemyBackend, sessions_table

    sessions = sessions_table(metadata)
    Session(app, backend=SQLAlchemyBackend(engine, table=sessions))

One table holds the sessions (``ddl()`` prints its SQL; ``python -m
sanic_cookies ddl`` too). ``async with request.ctx.session`` takes an
advisory lock shared by every process using the database (session-scoped by
default, 2 round trips; transaction-scoped with ``lock_scope="transaction"``),
released when the block ends or its connection drops. Expired rows are
never served, and a sweeper that one worker at a time runs deletes them
(``cleanup()`` does it from cron).
"""

from __future__ import annotations

from ._asyncpg import PostgresBackend
from ._lock import AdvisoryLock, LockScope, SessionScopedLock, TransactionScopedLock
from ._schema import DEFAULT_TABLE, ddl, sessions_table
from ._sqlalchemy import SQLAlchemyBackend
from ._store import PostgresStore
from ._sweeper import cleanup

__all__ = [
    "DEFAULT_TABLE",
    "AdvisoryLock",
    "LockScope",
    "PostgresBackend",
    "PostgresStore",
    "SQLAlchemyBackend",
    "SessionScopedLock",
    "TransactionScopedLock",
    "cleanup",
    "ddl",
    "sessions_table",
]
