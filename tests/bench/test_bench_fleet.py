"""The contention and scale benchmarks (issue 18) run and report; never how fast anything is.

Tiny sizes: a handful of requests on one session, a few thousand sessions. Both talk
to the real Redis and PostgreSQL the other backend tests use, and clean up after.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.slow]


def run_module(module: str, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc.stdout


def test_contention_bench_reports_waits_and_loses_nothing(
    redis_url: str, postgres_dsn: str
) -> None:
    report = run_module(
        "bench.contention", "--requests", "60", "--concurrency", "6", "--workers", "1", "2"
    )
    rows = [line for line in report.splitlines() if re.match(r"^\| (redis|postgres) \|", line)]
    assert len(rows) == 4, report
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        final, ok = (int(x) for x in cells[7].split(" / "))
        assert final == ok == 60, row  # every increment answered and counted
        assert cells[5] == "0", row  # no 503


def test_scale_bench_reports_every_figure(redis_url: str, postgres_dsn: str) -> None:
    report = run_module(
        "bench.scale",
        "--sessions", "3000", "--small", "100", "--expired", "500",
        "--user-sessions", "20", "--duration", "0.5", "--rounds", "1", "--pool", "200",
    )  # fmt: skip
    for needed in (
        "MEMORY USAGE",
        "B per row",
        "| redis, 3,000 sessions |",
        "| postgres, 3,000, while sweeping |",
        "500 expired rows",
        "logout_everywhere",
    ):
        assert needed in report, report
