"""Millions of sessions (issue 18): ``python -m bench.scale`` (``nox -s scale``); minutes.

Fills Redis with `--sessions` sessions (pipelined HSET + PEXPIRE under a key prefix
of its own) and PostgreSQL with as many rows (COPY into a schema of its own, plus
`--expired` already-expired rows for the sweeper), then measures, per store:

* returning visitors (``/rmw``: locked read + increment + write) against the full
  store and against a store of `--small` sessions: requests/s and p99, in
  interleaved rounds, cookies drawn at random from all the sessions;
* PostgreSQL: one sweep of the expired rows (the background sweeper's query), its
  time, and the same load while it runs;
* ``logout_everywhere`` (the backend's ``delete_user_sessions``) for a user with
  `--user-sessions` sessions;
* Redis: bytes per session, from ``MEMORY USAGE`` of sampled keys and from
  ``used_memory`` before and after the fill; PostgreSQL: table + index bytes per row.

Everything it wrote is deleted at the end (also on failure). The machine's load
average is printed with the figures: they are only comparable at a similar load.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import hashlib
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.apps import TTL, StoreOptions
from bench.cli import Server, running
from bench.loadgen import Client, LoadResult, run_async, run_load, set_cookie

REDIS_URL = "redis://127.0.0.1:6379/0"
PG_DSN = "postgresql://postgres@127.0.0.1:5432/test"
BATCH = 10_000


@dataclass
class Filled:
    """A store filled for one measurement: the cookies of its sessions."""

    options: StoreOptions
    cookies: list[str]
    template: str


def new_ids(count: int) -> list[str]:
    """Session ids in the library's format (cookie value; the store key is their SHA-256)."""
    from sanic_cookies._ids import new_session_id

    return [new_session_id() for _ in range(count)]


def key_of(session_id: str) -> str:
    """The store key of a session id (as `sanic_cookies._ids.store_key`)."""
    return hashlib.sha256(session_id.encode()).hexdigest()


# -- the template session ----------------------------------------------------------------------


async def template_value(server: Server) -> str:
    """Make one session through the app; its cookie (the stored value is then copied)."""
    client = Client(server.port)
    try:
        status, head, _ = await client.get("/rmw")
        cookie = set_cookie(head, "session")
        if status != 200 or cookie is None:
            raise RuntimeError(f"/rmw gave {status} and no session cookie")
        return cookie
    finally:
        await client.close()


async def check_copy(server: Server, cookie: str) -> None:
    """A copied session must read back as the original (else the fill is meaningless)."""
    client = Client(server.port)
    try:
        status, _, body = await client.get("/read", cookie)
    finally:
        await client.close()
    if status != 200 or body.strip() != b"1":
        raise RuntimeError(f"a bulk-loaded session did not read back: {status} {body[:80]!r}")


# -- Redis -------------------------------------------------------------------------------------


def redis_data_key(prefix: str, key: str) -> str:
    """The data key of a session (as the backend's `KeySpace.data`)."""
    return f"{prefix}{{{key}}}"


async def redis_fill(prefix: str, template_key: str, count: int) -> list[str]:
    """Copy the template session to `count` new ids, pipelined; their cookies."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        value = await client.hget(redis_data_key(prefix, template_key), "v")
        if value is None:
            raise RuntimeError("the template session is not in Redis")
        ids = new_ids(count)
        for start in range(0, count, BATCH):
            pipe = client.pipeline(transaction=False)
            for sid in ids[start : start + BATCH]:
                data = redis_data_key(prefix, key_of(sid))
                pipe.hset(data, "v", value)
                pipe.pexpire(data, TTL * 1000)
            await pipe.execute()
        return [f"session={sid}" for sid in ids]
    finally:
        await client.aclose()


async def redis_memory(prefix: str, cookies: Sequence[str], sample: int = 200) -> float:
    """Mean ``MEMORY USAGE`` (bytes) of sampled session keys."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        picked = random.sample(list(cookies), min(sample, len(cookies)))
        sizes = [
            await client.memory_usage(redis_data_key(prefix, key_of(c.partition("=")[2])))
            for c in picked
        ]
        return statistics.mean(s for s in sizes if s)
    finally:
        await client.aclose()


