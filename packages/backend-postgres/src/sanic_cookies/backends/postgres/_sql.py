"""The SQL both backends send, for one sessions table.

Two kinds of statements:

* prepared statements with ``$n`` parameters (asyncpg caches them per
  connection), for everything outside a lock and for the session-scoped lock;
* simple-query scripts (several statements in one message, one round trip)
  for the steps of the transaction-scoped lock, which must share a round trip
  with ``BEGIN`` or ``COMMIT``. The simple-query protocol takes no parameters, so their values
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

__all__ = ["DIVISION_BY_ZERO", "Queries", "SessionLockStatements", "milliseconds", "rows_affected"]

#: SQLSTATE of the error a fenced replace-only save raises when the row is gone.
DIVISION_BY_ZERO = "22012"

_NOW = "statement_timestamp()"
# Seconds a row has left on the server's clock; the backend adds them to the library's
# `clock.now()` (so the core never compares the server's clock with its own).
_LEFT = f"extract(epoch FROM expires - {_NOW})::float8"
_RESTORE_IDLE = (
    "set_config('idle_session_timeout', "
    "current_setting('sanic_cookies.idle_session_timeout'), false)"
)
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
class SessionLockStatements:
    """The session-scoped lock's statements for one table, built once (see `Queries`)."""

    lock_and_load: str
    reread: str
    save: dict[str, str]
    delete: str
    unlock: str
    set_lease: str


