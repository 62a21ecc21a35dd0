"""``bench/run.py --callgrind``: instructions per request under valgrind, and its report."""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench import callgrind  # noqa: E402

# | app | k instructions/req | × bare | × floor |
ROW = re.compile(r"^\| (?P<app>[\w-]+) \| (?P<k>[\d,.]+) \| (?P<x>[\d.]+) \|", re.M)


def test_report_gives_ratios_to_bare_and_to_the_floor() -> None:
    args = argparse.Namespace(callgrind_requests=100, scenarios=["rmw"])
    counts = {"bare": {"rmw": 200_000.0}, "dict": {"rmw": 250_000.0}, "memory": {"rmw": 400_000.0}}
    text = callgrind.report(args, counts, {"memory": ("dict",)})
    assert "| bare | 200.0 | 1.00 | – |" in text
    assert "| dict | 250.0 | 0.80 | – |" in text
    assert "| memory | 400.0 | 0.50 | 0.62 (dict) |" in text


def test_report_gives_a_ratio_to_each_floor() -> None:
    args = argparse.Namespace(callgrind_requests=100, scenarios=["rmw"])
    counts = {
        "bare": {"rmw": 200_000.0},
        "redis-raw": {"rmw": 800_000.0},
        "redis-pipe": {"rmw": 300_000.0},
        "redis": {"rmw": 400_000.0},
    }
    text = callgrind.report(args, counts, {"redis": ("redis-raw", "redis-pipe")})
    assert "| redis | 400.0 | 0.50 | 2.00 (redis-raw), 0.75 (redis-pipe) |" in text


def test_a_dump_counts_once_written_whole(tmp_path: Path) -> None:
    dump = tmp_path / "callgrind.out.1"
    assert callgrind.summary(dump) is None
    dump.write_text("version: 1\nevents: Ir\nsummary: 12345\nfn=(1) main\n3 12000\n")
    assert callgrind.summary(dump) is None  # no totals line yet: still being written
    dump.write_text(dump.read_text() + "\ntotals: 12000\n")
    assert callgrind.summary(dump) == 12345


def test_missing_valgrind_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert "valgrind is not installed" in str(callgrind.missing())


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
def test_instructions_per_request_are_measured(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "run.py"),
            *("--callgrind", "--callgrind-requests", "20", "--targets", "memory"),
            *("--scenarios", "untouched", "--no-peers", "--no-floors"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    found = {m["app"]: float(m["k"].replace(",", "")) for m in ROW.finditer(proc.stdout)}
    assert set(found) == {"bare", "memory"}
    assert all(k > 10 for k in found.values())  # thousands of instructions, not an empty dump
