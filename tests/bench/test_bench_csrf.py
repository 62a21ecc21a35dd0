"""``python -m bench.csrf`` works: every checked POST passes and each route gets a figure.

Like the other benchmark tests, it checks that the report is produced, never how fast.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.csrf import measure  # noqa: E402
from bench.loadgen import run_async  # noqa: E402


def test_the_csrf_bench_reports_every_route() -> None:
    # A refused POST would raise CSRFError out of measure(): the tokens really pass.
    results = run_async(measure("memory://", 50))
    assert set(results) == {
        "exempt",
        "exempt+read",
        "header",
        "form",
        "header - exempt",
        "form - exempt",
        "read - exempt",
    }
    assert all(results[name] > 0 for name in ("exempt", "exempt+read", "header", "form"))