async def redis_used_memory() -> int:
    """Redis ``used_memory`` in bytes."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        return int((await client.info("memory"))["used_memory"])
    finally:
        await client.aclose()


async def redis_drop(prefix: str) -> int:
    """Delete every key under `prefix` (SCAN + UNLINK in batches); how many."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(REDIS_URL)
    gone = 0
    try:
        batch: list[bytes] = []
        async for key in client.scan_iter(match=f"{prefix}*", count=5000):
            batch.append(key)
            if len(batch) >= 5000:
                gone += await client.unlink(*batch)
                batch = []
        if batch:
            gone += await client.unlink(*batch)
    finally:
        await client.aclose()
    return gone


async def redis_logout_everywhere(prefix: str, sessions: int) -> float:
    """Seconds `delete_user_sessions` takes for a user with `sessions` sessions."""
    from sanic_cookies.backends.redis import RedisBackend

    backend = RedisBackend(REDIS_URL, prefix=prefix)
    await backend.open()
    try:
        return await _logout_everywhere(backend, sessions)
    finally:
        await backend.close()


async def _logout_everywhere(backend: Any, sessions: int) -> float:
    ids = new_ids(sessions)
    user = f"scale-user-{os.getpid()}"
    for start in range(0, sessions, 100):
        await asyncio.gather(
            *(
                backend.save(key_of(sid), b"x" * 64, TTL, user_id=user)
                for sid in ids[start : start + 100]
            )
        )
    listed = len(await backend.list_user_sessions(user))
    t0 = time.perf_counter()
    deleted = await backend.delete_user_sessions(user)
    took = time.perf_counter() - t0
    if listed != sessions or deleted != sessions:
        raise RuntimeError(f"logout_everywhere: {listed} listed, {deleted} deleted of {sessions}")
    return took


# -- PostgreSQL --------------------------------------------------------------------------------


async def pg_fill(schema: str, template_key: str, count: int, expired: int) -> list[str]:
    """COPY `count` live copies of the template row and `expired` expired ones; live cookies."""
    import asyncpg

    conn = await asyncpg.connect(PG_DSN)
    try:
        value = await conn.fetchval(
            f"SELECT data FROM {schema}.sessions WHERE key = $1", template_key
        )
        if value is None:
            raise RuntimeError("the template session is not in PostgreSQL")
        now = datetime.datetime.now(datetime.UTC)
        live_until = now + datetime.timedelta(seconds=TTL)
        gone_at = now - datetime.timedelta(seconds=60)
        ids = new_ids(count)
        for start in range(0, count, 100_000):
            rows = [
                (key_of(sid), value, now, live_until, None) for sid in ids[start : start + 100_000]
            ]
            await conn.copy_records_to_table(
                "sessions",
                schema_name=schema,
                records=rows,
                columns=["key", "data", "created", "expires", "user_id"],
            )
        for start in range(0, expired, 100_000):
            n = min(100_000, expired - start)
            rows = [(key_of(sid), value, gone_at, gone_at, None) for sid in new_ids(n)]
            await conn.copy_records_to_table(
                "sessions",
                schema_name=schema,
                records=rows,
                columns=["key", "data", "created", "expires", "user_id"],
            )
        await conn.execute(f"ANALYZE {schema}.sessions")
        return [f"session={sid}" for sid in ids]
    finally:
        await conn.close()


async def pg_bytes_per_row(schema: str) -> tuple[float, int]:
    """(table + indexes + TOAST bytes per row, rows)."""
    import asyncpg

    conn = await asyncpg.connect(PG_DSN)
    try:
        size = await conn.fetchval(f"SELECT pg_total_relation_size('{schema}.sessions')")
        rows = await conn.fetchval(f"SELECT count(*) FROM {schema}.sessions")
        return size / max(rows, 1), rows
    finally:
        await conn.close()


