"""Contended sessions: many concurrent locked requests on ONE session (issue 18).

``python -m bench.contention [--requests 2000] [--concurrency 32] [--workers 1 4]
[--stores redis postgres] [--compare /path/to/other/checkout:/path/to/its/python]``

For each store and worker count, a real Sanic server (``bench/contention_app.py``)
serves ``/incr``; `concurrency` keep-alive clients send `requests` increments of
one cookie between them. Printed per run: the lock waits measured inside the
handler (p50/p99/max, ms), the request latency seen by the client (p99/max),
the timeouts (503s) and whether the counter ends at the number of 200s (no
lost update). ``--compare`` runs the same app on another checkout (e.g. a
``git worktree`` of 1.0.0 with its own virtualenv) in the same session, so
the figures sit side by side on the same machine load.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.loadgen import Client, run_async, set_cookie
from bench.stores import free_port, wait_port

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "bench" / "contention_app.py"


@dataclass(frozen=True)
class Tree:
    """A checkout to measure: its label and the Python that has it installed."""

    label: str
    python: str


@dataclass(frozen=True)
class Figures:
    """One run's results (milliseconds)."""

    wait_p50: float
    wait_p99: float
    wait_max: float
    latency_p99: float
    latency_max: float
    ok: int
    timeouts: int
    other: int
    final: int
    seconds: float


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] if ordered else 0.0


def store_url(store: str, tag: str) -> str:
    """The backend URL of one run: a key prefix / schema of its own."""
    if store == "redis":
        return f"redis://127.0.0.1:6379/0?prefix=bench-contention:{tag}:"
    return (
        f"postgresql://postgres@127.0.0.1:5432/test?schema=bench_contention_{tag}&create_table=true"
    )


async def cleanup(store: str, tag: str) -> None:
    """Drop what a run left in its store."""
    if store == "redis":
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url("redis://127.0.0.1:6379/0")
        try:
            keys = [k async for k in client.scan_iter(match=f"bench-contention:{tag}:*")]
            if keys:
                await client.delete(*keys)
        finally:
            await client.aclose()
    else:
        import asyncpg

        conn = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/test")
        try:
            await conn.execute(f"DROP SCHEMA IF EXISTS bench_contention_{tag} CASCADE")
        finally:
            await conn.close()


async def hammer(port: int, requests: int, concurrency: int) -> Figures:
    """Send `requests` increments of one new session, `concurrency` at a time."""
    first = Client(port)
    status, head, _ = await first.get("/incr")
    cookie = set_cookie(head, "session")
    if status != 200 or cookie is None:
        raise RuntimeError(f"/incr gave {status} and no session cookie")
    waits: list[float] = []
    latencies: list[float] = []
    counts = {"ok": 1, "timeouts": 0, "other": 0}
    todo = [requests - 1]

    async def worker() -> None:
        client = Client(port)
        try:
            while todo[0] > 0:
                todo[0] -= 1
                t0 = time.perf_counter()
                code, _, body = await client.get("/incr", cookie)
                latencies.append(time.perf_counter() - t0)
                if code == 200:
                    counts["ok"] += 1
                    waits.append(json.loads(body)["wait"])
                elif code == 503:
                    counts["timeouts"] += 1
                else:
                    counts["other"] += 1
        finally:
            await client.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    seconds = time.perf_counter() - t0
    _, _, body = await first.get("/read", cookie)
    await first.close()
    ms = 1000.0
    return Figures(
        wait_p50=statistics.median(waits) * ms if waits else 0.0,
        wait_p99=_pct(waits, 99) * ms,
        wait_max=max(waits, default=0.0) * ms,
        latency_p99=_pct(latencies, 99) * ms,
        latency_max=max(latencies, default=0.0) * ms,
        ok=counts["ok"],
        timeouts=counts["timeouts"],
        other=counts["other"],
        final=int(json.loads(body)["n"]),
        seconds=seconds,
    )


def run_one(tree: Tree, store: str, workers: int, args: argparse.Namespace) -> Figures:
    """Start the app of `tree` on `store` with `workers` workers, hammer it, stop it."""
    tag = secrets.token_hex(4)
    port = free_port()
    env = {
        **os.environ,
        "BC_URL": store_url(store, tag),
        "BC_PORT": str(port),
        "BC_WORKERS": str(workers),
    }
    env.pop("PYTHONPATH", None)  # the tree's own virtualenv decides what is imported
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            [tree.python, str(APP)],
            cwd=APP.parent,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_port(port, 60, proc)
            # Every worker up: the port answers as soon as the first one listens.
            time.sleep(1.0 + 0.5 * workers)
            return run_async(hammer(port, args.requests, args.concurrency))
        except Exception:
            log.seek(0)
            sys.stderr.write(log.read().decode(errors="replace")[-3000:])
            raise
        finally:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            run_async(cleanup(store, tag))


def main(argv: list[str] | None = None) -> int:
    """Parse the options, run every combination, print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--stores", nargs="+", default=["redis", "postgres"])
    parser.add_argument("--rounds", type=int, default=1, help="runs per cell (figures: median)")
    parser.add_argument(
        "--compare",
        action="append",
        default=[],
        metavar="LABEL=PYTHON",
        help="also run the app under this Python (another checkout's virtualenv)",
    )
    args = parser.parse_args(argv)
    trees = [Tree("this tree", sys.executable)]
    for spec in args.compare:
        label, _, python = spec.partition("=")
        trees.append(Tree(label, python))
    load = os.getloadavg()[0]
    print(
        f"{args.requests} locked increments of one session, {args.concurrency} concurrent; "
        f"{os.cpu_count()} CPUs, load {load:.2f} at start"
    )
    print()
    print(
        "| store | workers | code | lock wait p50 / p99 / max (ms) | latency p99 / max (ms) "
        "| 503 | other | counter / 200s | req/s |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for store in args.stores:
        for workers in args.workers:
            for tree in trees:
                runs = [run_one(tree, store, workers, args) for _ in range(args.rounds)]
                f = sorted(runs, key=lambda r: r.wait_max)[len(runs) // 2]
                lost = "" if f.final == f.ok else " LOST"
                print(
                    f"| {store} | {workers} | {tree.label} | {f.wait_p50:.1f} / "
                    f"{f.wait_p99:.1f} / {f.wait_max:.0f} | {f.latency_p99:.1f} / "
                    f"{f.latency_max:.0f} | {f.timeouts} | {f.other} | {f.final} / {f.ok}{lost} "
                    f"| {args.requests / f.seconds:.0f} |",
                    flush=True,
                )
    print(f"\nload {os.getloadavg()[0]:.2f} at the end")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
