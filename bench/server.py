"""Run one benchmark app as its own process: ``python -m bench.server APP --port N``.

One worker (``single_process=True``), optionally pinned to one CPU core, with
access logs and the banner off. ``--profile FILE`` samples the process with
pyinstrument from start to stop and writes the text report to FILE.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
from pathlib import Path
from typing import Any

from sanic import Sanic

from bench.apps import APPS, StoreOptions
from bench.peers import PEER_APPS

ALL_APPS = {**APPS, **PEER_APPS}


def pin(core: int | None) -> bool:
    """Pin this process to `core`; False where affinity is unsupported or the core is absent."""
    if core is None or not hasattr(os, "sched_setaffinity"):
        return False
    try:
        if core not in os.sched_getaffinity(0):
            return False
        os.sched_setaffinity(0, {core})
    except OSError:
        return False
    return True


def _attach_profiler(app: Sanic[Any, Any], path: str) -> None:
    """SIGUSR1 starts sampling with pyinstrument, SIGUSR2 stops and writes the report to `path`.

    (Started by signal so that the warm-up is left out.) ``BENCH_PROFILE_ALL=1`` in
    the environment keeps library frames in the report.
    """
    from pyinstrument import Profiler

    # async_mode="disabled": sample the event loop thread whatever task runs.
    profiler = Profiler(interval=0.0005, async_mode="disabled")
    show_all = bool(os.environ.get("BENCH_PROFILE_ALL"))

    def stop() -> None:
        profiler.stop()
        report = profiler.output_text(unicode=True, color=False, show_all=show_all)
        Path(path).write_text(report, "utf-8")

    @app.after_server_start
    async def arm(app: Sanic[Any, Any]) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGUSR1, profiler.start)
        loop.add_signal_handler(signal.SIGUSR2, stop)


def main(argv: list[str] | None = None) -> None:
    """Parse the command line, build the app, serve until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("app", choices=sorted(ALL_APPS))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--core", type=int, default=None, help="CPU core to pin to")
    parser.add_argument("--options", default="{}", help="StoreOptions as JSON")
    parser.add_argument("--profile", default=None, help="write a pyinstrument report here")
    args = parser.parse_args(argv)
    pin(args.core)
    app = ALL_APPS[args.app](StoreOptions(**json.loads(args.options)))
    if args.profile:
        _attach_profiler(app, args.profile)
    app.run(
        host="127.0.0.1",
        port=args.port,
        single_process=True,
        access_log=False,
        motd=False,
        debug=False,
    )


if __name__ == "__main__":
    main()
