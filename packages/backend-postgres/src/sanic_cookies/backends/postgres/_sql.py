"""The SQL both backends send, for one sessions table.

Two kinds of statements:

* prepared statements with ``$n`` parameters (asyncpg caches them per
  connection), for everything that runs outside a session lock;
* simple-query scripts (several statements in one message, one round trip)
  for the steps of a lock, which must share a round trip with ``BEGIN`` or
  ``COMMIT``. The simple-query protocol takes no parameters, so their values
  are written as literals that contain only hex digits and numbers
  (``decode('…', 'hex')``): nothing a value holds can change the statement,
  whatever the server's ``standard_conforming_strings``.

Times come from the database clock only (``statement_timestamp()``, the
start of the current statement, so a long transaction does not skew it), and
are stored and compared as ``timestamptz``.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass

__all__ = ["DIVISION_BY_ZERO", "Queries", "milliseconds", "rows_affected"]

#: SQLSTATE of the error a fenced replace-only save raises when the row is gone.
DIVISION_BY_ZERO = "22012"

_NOW = "statement_timestamp()"
_PLAIN = re.compile(r"[0-9A-Za-z_.:-]*")


def rows_affected(status: str) -> int:
    """The row count in a command status such as ``UPDATE 1`` or ``DELETE 0``."""
    tail = status.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def _text(value: str) -> str:
    """`value` as an SQL text literal made of safe characters only."""
    if _PLAIN.fullmatch(value):
        return f"'{value}'"
    return f"convert_from(decode('{value.encode().hex()}', 'hex'), 'UTF8')"


def _bytea(value: bytes) -> str:
    return f"decode('{value.hex()}', 'hex')"


def _seconds(value: float) -> str:
    seconds = float(value)
    if not math.isfinite(seconds):
        raise ValueError(f"a time to live must be a finite number of seconds, got {value!r}")
    return repr(seconds)


def milliseconds(seconds: float) -> int:
    """Whole milliseconds for a timeout setting, at least 1 (0 would mean "no timeout")."""
    return max(1, math.ceil(seconds * 1000))


def _lock_id(*parts: str) -> int:
    """A signed 64-bit advisory-lock id from `parts`, spread evenly over the id space."""
    digest = hashlib.sha256("\x00".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@dataclass(frozen=True, slots=True)
class Queries:
    """Every statement for the table `table` (a quoted, schema-qualified name)."""

    table: str

    # -- prepared statements -------------------------------------------------------

    @property
    def load(self) -> str:
        """$1 key → (data, expires as epoch seconds), live rows only."""
        return (
            f"SELECT data, extract(epoch FROM expires)::float8 FROM {self.table} "
            f"WHERE key = $1 AND expires > {_NOW}"
        )

    @property
    def save(self) -> str:
        """$1 key, $2 data, $3 ttl seconds, $4 user id: insert or replace."""
        return (
            f"INSERT INTO {self.table} AS s (key, data, expires, user_id) "
            f"VALUES ($1, $2, {_NOW} + make_interval(secs => $3), $4) " + self._upsert_tail
        )

    @property
    def replace(self) -> str:
        """$1 key, $2 data, $3 ttl seconds, $4 user id: update a live row only."""
        return (
            f"UPDATE {self.table} SET data = $2, expires = {_NOW} + make_interval(secs => $3), "
            f"user_id = $4 WHERE key = $1 AND expires > {_NOW}"
        )

    @property
    def delete(self) -> str:
        """$1 key."""
        return f"DELETE FROM {self.table} WHERE key = $1"

    @property
    def touch(self) -> str:
        """$1 key, $2 ttl seconds: move a live row's expiry."""
        return (
            f"UPDATE {self.table} SET expires = {_NOW} + make_interval(secs => $2) "
            f"WHERE key = $1 AND expires > {_NOW}"
        )

    @property
    def list_user(self) -> str:
        """$1 user id → (key, data, expires as epoch seconds) of its live sessions."""
        return (
            f"SELECT key, data, extract(epoch FROM expires)::float8 FROM {self.table} "
            f"WHERE user_id = $1 AND expires > {_NOW}"
        )

    @property
    def delete_user(self) -> str:
        """$1 user id, $2 key to keep (or NULL) → how many live sessions were deleted.

        Expired rows of the user go too (they are garbage), but are not counted.
        """
        return (
            f"WITH gone AS (DELETE FROM {self.table} WHERE user_id = $1 "
            "AND key IS DISTINCT FROM $2 RETURNING expires) "
            f"SELECT count(*) FILTER (WHERE expires > {_NOW}) FROM gone"
        )

    @property
    def table_exists(self) -> str:
        """$1 the quoted table name → whether it exists (as the search path resolves it)."""
        return "SELECT to_regclass($1) IS NOT NULL"

    def sweep(self, *, elect: bool) -> str:
        """Delete expired rows in a batch, skipping rows a writer has locked.

        With `elect` ($1 the lock id, $2 the batch size), only while holding
        the transaction-scoped advisory lock $1, tried and never waited for,
        so concurrent sweepers take turns instead of racing over the same rows.
        Without ($1 the batch size), unconditionally. Returns (elected, deleted).
        """
        if elect:
            head = "WITH elected AS MATERIALIZED (SELECT pg_try_advisory_xact_lock($1) AS ok), "
            gate, limit = "AND (SELECT ok FROM elected) ", "$2"
            result = "SELECT (SELECT ok FROM elected), (SELECT count(*) FROM gone)"
        else:
            head, gate, limit = "WITH ", "", "$1"
            result = "SELECT true, (SELECT count(*) FROM gone)"
        return (
            f"{head}doomed AS (SELECT key FROM {self.table} WHERE expires <= {_NOW} {gate}"
            f"ORDER BY expires LIMIT {limit} FOR UPDATE SKIP LOCKED), "
            f"gone AS (DELETE FROM {self.table} AS s USING doomed WHERE s.key = doomed.key "
            f"RETURNING 1) {result}"
        )

    @property
    def sweep_lock_id(self) -> int:
        """The advisory lock that elects this table's sweeper."""
        return _lock_id("sanic_cookies.sweep", self.table)

    # -- simple-query scripts for the session lock -----------------------------------

    def lock_id(self, key: str) -> int:
        """The advisory lock of session `key` in this table."""
        return _lock_id("sanic_cookies.lock", self.table, key)

    def begin_and_lock(self, key: str, *, wait: float, lease: float) -> str:
        """Open a transaction holding `key`'s lock, waiting at most `wait` seconds.

        ``lock_timeout`` bounds the wait (SQLSTATE 55P03 when it runs out);
        ``idle_in_transaction_session_timeout`` is the lease: a holder that
        stops talking to the server for `lease` seconds loses its connection,
        and with it the lock. READ COMMITTED whatever the server's default:
        under REPEATABLE READ the load would see the snapshot taken by the lock
        statement, i.e. from before the wait, and lose the previous holder's write.
        """
        return (
            "BEGIN ISOLATION LEVEL READ COMMITTED; "
            f"SET LOCAL lock_timeout = {milliseconds(wait)}; "
            f"SET LOCAL idle_in_transaction_session_timeout = {milliseconds(lease)}; "
            f"SELECT pg_advisory_xact_lock({self.lock_id(key)})"
        )

    def set_lease(self, lease: float) -> str:
        """Restart the lease of the open transaction at `lease` seconds."""
        return f"SET LOCAL idle_in_transaction_session_timeout = {milliseconds(lease)}"

    def save_and_commit(
        self, key: str, value: bytes, ttl: float, user_id: str | None, *, replace_only: bool
    ) -> str:
        """Write and commit (releasing the lock) in one round trip.

        With `replace_only`, a row that is gone or expired makes the script
        fail with a division by zero before ``COMMIT``: the transaction aborts,
        nothing is written, and the caller rolls back and reports False.
        """
        k, data, secs = _text(key), _bytea(value), _seconds(ttl)
        uid = "NULL" if user_id is None else _text(user_id)
        expires = f"{_NOW} + make_interval(secs => {secs})"
        if replace_only:
            write = (
                f"WITH saved AS (UPDATE {self.table} SET data = {data}, expires = {expires}, "
                f"user_id = {uid} WHERE key = {k} AND expires > {_NOW} RETURNING 1) "
                "SELECT 1 / count(*) FROM saved"
            )
        else:
            write = (
                f"INSERT INTO {self.table} AS s (key, data, expires, user_id) "
                f"VALUES ({k}, {data}, {expires}, {uid}) " + self._upsert_tail
            )
        return f"{write}; COMMIT"

    def delete_and_commit(self, key: str) -> str:
        """Delete `key` and commit (releasing the lock) in one round trip."""
        return f"DELETE FROM {self.table} WHERE key = {_text(key)}; COMMIT"

    def create_script(self, statements: list[str]) -> str:
        """Run the DDL `statements` in one transaction, one process at a time.

        Concurrent ``CREATE ... IF NOT EXISTS`` can still fail on a catalog
        unique index, so the workers starting together serialize on a lock.
        """
        lock = _lock_id("sanic_cookies.ddl", self.table)
        body = "; ".join(statements)
        return f"BEGIN; SELECT pg_advisory_xact_lock({lock}); {body}; COMMIT"

    @property
    def _upsert_tail(self) -> str:
        # A row replaced after it expired starts a new life: reset its creation time.
        return (
            "ON CONFLICT (key) DO UPDATE SET data = excluded.data, expires = excluded.expires, "
            "user_id = excluded.user_id, "
            f"created = CASE WHEN s.expires <= {_NOW} THEN excluded.created ELSE s.created END"
        )