@dataclass(frozen=True, slots=True)
class Queries:
    """Every statement for the table `table` (a quoted, schema-qualified name)."""

    table: str

    # -- prepared statements -------------------------------------------------------

    @property
    def load(self) -> str:
        """$1 key → (data, seconds it has left), live rows only."""
        return f"SELECT data, {_LEFT} FROM {self.table} WHERE key = $1 AND expires > {_NOW}"

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
        """$1 user id → (key, data, seconds left) of its live sessions."""
        return (
            f"SELECT key, data, {_LEFT} FROM {self.table} WHERE user_id = $1 AND expires > {_NOW}"
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

    @property
    def table_rights(self) -> str:
        """$1 the quoted table name → whether the current role may read and write its rows."""
        # has_table_privilege with a list answers whether ANY is held: ask for each.
        return "SELECT " + " AND ".join(
            f"has_table_privilege(to_regclass($1), '{right}')"
            for right in ("SELECT", "INSERT", "UPDATE", "DELETE")
        )

    @property
    def table_columns(self) -> str:
        """$1 the quoted table name → (name, type, not null, has default) of each column."""
        return (
            "SELECT attname::text, format_type(atttypid, atttypmod), attnotnull, atthasdef "
            "FROM pg_attribute WHERE attrelid = to_regclass($1) AND attnum > 0 "
            "AND NOT attisdropped ORDER BY attnum"
        )

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

    # -- the session-scoped lock (prepared statements) --------------------------------

    def session_lock_statements(self) -> SessionLockStatements:
        """Every statement of the session-scoped lock, built now rather than per request."""
        return SessionLockStatements(
            lock_and_load=self.lock_and_load(),
            reread=self.lock_and_load(take_lock=False),
            save={mode: self.save_and_unlock(mode) for mode in ("replace", "upsert", "create")},
            delete=self.delete_and_unlock,
            unlock=self.unlock,
            set_lease=self.set_session_lease,
        )

    def lock_and_load(self, *, take_lock: bool = True) -> str:
        """$1 key, $2 lock id, $3 acquire timeout ms, $4 lease ms → the live row, if any.

        One statement takes the session-level advisory lock, then reads the row.
        The ``CASE`` fixes the order: ``lock_timeout`` and ``synchronous_commit =
        off`` (for this statement only, see below), the lease as
        ``idle_session_timeout`` (its previous value kept in
        ``sanic_cookies.idle_session_timeout`` for the release), then the lock;
        the scan refers to the lock's result (``held.ok``), so it runs after it.

        The statement's snapshot was taken before the lock wait, so the read is
        ``FOR SHARE``: under READ COMMITTED a row locked that way is read in its
        newest committed version (an update the previous holder committed while
        we waited is followed, a delete is seen). Rows inserted meanwhile stay
        invisible; the lock's save refuses to overwrite one (see
        `save_and_unlock`). Without `take_lock`, the same statement for a lock
        already held (a re-read with a new snapshot).

        ``FOR SHARE`` marks the row, which gives the statement a transaction id
        and so a WAL flush at its commit: with ``synchronous_commit`` on, the
        read would wait for a disk sync (milliseconds; as long as the write
        after it). The mark is all it writes, and a crash that loses it loses
        nothing (row locks do not survive a restart anyway), so this statement
        alone commits asynchronously (``set_config(..., true)``: transaction
        scope, which here is the statement). Session writes keep the server's
        setting.
        """
        grant = "pg_advisory_lock($2::bigint)::text" if take_lock else "$2::bigint::text"
        return (
            "WITH held AS MATERIALIZED (SELECT CASE "
            "WHEN set_config('lock_timeout', $3, true) IS NULL THEN NULL "
            "WHEN set_config('synchronous_commit', 'off', true) IS NULL THEN NULL "
            "WHEN set_config('sanic_cookies.idle_session_timeout', "
            "current_setting('idle_session_timeout'), false) IS NULL THEN NULL "
            "WHEN set_config('idle_session_timeout', $4, false) IS NULL THEN NULL "
            f"ELSE {grant} END AS ok) "
            "SELECT s.data, s.expires FROM held, LATERAL ("
            f"SELECT data, {_LEFT} AS expires FROM {self.table} "
            f"WHERE key = $1 AND expires > {_NOW} AND held.ok IS NOT NULL FOR SHARE) s"
        )

    def save_and_unlock(self, mode: str) -> str:
        """$1 key, $2 data, $3 ttl, $4 user id, $5 lock id → rows written; then unlock.

        `mode` is ``replace`` (update a live row only), ``upsert`` (the lock
        loaded a row: insert or replace) or ``create`` (the lock loaded none:
        insert, or replace an expired row, but never a live row someone
        created after the lock's snapshot; 0 rows written then).

        The write runs first (the ``FROM`` subquery), the unlock after, in the
        same statement. A lock that was not held makes the unlock return false
        and the statement divide by zero, so the write is rolled back.
        The next holder may read before this statement commits; its
        ``FOR SHARE`` read waits for the commit.
        """
        if mode == "replace":
            write = (
                f"UPDATE {self.table} SET data = $2, expires = {_NOW} + make_interval(secs => $3), "
                f"user_id = $4 WHERE key = $1 AND expires > {_NOW}"
            )
        elif mode in ("upsert", "create"):
            tail = self._upsert_tail + (f" WHERE s.expires <= {_NOW}" if mode == "create" else "")
            write = (
                f"INSERT INTO {self.table} AS s (key, data, expires, user_id) "
                f"VALUES ($1, $2, {_NOW} + make_interval(secs => $3), $4) " + tail
            )
        else:
            raise ValueError(f"unknown save mode {mode!r}")
        return f"WITH written AS ({write} RETURNING 1) " + self._unlock_after(
            "(SELECT count(*) AS n FROM written)", "$5"
        )

    @property
    def delete_and_unlock(self) -> str:
        """$1 key, $2 lock id → rows deleted; then unlock (as `save_and_unlock`)."""
        return f"WITH gone AS (DELETE FROM {self.table} WHERE key = $1 RETURNING 1) " + (
            self._unlock_after("(SELECT count(*) AS n FROM gone)", "$2")
        )

    @property
    def unlock(self) -> str:
        """$1 lock id → whether it was held; restores ``idle_session_timeout``."""
        return f"SELECT pg_advisory_unlock($1), {_RESTORE_IDLE}"

    @property
    def set_session_lease(self) -> str:
        """$1 lease ms: restart the held lock's lease."""
        return "SELECT set_config('idle_session_timeout', $1, false)"

    @staticmethod
    def _unlock_after(counted: str, lock_id: str) -> str:
        # n - n is a zero the planner cannot fold: 1 / 0 would fail at plan time.
        return (
            f"SELECT CASE WHEN pg_advisory_unlock({lock_id}::bigint) THEN n ELSE 1 / (n - n) END, "
            f"{_RESTORE_IDLE} FROM {counted} c"
        )

    # -- simple-query scripts for the transaction-scoped lock ------------------------

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