async def pg_drop(schema: str) -> None:
    """Drop the benchmark's schema."""
    import asyncpg

    conn = await asyncpg.connect(PG_DSN)
    try:
        await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    finally:
        await conn.close()


def pg_backend(schema: str) -> Any:
    """The backend on the benchmark's table (no background sweeper)."""
    from sanic_cookies.backends.postgres import PostgresBackend

    return PostgresBackend(PG_DSN, schema=schema, sweep_interval=None, create_table=True)


async def pg_sweep(schema: str) -> tuple[float, int]:
    """One sweep as the background sweeper runs it: (seconds, rows deleted)."""
    backend = pg_backend(schema)
    await backend.open()
    try:
        t0 = time.perf_counter()
        deleted = await backend.sweep()
        return time.perf_counter() - t0, deleted
    finally:
        await backend.close()


async def pg_logout_everywhere(schema: str, sessions: int) -> float:
    """Seconds `delete_user_sessions` takes for a user with `sessions` sessions."""
    backend = pg_backend(schema)
    await backend.open()
    try:
        return await _logout_everywhere(backend, sessions)
    finally:
        await backend.close()


# -- load --------------------------------------------------------------------------------------


async def load(server: Server, cookies: Sequence[str], args: argparse.Namespace) -> LoadResult:
    """Returning visitors on `server` for `--duration` seconds, `--pool` random cookies."""
    pool = random.sample(list(cookies), min(args.pool, len(cookies)))
    return await run_load(
        server.port,
        "/rmw",
        pool,
        duration=args.duration,
        connections=args.connections,
        core=None,
        tool="python",
    )


def line(label: str, results: Sequence[LoadResult]) -> str:
    """A table row: median rate and p99 over rounds."""
    rps = statistics.median(r.rps for r in results)
    p99 = statistics.median(r.p99_ms for r in results)
    errors = sum(r.errors for r in results)
    return f"| {label} | {rps:,.0f} | {p99:.1f} | {errors} |"


@contextlib.contextmanager
def server_for(app: str, options: StoreOptions, logdir: Path) -> Iterator[Server]:
    """One single-worker benchmark server of `app` on `options`."""
    with running([app], options, logdir, core=None) as servers:
        yield servers[app]


