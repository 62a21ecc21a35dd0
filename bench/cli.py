"""The benchmark run: servers up, round trips counted, interleaved timed rounds, a table.

See ``python bench/run.py --help``. The output is a Markdown report (the README's
"Benchmarks" section is a copy of one).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import importlib
import json
import os
import platform
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from bench.apps import SCENARIO_PATHS, StoreOptions
from bench.loadgen import Client, LoadResult, run_async, run_load, set_cookie, wrk_path
from bench.peers import PEER_MODULE
from bench.proxy import CountingProxy, Counts
from bench.stores import (
    PrivateRedis,
    free_port,
    host_port,
    postgres_schema,
    redis_delete_prefix,
    redis_ping,
    wait_port,
)

ROOT = Path(__file__).resolve().parent.parent

# In the order they run: new visitors last, since every one of them adds a session to
# the store (tens of thousands), which would weigh on the scenarios after it.
SCENARIOS = {
    "rmw": "returning visitor: read + increment + write inside `async with`",
    "untouched": "session cookie sent, handler never touches the session",
    "read": "read-only: `await request.ctx.session.load()`",
    "new": "new visitor: no cookie, a session is created",
}


@dataclass(frozen=True)
class Target:
    """A sanic-cookies backend to measure.

    Attributes:
        app: Its app in `bench.apps.APPS`.
        module: The module that must import for it to run.
        floor: The hand-written floor app it is compared with (None: bare only).
        store: ``"redis"``, ``"postgres"`` or None (no store to count).
        peers: Apps of other libraries (`bench.peers`) it is compared with.
        more_floors: Further floors it is compared with (after `floor`).
    """

    app: str
    module: str
    floor: str | None
    store: str | None
    peers: tuple[str, ...] = ()
    more_floors: tuple[str, ...] = ()

    @property
    def floors(self) -> tuple[str, ...]:
        """Every floor it is compared with, `floor` first."""
        return (self.floor, *self.more_floors) if self.floor is not None else self.more_floors


TARGETS = {
    # dict-locked: the memory backend's own work, by hand in one place (how fast it could be).
    "memory": Target(
        "memory",
        "sanic_cookies.backends.memory",
        "dict",
        None,
        ("sanic-session-memory",),
        ("dict-locked",),
    ),
    # redis-pipe: the floor that also pipelines concurrent requests on one connection (issue 15).
    "redis": Target(
        "redis",
        "sanic_cookies.backends.redis",
        "redis-raw",
        "redis",
        ("sanic-session-redis",),
        ("redis-pipe",),
    ),
    # The same with the `autoload` setting: what loading in the middleware costs.
    "redis-autoload": Target(
        "redis-autoload", "sanic_cookies.backends.redis", "redis-raw", "redis"
    ),
    "postgres": Target("postgres", "sanic_cookies.backends.postgres", "pg-raw", "postgres"),
    "postgres-sqla": Target(
        "postgres-sqla", "sanic_cookies.backends.postgres", "pg-raw", "postgres"
    ),
    # Its "floor" is the same backend with 1.0.0's token format (bench.cookie_v1).
    "cookie": Target("cookie", "sanic_cookies.backends.cookie", "cookie-1.0", None),
}
FLOOR_STORES = {
    "dict": None,
    "dict-locked": None,
    "redis-raw": "redis",
    "redis-pipe": "redis",
    "pg-raw": "postgres",
    "cookie-1.0": None,
}
PEER_STORES = {"sanic-session-memory": None, "sanic-session-redis": "redis"}

#: Goals of issue 8: (app, scenario, baseline, minimum ratio).
GOALS: list[tuple[str, str, str, float]] = [
    ("memory", "rmw", "bare", 0.85),
    ("memory", "new", "bare", 0.80),
    ("memory", "untouched", "bare", 0.97),
    ("redis", "rmw", "redis-raw", 1.0),
    ("postgres", "rmw", "pg-raw", 0.9),
    ("postgres-sqla", "rmw", "pg-raw", 0.9),
    ("cookie", "rmw", "bare", 0.6),
    # Issue 13: the new token format at least twice as fast as 1.0.0's.
    ("cookie", "rmw", "cookie-1.0", 2.0),
    # Issue 15: the networked backends against floors doing the same round trips.
    ("redis", "rmw", "redis-pipe", 0.8),
    ("postgres", "rmw", "pg-raw", 0.8),
    ("postgres-sqla", "rmw", "pg-raw", 0.7),
]
#: Goals of issue 8 against other libraries: (app, scenario) ahead of each of its peers.
PEER_GOALS = [("memory", "rmw"), ("redis", "rmw")]
#: Store round trips a sanic-cookies request may make, by scenario.
ROUND_TRIP_GOALS = {"untouched": 0.0, "read": 1.0, "rmw": 2.0}
MEMORY_OVERHEAD_GOAL = 300


# -- servers -------------------------------------------------------------------------------


@dataclass
class Server:
    """A benchmark app running in its own process."""

    app: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path
    cookies: list[str] = field(default_factory=list)


def start_server(
    app: str,
    options: StoreOptions,
    logdir: Path,
    *,
    core: int | None,
    profile: Path | None = None,
    wrapper: Sequence[str] = (),
) -> Server:
    """Start `app` on a free port (not waiting for it), behind `wrapper` (e.g. valgrind)."""
    port = free_port()
    log = logdir / f"{app}-{port}.log"
    cmd = [
        *wrapper,
        sys.executable,
        "-m",
        "bench.server",
        app,
        "--port",
        str(port),
        "--options",
        json.dumps(asdict(options)),
    ]
    if core is not None:
        cmd += ["--core", str(core)]
    if profile is not None:
        cmd += ["--profile", str(profile)]
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path}
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    return Server(app, port, proc, log)


def wait_servers(servers: Sequence[Server], timeout: float = 60) -> None:
    """Wait until every server listens; show the log of one that died."""
    for server in servers:
        try:
            wait_port(server.port, timeout, server.proc)
        except RuntimeError as exc:
            tail = server.log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"server {server.app} did not start: {exc}\n{tail}") from None


def stop_server(server: Server) -> None:
    """Stop gracefully (SIGINT runs the shutdown listeners), kill if it hangs."""
    if server.proc.poll() is None:
        server.proc.send_signal(signal.SIGINT)
        try:
            server.proc.wait(15)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait()


@contextlib.contextmanager
def running(
    apps: Sequence[str], options: StoreOptions, logdir: Path, *, core: int | None
) -> Iterator[dict[str, Server]]:
    """Start `apps` (in parallel), yield them by name, stop them all."""
    servers: dict[str, Server] = {}
    try:
        for app in apps:
            servers[app] = start_server(app, options, logdir, core=core)
        wait_servers(list(servers.values()))
        yield servers
    finally:
        for server in servers.values():
            stop_server(server)


async def create_sessions(server: Server, count: int, clients: int = 8) -> list[str]:
    """Make `count` sessions through ``/new``; their ``Cookie`` header values.

    Bare Sanic keeps no session: it gets cookies of the same shape, so every app
    parses the same requests.
    """
    if server.app in ("bare", "middleware"):
        return [f"session={secrets.token_urlsafe(32)}" for _ in range(count)]
    cookies: list[str] = []

    async def worker(n: int) -> None:
        client = Client(server.port)
        try:
            for _ in range(n):
                status, head, _ = await client.get(SCENARIO_PATHS["new"])
                pair = set_cookie(head, "session")
                if status != 200 or pair is None:
                    raise RuntimeError(f"{server.app}: /new gave {status} and no session cookie")
                cookies.append(pair)
        finally:
            await client.close()

    per, extra = divmod(count, clients)
    await asyncio.gather(*(worker(per + (k < extra)) for k in range(clients)))
    return cookies


# -- round trips -----------------------------------------------------------------------------


@dataclass(frozen=True)
class StoreCount:
    """Round trips and commands per request of one app in one scenario."""

    round_trips: float
    commands: float
    names: dict[str, float]


async def count_round_trips(
    app: str,
    store: str,
    options: StoreOptions,
    scenarios: Sequence[str],
    logdir: Path,
    requests: int = 50,
) -> dict[str, StoreCount]:
    """Run `app` against its store through a counting proxy, one request at a time."""
    if store == "redis":
        host, port = host_port(options.redis_url, 6379)
    else:
        host, port = host_port(options.postgres_dsn, 5432)
    proxy = CountingProxy(host, port, store)
    await proxy.start()
    proxied = replace(
        options,
        redis_url=_with_port(options.redis_url, proxy.port),
        postgres_dsn=_with_port(options.postgres_dsn, proxy.port),
    )
    server = start_server(app, proxied, logdir, core=None)
    counts: dict[str, StoreCount] = {}
    try:
        await asyncio.to_thread(wait_servers, [server])
        cookies = await create_sessions(server, 10, clients=1)
        client = Client(server.port)
        for scenario in scenarios:
            path = SCENARIO_PATHS[scenario]
            jar: list[str | None] = [None] if scenario == "new" else list(cookies)
            for k in range(10):  # warm: pool connections, prepared statements, scripts
                await client.get(path, jar[k % len(jar)])
            proxy.counts.reset()
            for k in range(requests):
                status, _, _ = await client.get(path, jar[k % len(jar)])
                if status != 200:
                    raise RuntimeError(f"{app} {path}: HTTP {status} while counting")
            counts[scenario] = _per_request(proxy.counts, requests)
        await client.close()
    finally:
        await asyncio.to_thread(stop_server, server)
        await proxy.stop()
    return counts


def _with_port(url: str, port: int) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    user, at, _ = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"{user}{at}127.0.0.1:{port}"))


def _per_request(counts: Counts, requests: int) -> StoreCount:
    return StoreCount(
        counts.round_trips / requests,
        counts.commands / requests,
        {name: n / requests for name, n in counts.names.most_common()},
    )


# -- timed rounds ------------------------------------------------------------------------------


@dataclass
class Cell:
    """All rounds of one app in one scenario."""

    runs: list[LoadResult] = field(default_factory=list)
    #: Server CPU time per request in microseconds, per run (None where unmeasurable).
    cpu_us: list[float | None] = field(default_factory=list)
    #: CPU time of the store's server processes (PostgreSQL, Redis) per request, per run.
    store_cpu_us: list[float | None] = field(default_factory=list)

    @property
    def cpu(self) -> float | None:
        known = [c for c in self.cpu_us if c is not None]
        return statistics.median(known) if known else None

    @property
    def store_cpu(self) -> float | None:
        known = [c for c in self.store_cpu_us if c is not None]
        return statistics.median(known) if known else None

    @property
    def rps(self) -> float:
        return statistics.median(r.rps for r in self.runs)

    @property
    def p50(self) -> float:
        return statistics.median(r.p50_ms for r in self.runs)

    @property
    def p99(self) -> float:
        return statistics.median(r.p99_ms for r in self.runs)

    @property
    def errors(self) -> int:
        return sum(r.errors for r in self.runs)


def ratio(a: Cell, b: Cell) -> float:
    """Median over rounds of a's rate over b's rate in the same round."""
    return statistics.median(x.rps / y.rps for x, y in zip(a.runs, b.runs, strict=True) if y.rps)


def cpu_ratio(a: Cell, b: Cell) -> float | None:
    """b's server CPU per request over a's: the rate ratio if both were CPU-bound."""
    pairs = [
        y / x for x, y in zip(a.cpu_us, b.cpu_us, strict=True) if x is not None and y is not None
    ]
    return statistics.median(pairs) if pairs else None


def cpu_ns(pid: int) -> int | None:
    """CPU time a process has used (all its threads) in nanoseconds; None off Linux."""
    total = 0
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            total += int((task / "schedstat").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return total


#: Process names of the store servers whose CPU the timed rounds count.
STORE_PROCESSES = frozenset({"postgres", "redis-server"})


def store_cpu_ns() -> dict[int, int]:
    """CPU time (ns) of every running store server process, by pid; empty off Linux."""
    found: dict[int, int] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if (proc / "comm").read_text().strip() not in STORE_PROCESSES:
                continue
        except OSError:
            continue
        used = cpu_ns(int(proc.name))
        if used is not None:
            found[int(proc.name)] = used
    return found


def store_cpu_us(before: dict[int, int], after: dict[int, int], requests: int) -> float | None:
    """Store server CPU per request between two `store_cpu_ns` readings (a new process from 0)."""
    if not after or not requests:
        return None
    return sum(used - before.get(pid, 0) for pid, used in after.items()) / 1000 / requests


async def timed_rounds(
    servers: dict[str, Server],
    scenario: str,
    args: argparse.Namespace,
    tool: str,
    progress: bool,
) -> dict[str, Cell]:
    """Warm every app, then `rounds` interleaved rounds (A B C, B C A, ...)."""
    path = SCENARIO_PATHS[scenario]
    apps = list(servers)
    cells = {app: Cell() for app in apps}

    async def one(app: str, duration: float) -> tuple[LoadResult, float | None, float | None]:
        server = servers[app]
        cookies = [] if scenario == "new" else server.cookies
        store_before = store_cpu_ns()
        before = cpu_ns(server.proc.pid)
        result = await run_load(
            server.port,
            path,
            cookies,
            duration=duration,
            connections=args.connections,
            core=args.client_core,
            tool=tool,
        )
        after = cpu_ns(server.proc.pid)
        store = store_cpu_us(store_before, store_cpu_ns(), result.requests)
        if before is None or after is None or not result.requests:
            return result, None, store
        return result, (after - before) / 1000 / result.requests, store

    if args.warmup > 0:
        for app in apps:
            await one(app, args.warmup)
    for r in range(args.rounds):
        order = apps[r % len(apps) :] + apps[: r % len(apps)]
        for app in order:
            result, cpu, store_cpu = await one(app, args.duration)
            cells[app].runs.append(result)
            cells[app].cpu_us.append(cpu)
            cells[app].store_cpu_us.append(store_cpu)
            if progress:
                print(
                    f"  {scenario:9} round {r + 1}/{args.rounds} {app:20} "
                    f"{result.rps:9.0f} req/s  p50 {result.p50_ms:.2f} ms  "
                    f"server CPU {cpu or 0:.1f} µs/req  store CPU {store_cpu or 0:.1f} µs/req",
                    file=sys.stderr,
                    flush=True,
                )
    return cells


# -- memory --------------------------------------------------------------------------------


def measure_memory(sessions: int) -> dict[str, Any]:
    """Run `bench.memsize` in a fresh process."""
    out = subprocess.run(
        [sys.executable, "-m", "bench.memsize", "--sessions", str(sessions)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


# -- the report --------------------------------------------------------------------------------


def machine() -> str:
    """One line describing this machine and software."""
    cpu = platform.processor() or "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    import sanic

    return (
        f"{os.cpu_count()} cores ({cpu}), Linux {platform.release()}, "
        f"Python {platform.python_version()}, Sanic {sanic.__version__}"
    )


def _fmt_count(count: StoreCount | None) -> tuple[str, str]:
    if count is None:
        return "–", "–"
    names = ", ".join(f"{name} {n:g}" for name, n in count.names.items())
    return f"{count.round_trips:.2g}", f"{count.commands:.2g}" + (f" ({names})" if names else "")


def report(
    args: argparse.Namespace,
    tool: str,
    results: dict[str, dict[str, Cell]],
    counts: dict[str, dict[str, StoreCount]],
    memory: dict[str, Any] | None,
    floors: dict[str, tuple[str, ...]],
) -> str:
    """The Markdown report: one table per scenario, then memory and goals."""
    lines = [
        f"Measured {datetime.date.today().isoformat()} on {machine()}.",
        f"Load: {tool} ({args.connections} keep-alive connections, {args.rounds} interleaved "
        f"rounds of {args.duration:g} s per app, median shown; returning visitors cycle "
        f"through {args.sessions} pre-created sessions). Server: one Sanic worker"
        + (f" pinned to core {args.server_core}" if args.server_core is not None else "")
        + (f", load generator on core {args.client_core}" if args.client_core is not None else "")
        + ".",
        "",
    ]
    for scenario, cells in results.items():
        bare = cells.get("bare")
        lines += [
            f"**{scenario}** — {SCENARIOS[scenario]}",
            "",
            "| app | req/s | p50 ms | p99 ms | × bare | × floor | server CPU µs/req "
            "| × bare by CPU | store server CPU µs/req | store round trips/req "
            "| store commands/req | errors |",
            "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|--:|",
        ]
        for app, cell in cells.items():
            x_bare = f"{ratio(cell, bare):.2f}" if bare is not None else "–"
            x_floor = (
                ", ".join(
                    f"{ratio(cell, cells[f]):.2f} ({f})" for f in floors.get(app, ()) if f in cells
                )
                or "–"
            )
            rt, cmds = _fmt_count(counts.get(app, {}).get(scenario))
            cpu = f"{cell.cpu:.1f}" if cell.cpu is not None else "–"
            by_cpu = cpu_ratio(cell, bare) if bare is not None else None
            x_cpu = f"{by_cpu:.2f}" if by_cpu is not None else "–"
            store_cpu = f"{cell.store_cpu:.1f}" if cell.store_cpu is not None else "–"
            lines.append(
                f"| {app} | {cell.rps:,.0f} | {cell.p50:.2f} | {cell.p99:.2f} | {x_bare} "
                f"| {x_floor} | {cpu} | {x_cpu} | {store_cpu} | {rt} | {cmds} | {cell.errors} |"
            )
        lines.append("")
    if memory is not None:
        m = memory["memory"]
        lines += [
            f"**memory** — memory backend, {m['sessions']:,} sessions of a "
            f"{m['payload_bytes']}-byte JSON payload ({m['record_bytes']}-byte stored record): "
            f"{m['tracemalloc_per_session']:.0f} bytes per session by tracemalloc "
            f"({m['getsizeof_per_session']:.0f} by sys.getsizeof), i.e. "
            f"{m['overhead_per_session']:.0f} bytes beyond the payload.",
            "",
        ]
        if memory.get("cookie"):
            c = memory["cookie"]
            lines += [
                f"**cookie size** — a typical logged-in session "
                f"({c['record_bytes']}-byte record): {c['cookie_bytes']}-byte cookie value, "
                f"{c['header_bytes']}-byte Set-Cookie header (1.0.0's Fernet format: "
                f"{c['cookie_bytes_1_0']} and {c['header_bytes_1_0']}).",
                "",
            ]
    lines += goals(results, counts, memory)
    return "\n".join(lines)


def goals(
    results: dict[str, dict[str, Cell]],
    counts: dict[str, dict[str, StoreCount]],
    memory: dict[str, Any] | None,
) -> list[str]:
    """One line per goal measured in this run: met, or missed by how much."""
    out = ["**goals**", ""]
    for app, scenario, base, minimum in GOALS:
        cells = results.get(scenario, {})
        if app in cells and base in cells:
            got = ratio(cells[app], cells[base])
            verdict = "met" if got >= minimum else f"MISSED by {minimum - got:.2f}"
            by_cpu = cpu_ratio(cells[app], cells[base])
            cpu_note = f" (by server CPU per request: {by_cpu:.2f}×)" if by_cpu is not None else ""
            out.append(
                f"- {app} {scenario} ≥ {minimum:g}× {base}: {got:.2f}× — {verdict}{cpu_note}"
            )
    for app, scenario in PEER_GOALS:
        line = _peer_goal(app, scenario, results.get(scenario, {}))
        if line is not None:
            out.append(line)
    for app, by_scenario in counts.items():
        if app in FLOOR_STORES or app in PEER_STORES:
            continue
        if app.endswith("-autoload"):  # it reads the store on every request with a cookie
            measured = ", ".join(f"{s} {c.round_trips:g}" for s, c in by_scenario.items())
            out.append(f"- {app}: no round-trip goal (autoload); round trips/req: {measured}")
            continue
        for scenario, expected in ROUND_TRIP_GOALS.items():
            if scenario in by_scenario:
                got_rt = by_scenario[scenario].round_trips
                verdict = "met" if got_rt <= expected else f"MISSED by {got_rt - expected:g}"
                out.append(
                    f"- {app} {scenario}: {expected:g} round trips/req: {got_rt:g} — {verdict}"
                )
    if memory is not None:
        over = memory["memory"]["overhead_per_session"]
        missed = over - MEMORY_OVERHEAD_GOAL
        verdict = "met" if missed <= 0 else f"MISSED by {missed:.0f}"
        out.append(
            f"- memory backend ≤ {MEMORY_OVERHEAD_GOAL} bytes/session beyond payload: "
            f"{over:.0f} — {verdict}"
        )
    return [*out, ""]


def _peer_goal(app: str, scenario: str, cells: dict[str, Cell]) -> str | None:
    """`app` ahead of each of its peers measured in this run (a rate ratio above 1)."""
    peers = [p for p in TARGETS[app].peers if p in cells]
    if app not in cells or not peers:
        return None
    ahead = {p: ratio(cells[app], cells[p]) for p in peers}
    each = []
    for peer, got in ahead.items():
        by_cpu = cpu_ratio(cells[app], cells[peer])
        cpu_note = f" (by server CPU per request: {by_cpu:.2f}×)" if by_cpu is not None else ""
        each.append(f"{got:.2f}× {peer}{cpu_note}")
    closest = min(ahead, key=ahead.__getitem__)
    gap = 1.0 - ahead[closest]
    verdict = "met" if gap < 0 else f"MISSED: behind {closest} by {gap:.2f}"
    names = ", ".join(peers)
    return f"- {app} {scenario} ahead of every peer ({names}): {'; '.join(each)} — {verdict}"


# -- main ----------------------------------------------------------------------------------


def _importable(module: str) -> bool:
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def _peers_importable() -> bool:
    if _importable(PEER_MODULE):
        return True
    print(
        f"skipping the peer apps (sanic-session): {PEER_MODULE} is not installed "
        "(`nox -s bench` installs it; or pip install sanic-session==0.8.0)",
        file=sys.stderr,
    )
    return False


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="bench/run.py",
        description="Benchmark sanic-cookies against bare Sanic and hand-written floors.",
    )
    parser.add_argument("--duration", type=float, default=2.0, help="seconds per timed run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per app")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of warm-up per app")
    parser.add_argument("--scenarios", nargs="+", choices=list(SCENARIOS), default=list(SCENARIOS))
    parser.add_argument(
        "--targets",
        nargs="+",
        choices=list(TARGETS),
        default=None,
        help="backends to measure (default: every one installed whose store is reachable)",
    )
    parser.add_argument("--no-floors", action="store_true", help="bare Sanic as the only baseline")
    parser.add_argument(
        "--no-peers", action="store_true", help="skip other libraries (sanic-session 0.8.0)"
    )
    parser.add_argument(
        "--middleware",
        action="store_true",
        help="also run bare Sanic with a no-op request + response middleware",
    )
    parser.add_argument("--tool", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--sessions", type=int, default=512, help="pre-created sessions")
    parser.add_argument("--memory-sessions", type=int, default=100_000)
    parser.add_argument("--no-memory", action="store_true", help="skip the memory measurement")
    parser.add_argument("--no-count", action="store_true", help="skip counting round trips")
    parser.add_argument("--redis-url", default=None, help="default: a private redis-server")
    parser.add_argument("--postgres-dsn", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--pool-size", type=int, default=10)
    parser.add_argument("--server-core", type=int, default=0)
    parser.add_argument("--client-core", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None, help="also write raw results here")
    parser.add_argument(
        "--profile",
        metavar="APP:SCENARIO",
        default=None,
        help="instead of the benchmark: load one app under pyinstrument and print the profile",
    )
    parser.add_argument(
        "--callgrind",
        action="store_true",
        help="instead of the benchmark: instructions per request under valgrind (steadier)",
    )
    parser.add_argument(
        "--callgrind-requests",
        type=int,
        default=1000,
        metavar="N",
        help="--callgrind: measure N and 2N requests per app and scenario, take the difference",
    )
    args = parser.parse_args(argv)
    cores = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()
    if args.server_core not in cores or args.client_core not in cores:
        args.server_core = args.client_core = None  # cannot pin here
    return args


async def _stores(
    args: argparse.Namespace, wanted: list[str], stack: contextlib.AsyncExitStack
) -> tuple[StoreOptions, list[str]]:
    """Set up the stores the targets need; the targets whose store is reachable."""
    run_id = secrets.token_hex(4)
    options = StoreOptions(
        redis_url=args.redis_url or "redis://127.0.0.1:6379/0",
        postgres_dsn=args.postgres_dsn,
        schema=f"bench_{run_id}",
        prefix=f"bench:{run_id}:",
        pool_size=args.pool_size,
    )
    usable = []
    for name in wanted:
        target = TARGETS[name]
        if not _importable(target.module):
            print(f"skipping {name}: {target.module} is not installed", file=sys.stderr)
            continue
        usable.append(name)
    stores = {TARGETS[n].store for n in usable} - {None}
    if "redis" in stores:
        if args.redis_url is None and PrivateRedis.available():
            private = PrivateRedis()
            private.start()
            stack.callback(private.stop)
            options = replace(options, redis_url=private.url)
        elif not await redis_ping(options.redis_url):
            print(f"skipping Redis targets: no server at {options.redis_url}", file=sys.stderr)
            usable = [n for n in usable if TARGETS[n].store != "redis"]
        else:
            url, prefix = options.redis_url, options.prefix
            stack.push_async_callback(redis_delete_prefix, url, prefix)
    if "postgres" in stores:
        if await postgres_schema(options.postgres_dsn, options.schema, drop=False):
            dsn, schema = options.postgres_dsn, options.schema
            stack.push_async_callback(postgres_schema, dsn, schema, drop=True)
        else:
            print(f"skipping PostgreSQL targets: no server at {args.postgres_dsn}", file=sys.stderr)
            usable = [n for n in usable if TARGETS[n].store != "postgres"]
    return options, usable


def plan_apps(
    args: argparse.Namespace, targets: Sequence[str]
) -> tuple[list[str], dict[str, tuple[str, ...]]]:
    """The apps to run for `targets` (baselines first) and the floors of each app that has any."""
    apps = ["bare", "middleware"] if args.middleware else ["bare"]
    floors: dict[str, tuple[str, ...]] = {}
    peers = not args.no_peers and _peers_importable()
    for name in targets:
        target = TARGETS[name]
        ours = [target.app, *(target.peers if peers else ())]
        if target.floors and not args.no_floors:
            floors.update(dict.fromkeys(ours, target.floors))
            apps += [f for f in target.floors if f not in apps]
        apps += ours
    return apps, floors


async def benchmark(args: argparse.Namespace) -> str:
    """Run everything the arguments ask for; the report."""
    tool = args.tool
    if tool == "auto":
        tool = "wrk" if wrk_path() else "python"
    if tool == "wrk":
        args.duration = float(max(1, round(args.duration)))
        args.warmup = float(max(1, round(args.warmup))) if args.warmup > 0 else 0.0
    async with contextlib.AsyncExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-"))
        logdir = Path(tmp)
        options, targets = await _stores(args, args.targets or list(TARGETS), stack)
        apps, floors = plan_apps(args, targets)

        counts: dict[str, dict[str, StoreCount]] = {}
        if not args.no_count:
            store_of = {
                **FLOOR_STORES,
                **PEER_STORES,
                **{TARGETS[n].app: TARGETS[n].store for n in targets},
            }
            for app in apps:
                store = store_of.get(app)
                if store is not None:
                    print(f"counting store round trips of {app} ...", file=sys.stderr, flush=True)
                    counts[app] = await count_round_trips(
                        app, store, options, args.scenarios, logdir
                    )

        results: dict[str, dict[str, Cell]] = {}
        with running(apps, options, logdir, core=args.server_core) as servers:
            print(f"creating {args.sessions} sessions per app ...", file=sys.stderr, flush=True)
            for server in servers.values():
                server.cookies = await create_sessions(server, args.sessions)
            for scenario in sorted(args.scenarios, key=list(SCENARIOS).index):
                results[scenario] = await timed_rounds(servers, scenario, args, tool, True)

        memory = None if args.no_memory else measure_memory(args.memory_sessions)
        text = report(args, tool, results, counts, memory, floors)
        if args.json is not None:
            raw = {
                "results": {
                    s: {a: [asdict(r) for r in c.runs] for a, c in cells.items()}
                    for s, cells in results.items()
                },
                "counts": {a: {s: asdict(c) for s, c in v.items()} for a, v in counts.items()},
                "memory": memory,
                "machine": machine(),
                "tool": tool,
            }
            args.json.write_text(json.dumps(raw, indent=2))
        return text


async def profile(args: argparse.Namespace) -> str:
    """Load one app under pyinstrument for `duration` seconds; the profile text."""
    app, _, scenario = args.profile.partition(":")
    scenario = scenario or "rmw"
    tool = "wrk" if args.tool == "auto" and wrk_path() else args.tool
    tool = "python" if tool == "auto" else tool
    async with contextlib.AsyncExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-"))
        wanted = [n for n, t in TARGETS.items() if app in (t.app, *t.floors, *t.peers)]
        options, _ = await _stores(args, wanted, stack)
        out = Path(tmp) / "profile.txt"
        server = start_server(app, options, Path(tmp), core=args.server_core, profile=out)
        try:
            wait_servers([server])
            server.cookies = await create_sessions(server, args.sessions)
            for phase in ("warm-up", "profile"):
                if phase == "profile":
                    server.proc.send_signal(signal.SIGUSR1)
                await run_load(
                    server.port,
                    SCENARIO_PATHS[scenario],
                    [] if scenario == "new" else server.cookies,
                    duration=args.duration if phase == "profile" else max(1.0, args.warmup),
                    connections=args.connections,
                    core=args.client_core,
                    tool=tool,
                )
            server.proc.send_signal(signal.SIGUSR2)
            for _ in range(100):
                if out.exists():
                    break
                await asyncio.sleep(0.1)
        finally:
            stop_server(server)
        return out.read_text() if out.exists() else server.log.read_text()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``bench/run.py``."""
    args = parse_args(argv)
    started = time.monotonic()
    if args.callgrind:
        # Imported here: bench.callgrind builds on this module.
        from bench.callgrind import callgrind

        run = callgrind(args)
    else:
        run = profile(args) if args.profile else benchmark(args)
    text = run_async(run)
    print(text)
    print(f"({time.monotonic() - started:.0f} s)", file=sys.stderr)
    return 0
