"""``python -m bench.devices`` works: logins with and without the device each get a figure.

Like the other benchmark tests, it checks that the report is produced, never how fast.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import sanic_cookies._auth as auth_module  # noqa: E402
from bench.devices import measure  # noqa: E402
from bench.loadgen import run_async  # noqa: E402


def test_the_devices_bench_reports_every_figure() -> None:
    shipped = auth_module.client_device
    results = run_async(measure("memory://", 50, runs=1))
    assert set(results) == {
        "login",
        "login, no device",
        "capture",
        "label",
        "device cost",
        "record bytes added",
    }
    assert all(results[name] > 0 for name in ("login", "login, no device", "label"))
    # The User-Agent and "203.0.113.7" are in the record: more than their 100-odd characters.
    assert results["record bytes added"] > 100
    assert auth_module.client_device is shipped  # the bench put the capture back
