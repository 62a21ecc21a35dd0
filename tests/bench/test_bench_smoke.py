"""The benchmark machinery works (``bench/run.py``): a short run gives a table with numbers.

These tests check that the benchmark produces its report, never how fast anything is.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.cli import Cell, _peer_goal  # noqa: E402
from bench.loadgen import LoadResult, set_cookie, wrk_script  # noqa: E402
from bench.proxy import Counts, _PgParser, _RespParser  # noqa: E402

# A table row: | app | req/s | p50 | p99 | x bare | ...
ROW = re.compile(r"^\| (?P<app>[\w-]+) \| (?P<rps>[\d,]+) \| (?P<p50>[\d.]+) \| (?P<p99>[\d.]+) \|")


def run_bench(tmp_path: Path, *args: str) -> tuple[str, dict[str, Any]]:
    out = tmp_path / "raw.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), *args, "--json", str(out)],
        cwd=tmp_path,  # the script must not depend on the working directory
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc.stdout, json.loads(out.read_text())


def rows(report: str) -> dict[str, dict[str, float]]:
    found = {}
    for line in report.splitlines():
        m = ROW.match(line)
        if m:
            found[m["app"]] = {
                k: float(v.replace(",", "")) for k, v in m.groupdict().items() if k != "app"
            }
    return found


def test_memory_target_gives_a_table_with_numbers(tmp_path: Path) -> None:
    report, raw = run_bench(
        tmp_path,
        *("--targets", "memory", "--scenarios", "rmw", "--rounds", "1", "--duration", "1"),
        *("--warmup", "0", "--sessions", "32", "--connections", "8", "--memory-sessions", "2000"),
        "--no-peers",
    )
    assert "**rmw**" in report
    table = rows(report)
    assert set(table) == {"bare", "dict", "dict-locked", "memory"}
    for numbers in table.values():
        assert numbers["rps"] > 0 and numbers["p50"] > 0 and numbers["p99"] >= numbers["p50"]
    assert re.search(r"^- memory rmw ≥ 0\.85× bare: \d+\.\d\d×", report, re.M)
    assert re.search(r"bytes per session by tracemalloc", report)
    for app in ("memory", "dict-locked"):
        (run,) = raw["results"]["rmw"][app]
        assert run["requests"] > 0 and run["errors"] == 0, app
    assert raw["memory"]["memory"]["sessions"] == 2000


def test_peer_library_is_measured_beside_ours(tmp_path: Path) -> None:
    pytest.importorskip("sanic_session", reason="the peer library is installed by nox -s bench")
    report, raw = run_bench(
        tmp_path,
        *("--targets", "memory", "--scenarios", "rmw", "--rounds", "1", "--duration", "1"),
        *("--warmup", "0", "--sessions", "32", "--connections", "8", "--no-memory"),
    )
    assert set(rows(report)) == {"bare", "dict", "dict-locked", "memory", "sanic-session-memory"}
    # The run took its sessions from the peer's Set-Cookie (the patched method); none failed.
    (run,) = raw["results"]["rmw"]["sanic-session-memory"]
    assert run["requests"] > 0 and run["errors"] == 0
    goal = r"^- memory rmw ahead of every peer \(sanic-session-memory\): \d+\.\d\d× "
    assert re.search(goal, report, re.M)


def test_peer_goal_is_missed_when_a_peer_is_faster() -> None:
    def cell(rps: float, cpu_us: float) -> Cell:
        return Cell([LoadResult(100, 1.0, rps, 1.0, 2.0, 0, "wrk")], [cpu_us])

    cells = {"redis": cell(900, 100), "sanic-session-redis": cell(1000, 90)}
    assert _peer_goal("redis", "rmw", cells) == (
        "- redis rmw ahead of every peer (sanic-session-redis): 0.90× sanic-session-redis "
        "(by server CPU per request: 0.90×) — MISSED: behind sanic-session-redis by 0.10"
    )
    cells["redis"] = cell(1100, 80)
    assert str(_peer_goal("redis", "rmw", cells)).endswith("— met")
    assert _peer_goal("redis", "rmw", {"redis": cell(1, 1)}) is None  # no peer measured


def test_python_load_generator_fallback(tmp_path: Path) -> None:
    report, raw = run_bench(
        tmp_path,
        *("--targets", "memory", "--no-floors", "--scenarios", "untouched", "new"),
        *("--rounds", "1", "--duration", "0.5", "--warmup", "0", "--tool", "python"),
        *("--sessions", "16", "--connections", "4", "--no-memory"),
    )
    assert raw["tool"] == "python"
    for scenario in ("untouched", "new"):
        assert f"**{scenario}**" in report
        for runs in raw["results"][scenario].values():
            assert runs[0]["requests"] > 0 and runs[0]["errors"] == 0


def test_wrk_script_cycles_cookies_and_prints_json() -> None:
    script = wrk_script("/rmw", ["session=a", 'session="b"'])
    assert '"session=a"' in script and '"session=\\"b\\""' in script
    assert "BENCHJSON" in script and "i % n + 1" in script


def test_set_cookie_is_read_from_a_header_block() -> None:
    head = b"HTTP/1.1 200 OK\r\nset-cookie: other=1\r\nSet-Cookie: session=abc; Path=/\r\n\r\n"
    assert set_cookie(head, "session") == "session=abc"
    assert set_cookie(head, "missing") is None


def test_redis_commands_are_counted_across_chunks() -> None:
    counts = Counts()
    parser = _RespParser(counts)
    stream = b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*3\r\n$7\r\nEVALSHA\r\n$2\r\nab\r\n$1\r\n0\r\n"
    for i in range(0, len(stream), 5):  # arbitrary TCP chunking
        parser.feed(stream[i : i + 5])
    assert counts.commands == 2 and dict(counts.names) == {"GET": 1, "EVALSHA": 1}


def test_postgres_statements_are_counted_by_portal() -> None:
    def msg(kind: bytes, body: bytes) -> bytes:
        return kind + (len(body) + 4).to_bytes(4, "big") + body

    startup = (8).to_bytes(4, "big") + (80877103).to_bytes(4, "big")  # SSLRequest
    params = b"user\0postgres\0\0"
    startup += (len(params) + 8).to_bytes(4, "big") + (196608).to_bytes(4, "big") + params
    stream = (
        startup
        + msg(b"P", b"s1\0SELECT 1\0\0\0")
        + msg(b"B", b"\0s1\0" + b"\0" * 6)
        + msg(b"E", b"\0\0\0\0\0")
        + msg(b"S", b"")
        + msg(b"B", b"\0s1\0" + b"\0" * 6)  # the prepared statement again: no Parse
        + msg(b"E", b"\0\0\0\0\0")
        + msg(b"Q", b"BEGIN; SELECT 2\0")
    )
    counts = Counts()
    parser = _PgParser(counts)
    for i in range(0, len(stream), 7):
        parser.feed(stream[i : i + 7])
    assert counts.commands == 3
    assert dict(counts.names) == {"SELECT": 2, "BEGIN;": 1}


@pytest.mark.parametrize(
    "name",
    [
        "apps",
        "callgrind",
        "cli",
        "loadgen",
        "memory_cap",
        "memsize",
        "micro",
        "peers",
        "proxy",
        "server",
    ],
)
def test_modules_import(name: str) -> None:
    __import__(f"bench.{name}")