async def measure_store(store: str, args: argparse.Namespace, logdir: Path) -> list[str]:
    """Fill, measure and clean one store; the report lines."""
    tag = f"{os.getpid()}"
    # No background sweeper in the servers: the benchmark sweeps, and times it, itself.
    big = StoreOptions(
        prefix=f"bench-scale:{tag}:big:", schema=f"bench_scale_{tag}_big", sweep_interval=0
    )
    small = StoreOptions(
        prefix=f"bench-scale:{tag}:small:", schema=f"bench_scale_{tag}_small", sweep_interval=0
    )
    app = "redis" if store == "redis" else "postgres"
    out: list[str] = []
    try:
        filled: dict[str, Filled] = {}
        used_before = await redis_used_memory() if store == "redis" else 0
        fill_seconds = 0.0
        for name, options, count in (("small", small, args.small), ("big", big, args.sessions)):
            with server_for(app, options, logdir) as server:
                cookie = await template_value(server)
                tkey = key_of(cookie.partition("=")[2])
                t0 = time.perf_counter()
                if store == "redis":
                    cookies = await redis_fill(options.prefix + "s:", tkey, count)
                else:
                    cookies = await pg_fill(options.schema, tkey, count, 0)
                if name == "big":
                    fill_seconds = time.perf_counter() - t0
                await check_copy(server, cookies[0])
            filled[name] = Filled(options, cookies, tkey)
            if store == "redis" and name == "small":
                used_before = await redis_used_memory()
        print(
            f"  {store}: filled {args.sessions:,} sessions in {fill_seconds:.0f}s", file=sys.stderr
        )
        if store == "redis":
            used_after = await redis_used_memory()
            usage = await redis_memory(big.prefix + "s:", filled["big"].cookies)
            per = (used_after - used_before) / args.sessions
            out.append(
                f"- Redis memory per session: MEMORY USAGE {usage:.0f} B (key + hash + value, "
                f"mean of 200 sampled), used_memory growth {per:.0f} B per session "
                f"({args.sessions:,} sessions)"
            )
        else:
            per_row, rows = await pg_bytes_per_row(big.schema)
            out.append(
                f"- PostgreSQL: {per_row:.0f} B per row (table + indexes + TOAST, {rows:,} rows)"
            )
        results: dict[str, list[LoadResult]] = {"small": [], "big": []}
        with (
            server_for(app, big, logdir) as big_server,
            server_for(app, small, logdir) as small_server,
        ):
            servers = {"small": small_server, "big": big_server}
            for name in ("small", "big"):  # warm-up
                await load(servers[name], filled[name].cookies, replace_args(args, duration=2))
            for r in range(args.rounds):
                order = ["small", "big"] if r % 2 == 0 else ["big", "small"]
                for name in order:
                    results[name].append(await load(servers[name], filled[name].cookies, args))
            out.append("")
            out.append("| returning visitors | req/s | p99 (ms) | errors |")
            out.append("|---|---|---|---|")
            out.append(line(f"{store}, {args.small:,} sessions", results["small"]))
            out.append(line(f"{store}, {args.sessions:,} sessions", results["big"]))
            if store == "postgres":
                await pg_fill(big.schema, filled["big"].template, 0, args.expired)
                sweeping = asyncio.ensure_future(pg_sweep(big.schema))
                during = []
                while not sweeping.done():  # one-second loads for as long as the sweep lasts
                    one = replace_args(args, duration=1.0)
                    during.append(await load(big_server, filled["big"].cookies, one))
                took, deleted = await sweeping
                out.append(line(f"{store}, {args.sessions:,}, while sweeping", during))
                out.append("")
                out.append(
                    f"- PostgreSQL sweep: {deleted:,} expired rows of "
                    f"{args.sessions + args.expired:,} deleted in {took:.1f}s (the background "
                    "sweeper's query, default sweep_batch); the load during it is in the table"
                )
        if store == "redis":
            took = await redis_logout_everywhere(big.prefix + "u:", args.user_sessions)
        else:
            took = await pg_logout_everywhere(big.schema, args.user_sessions)
        out.append(
            f"- {store} logout_everywhere (delete_user_sessions) of a user with "
            f"{args.user_sessions:,} sessions: {took * 1000:.0f} ms"
        )
    finally:
        if store == "redis":
            for options in (big, small):
                await redis_drop(options.prefix)
        else:
            for options in (big, small):
                await pg_drop(options.schema)
    return out


def replace_args(args: argparse.Namespace, **changes: Any) -> argparse.Namespace:
    """A copy of `args` with `changes`."""
    return argparse.Namespace(**{**vars(args), **changes})


def main(argv: list[str] | None = None) -> int:
    """Parse the options, measure each store, print the Markdown report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stores", nargs="+", default=["redis", "postgres"])
    parser.add_argument("--sessions", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=1_000)
    parser.add_argument("--expired", type=int, default=100_000, help="PostgreSQL rows to sweep")
    parser.add_argument("--user-sessions", type=int, default=1_000)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--pool", type=int, default=20_000, help="cookies the load draws from")
    args = parser.parse_args(argv)
    start = os.getloadavg()
    lines = [
        f"Scale run {datetime.date.today()}: {os.cpu_count()} CPUs, load average "
        f"{start[0]:.1f} / {start[1]:.1f} / {start[2]:.1f} (1/5/15 min) at the start; "
        f"{args.duration:.0f}s x {args.rounds} interleaved rounds, {args.connections} connections, "
        f"one worker, locked read-modify-write, cookies drawn from {args.pool:,} random sessions",
        "",
    ]
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        for store in args.stores:
            lines += run_async(measure_store(store, args, Path(tmp)))
            lines.append("")
    end = os.getloadavg()
    lines.append(f"Load average at the end: {end[0]:.1f} / {end[1]:.1f} / {end[2]:.1f}")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
