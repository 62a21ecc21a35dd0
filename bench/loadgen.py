"""Load generators: wrk when installed, else a Python keep-alive HTTP/1.1 client.

Both are run as a separate process (pinned to a core when possible), hold
`connections` keep-alive connections, cycle through a pool of Cookie headers
(one session per request in turn, so the locked read-modify-write does not
serialise on one session's lock) and report requests/s and latency percentiles.

``python -m bench.loadgen --port N --path /rmw --cookies FILE`` runs the Python
generator and prints one JSON line; `run_load` picks the tool.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

MARK = "BENCHJSON "
ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class LoadResult:
    """One timed run against one server.

    Attributes:
        requests: Completed requests.
        seconds: Wall time of the run.
        rps: Requests per second.
        p50_ms: Median latency in milliseconds.
        p99_ms: 99th-percentile latency in milliseconds.
        errors: Socket errors plus non-2xx/3xx responses.
        tool: ``wrk`` or ``python``.
    """

    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    tool: str


def run_async(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run` on uvloop when installed (as Sanic uses it)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def wrk_path() -> str | None:
    """The wrk binary, or None."""
    return shutil.which("wrk")


def _preexec(core: int | None) -> Callable[[], None] | None:
    if core is None or not hasattr(os, "sched_setaffinity"):
        return None
    if core not in os.sched_getaffinity(0):
        return None

    def pin() -> None:
        os.sched_setaffinity(0, {core})

    return pin


def _lua_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def wrk_script(path: str, cookies: Sequence[str]) -> str:
    """A wrk Lua script: pre-formatted requests cycling over `cookies`, JSON summary at the end."""
    headers = ",\n  ".join(_lua_string(c) for c in cookies)
    return f"""
local path = {_lua_string(path)}
local cookies = {{
  {headers}
}}
local reqs = {{}}
local n = 0
local i = 0

init = function(args)
  for k, c in ipairs(cookies) do
    reqs[k] = wrk.format("GET", path, {{["Cookie"] = c}})
  end
  if #reqs == 0 then
    reqs[1] = wrk.format("GET", path)
  end
  n = #reqs
  -- Threads start at different places in the pool.
  i = math.random(n) - 1
end

request = function()
  i = i % n + 1
  return reqs[i]
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "{MARK}{{\\"requests\\": %d, \\"us\\": %d, \\"p50_us\\": %f, \\"p99_us\\": %f, "
    .. "\\"errors\\": %d}}\\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.status + e.timeout))
end
"""


def _parse(stdout: str, tool: str) -> LoadResult:
    for line in stdout.splitlines():
        if line.startswith(MARK):
            raw = json.loads(line[len(MARK) :])
            seconds = raw["us"] / 1e6
            return LoadResult(
                requests=raw["requests"],
                seconds=seconds,
                rps=raw["requests"] / seconds if seconds else 0.0,
                p50_ms=raw["p50_us"] / 1000,
                p99_ms=raw["p99_us"] / 1000,
                errors=raw["errors"],
                tool=tool,
            )
    raise RuntimeError(f"{tool} printed no result:\n{stdout[-2000:]}")


async def _run(cmd: list[str], core: int | None, limit: float) -> str:
    proc = await asyncio.create_subprocess_exec(
        *cmd,
        cwd=ROOT,  # where ``-m bench.loadgen`` is found
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        preexec_fn=_preexec(core),
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), limit)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise RuntimeError(f"load generator timed out: {' '.join(cmd[:3])}...") from None
    return out.decode(errors="replace")


async def run_load(
    port: int,
    path: str,
    cookies: Sequence[str],
    *,
    duration: float,
    connections: int,
    core: int | None,
    tool: str,
) -> LoadResult:
    """Load ``http://127.0.0.1:port/path`` for `duration` seconds with `tool` (wrk or python).

    Args:
        port: Server port on 127.0.0.1.
        path: Request path.
        cookies: Cookie header values to cycle through; empty: no Cookie header.
        duration: Seconds of load.
        connections: Keep-alive connections held open.
        core: CPU core for the generator process (None: unpinned).
        tool: ``"wrk"`` or ``"python"``.
    """
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        if tool == "wrk":
            wrk = wrk_path()
            if wrk is None:
                raise RuntimeError("wrk is not installed")
            script = Path(tmp) / "cycle.lua"
            script.write_text(wrk_script(path, cookies))
            # wrk counts whole seconds for -d; a shorter run uses -d1 with a timeout.
            cmd = [
                wrk,
                "-t1",
                f"-c{connections}",
                f"-d{max(1, round(duration))}s",
                "--timeout",
                "10s",
                "-s",
                str(script),
                f"http://127.0.0.1:{port}{path}",
            ]
        else:
            cookie_file = Path(tmp) / "cookies.json"
            cookie_file.write_text(json.dumps(list(cookies)))
            cmd = [
                sys.executable,
                "-m",
                "bench.loadgen",
                "--port",
                str(port),
                "--path",
                path,
                "--cookies",
                str(cookie_file),
                "--duration",
                str(duration),
                "--connections",
                str(connections),
            ]
        out = await _run(cmd, core, limit=duration + 60)
    return _parse(out, tool)


# -- the Python load generator -----------------------------------------------------------------


def request_bytes(path: str, cookie: str | None) -> bytes:
    """An HTTP/1.1 keep-alive GET request."""
    head = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    if cookie:
        head += f"Cookie: {cookie}\r\n"
    return (head + "\r\n").encode("latin-1")


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bytes]:
    """Read one response: (status, header block, body). Needs Content-Length (Sanic sends it)."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lower = head.lower()
    at = lower.find(b"\r\ncontent-length:")
    length = 0
    if at >= 0:
        end = lower.index(b"\r\n", at + 2)
        length = int(lower[at + 17 : end])
    body = await reader.readexactly(length) if length else b""
    return status, head, body


