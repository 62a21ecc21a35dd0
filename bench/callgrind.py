"""Instructions per request under callgrind: ``python bench/run.py --callgrind``.

Requests/s ratios move by ±25% between runs on a busy shared machine; the number of
instructions a server executes per request hardly moves. Each app's server runs alone
under ``valgrind --tool=callgrind --instr-atstart=no`` (start-up runs uninstrumented,
so it is quick). Per scenario, one keep-alive connection sends requests one at a time,
cycling over pre-created sessions: a warm-up, then instrumentation on
(``callgrind_control -i on``) and a dump, then N requests and a dump, then 2N requests and
a dump. A dump holds the instructions since the one before, so (second − first) / N is
the cost of a request with the fixed cost of an interval (dump, idle wake-ups) cancelled.
``--callgrind-requests`` sets N (default 1000).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from bench.apps import SCENARIO_PATHS, StoreOptions
from bench.cli import (
    SCENARIOS,
    TARGETS,
    Server,
    _stores,
    create_sessions,
    machine,
    plan_apps,
    start_server,
    stop_server,
    wait_servers,
)
from bench.loadgen import Client

#: Sessions the returning visitors cycle over, and warm-up requests per scenario.
SESSIONS = 64
WARMUP = 300


def missing() -> str | None:
    """Why callgrind cannot run here, or None."""
    for tool in ("valgrind", "callgrind_control"):
        if shutil.which(tool) is None:
            return f"skipping --callgrind: {tool} is not installed (apt-get install valgrind)"
    return None


def valgrind_command(out: Path) -> list[str]:
    """The valgrind prefix of a server command line; its dumps go to ``out.1``, ``out.2``..."""
    return [
        "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",
        f"--callgrind-out-file={out}",
    ]


def summary(dump: Path) -> int | None:
    """The instruction total of one callgrind dump file; None until it is written whole."""
    if not dump.exists():
        return None
    text = dump.read_text(errors="replace")
    if "\ntotals:" not in text:  # the last line of a dump
        return None
    for line in text.splitlines():
        if line.startswith("summary:"):
            return int(line.split()[1])
    raise RuntimeError(f"no summary line in {dump}")


class Callgrind:
    """Controls one server running under callgrind and reads its dumps."""

    def __init__(self, server: Server, out: Path) -> None:
        self.server = server
        self.out = out
        self.dumps = 0

    async def control(self, *args: str) -> None:
        """Run ``callgrind_control ARGS PID``."""
        proc = await asyncio.create_subprocess_exec(
            "callgrind_control",
            *args,
            str(self.server.proc.pid),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        text, _ = await proc.communicate()
        if proc.returncode != 0 or b"OK" not in text:
            raise RuntimeError(f"callgrind_control {' '.join(args)}: {text.decode()[-500:]}")

    async def dump(self) -> int:
        """Dump the counters (which zeroes them); the instructions since the last dump."""
        await self.control("--dump")
        self.dumps += 1
        path = Path(f"{self.out}.{self.dumps}")
        for _ in range(600):
            got = summary(path)
            if got is not None:
                return got
            await asyncio.sleep(0.05)
        raise RuntimeError(f"callgrind wrote no {path}")


async def _drive(client: Client, path: str, jar: Sequence[str | None], count: int) -> None:
    for k in range(count):
        status, _, _ = await client.get(path, jar[k % len(jar)])
        if status != 200:
            raise RuntimeError(f"{path}: HTTP {status} under callgrind")


async def measure_app(
    app: str, args: argparse.Namespace, options: StoreOptions, logdir: Path
) -> dict[str, float]:
    """Instructions per request of `app` in each scenario asked for."""
    out = logdir / f"callgrind-{app}.out"
    server = start_server(
        app, options, logdir, core=args.server_core, wrapper=valgrind_command(out)
    )
    per_request: dict[str, float] = {}
    n = args.callgrind_requests
    try:
        await asyncio.to_thread(wait_servers, [server], 300)
        cookies = await create_sessions(server, SESSIONS, clients=1)
        cg = Callgrind(server, out)
        client = Client(server.port)
        try:
            for scenario in sorted(args.scenarios, key=list(SCENARIOS).index):
                path = SCENARIO_PATHS[scenario]
                jar: list[str | None] = [None] if scenario == "new" else list(cookies)
                await _drive(client, path, jar, WARMUP)
                if not cg.dumps:
                    await cg.control("--instr=on")
                await cg.dump()
                await _drive(client, path, jar, n)
                first = await cg.dump()
                await _drive(client, path, jar, 2 * n)
                second = await cg.dump()
                per_request[scenario] = (second - first) / n
                print(
                    f"  {scenario:9} {app:20} {per_request[scenario] / 1000:8.1f}k instr/req",
                    file=sys.stderr,
                    flush=True,
                )
        finally:
            await client.close()
    finally:
        await asyncio.to_thread(stop_server, server)
    return per_request


def report(
    args: argparse.Namespace,
    counts: dict[str, dict[str, float]],
    floors: dict[str, tuple[str, ...]],
) -> str:
    """The Markdown tables: instructions per request, and bare's (the floor's) over the app's."""
    n = args.callgrind_requests
    lines = [
        f"Measured with callgrind on {machine()}.",
        "Instructions per request: one Sanic worker under valgrind, one keep-alive connection, "
        f"requests one at a time; (count of {2 * n} requests − count of {n}) / {n}, after "
        f"{WARMUP} warm-up requests. "
        "× bare is bare Sanic's count over the app's (a rate ratio, were the server CPU-bound).",
        "",
    ]
    for scenario in sorted(args.scenarios, key=list(SCENARIOS).index):
        bare = counts.get("bare", {}).get(scenario)
        lines += [
            f"**{scenario}** — {SCENARIOS[scenario]}",
            "",
            "| app | k instructions/req | × bare | × floor |",
            "|---|--:|--:|--:|",
        ]
        for app, by_scenario in counts.items():
            got = by_scenario.get(scenario)
            if got is None:
                continue
            x_bare = f"{bare / got:.2f}" if bare else "–"
            bases = [(f, counts.get(f, {}).get(scenario)) for f in floors.get(app, ())]
            x_floor = ", ".join(f"{base / got:.2f} ({f})" for f, base in bases if base) or "–"
            lines.append(f"| {app} | {got / 1000:,.1f} | {x_bare} | {x_floor} |")
        lines.append("")
    return "\n".join(lines)


async def callgrind(args: argparse.Namespace) -> str:
    """Measure every app the arguments select, one after the other; the report."""
    why = missing()
    if why is not None:
        print(why, file=sys.stderr)
        return ""
    async with contextlib.AsyncExitStack() as stack:
        logdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-cg-")))
        options, targets = await _stores(args, args.targets or list(TARGETS), stack)
        apps, floors = plan_apps(args, targets)
        counts: dict[str, dict[str, float]] = {}
        for app in apps:
            print(f"callgrind: {app} ...", file=sys.stderr, flush=True)
            counts[app] = await measure_app(app, args, options, logdir)
        return report(args, counts, floors)