async def _connection(
    port: int,
    requests: Sequence[bytes],
    start: int,
    deadline: float,
    latencies: list[float],
    errors: list[int],
) -> None:
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        errors[0] += 1
        return
    i, n = start, len(requests)
    clock = time.perf_counter
    try:
        while True:
            t0 = clock()
            if t0 >= deadline:
                break
            writer.write(requests[i % n])
            i += 1
            status, _, _ = await read_response(reader)
            latencies.append(clock() - t0)
            if status >= 400:
                errors[0] += 1
    except (OSError, asyncio.IncompleteReadError):
        errors[0] += 1
    finally:
        writer.close()


async def python_load(
    port: int, path: str, cookies: Sequence[str], duration: float, connections: int
) -> dict[str, float]:
    """Run the Python generator in this process; the raw numbers ``_parse`` expects."""
    requests = [request_bytes(path, c) for c in cookies] or [request_bytes(path, None)]
    latencies: list[float] = []
    errors = [0]
    t0 = time.perf_counter()
    deadline = t0 + duration
    step = max(1, len(requests) // max(1, connections))
    await asyncio.gather(
        *(
            _connection(port, requests, k * step, deadline, latencies, errors)
            for k in range(connections)
        )
    )
    elapsed = time.perf_counter() - t0
    latencies.sort()

    def pct(p: float) -> float:
        if not latencies:
            return 0.0
        return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] * 1e6

    return {
        "requests": len(latencies),
        "us": int(elapsed * 1e6),
        "p50_us": pct(50),
        "p99_us": pct(99),
        "errors": errors[0],
    }


class Client:
    """One keep-alive connection for set-up and counting requests (not for timing)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def get(self, path: str, cookie: str | None = None) -> tuple[int, bytes, bytes]:
        """GET `path` with an optional Cookie header; (status, header block, body)."""
        if self._conn is None:
            self._conn = await asyncio.open_connection("127.0.0.1", self.port)
        reader, writer = self._conn
        writer.write(request_bytes(path, cookie))
        return await read_response(reader)

    async def close(self) -> None:
        """Close the connection."""
        if self._conn is not None:
            self._conn[1].close()
            self._conn = None


def set_cookie(head: bytes, name: str) -> str | None:
    """The ``name=value`` pair of the Set-Cookie header for cookie `name` in a header block."""
    for line in head.split(b"\r\n"):
        key, _, value = line.partition(b":")
        if key.strip().lower() == b"set-cookie":
            pair = value.strip().split(b";", 1)[0].decode("latin-1")
            if pair.split("=", 1)[0] == name:
                return pair
    return None


def main(argv: list[str] | None = None) -> None:
    """Command line of the Python generator (run by `run_load`)."""
    parser = argparse.ArgumentParser(description="Python keep-alive HTTP/1.1 load generator")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", required=True)
    parser.add_argument("--cookies", required=True, help="JSON list of Cookie header values")
    parser.add_argument("--duration", type=float, default=2.0)
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args(argv)
    cookies = json.loads(Path(args.cookies).read_text())
    raw = run_async(python_load(args.port, args.path, cookies, args.duration, args.connections))
    print(MARK + json.dumps(raw), flush=True)


if __name__ == "__main__":
    main()
