"""Microseconds of sanic-cookies' own work per request, without HTTP (low-noise, for tuning).

``python -m bench.micro [--backend memory://] [--n 20000]`` drives the request
and response middleware and the handler's session use directly (a real
`Session`, a real backend, Sanic's real response and its rendering of the header
block), and prints CPU microseconds per request for each scenario. The HTTP
benchmark (`bench.cli`) is the one that counts; this one isolates the library's
share. ``cookie://`` runs with a fresh key; ``--backend cookie-1.0`` runs the same
backend with 1.0.0's token format (`bench.cookie_v1`).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any

from sanic import Sanic
from sanic.compat import Header
from sanic.headers import format_http1_response
from sanic.response import BaseHTTPResponse, text

from bench.loadgen import run_async


class FakeRequest:
    """The parts of a Sanic request the session middleware uses."""

    def __init__(self, cookie: str | None) -> None:
        self.headers = Header({"cookie": cookie} if cookie else {})
        self.ctx = SimpleNamespace()
        self.route = None  # (what Sanic's middleware sees for an unrouted request: not a websocket)


def render(response: BaseHTTPResponse) -> bytes:
    """The response's header block, as Sanic's HTTP/1.1 server makes it."""
    return format_http1_response(response.status, response.processed_headers)


async def measure(backend: str, n: int) -> dict[str, float]:
    """CPU µs per request of each scenario against `backend`."""
    from sanic_cookies import Session

    Sanic.test_mode = True
    app = Sanic(f"micro_{time.monotonic_ns()}")
    spec: Any = backend
    if backend.startswith("cookie"):
        from cryptography.fernet import Fernet

        app.config.SESSION_KEYS = [Fernet.generate_key().decode()]
        if backend == "cookie-1.0":  # 1.0.0's token format, for comparison
            from bench.cookie_v1 import CookieBackendV1

            spec = CookieBackendV1(keys=app.config.SESSION_KEYS)
    session = Session(app, backend=spec, warn_lock=False)
    await session._start(app)
    try:
        # One cookie per request in turn, as the HTTP benchmark does.
        cookies: list[str] = []
        for _ in range(256):
            request = FakeRequest(None)
            await session._on_request(request)  # type: ignore[arg-type]
            async with request.ctx.session as sess:
                sess["n"] = 1
            response = text("ok")
            await session._on_response(request, response)  # type: ignore[arg-type]
            cookies.append(f"session={response.cookies.get_cookie('session').value}")  # type: ignore[union-attr]

        async def rmw(sess: Any) -> None:
            async with sess as s:
                s["n"] = s.get("n", 0) + 1

        async def read(sess: Any) -> None:
            s = await sess.load()
            s.get("n", 0)

        async def untouched(sess: Any) -> None:
            return None

        scenarios: dict[str, tuple[Callable[[Any], Awaitable[None]], bool]] = {
            "rmw": (rmw, True),
            "new": (rmw, False),
            "untouched": (untouched, True),
            "read": (read, True),
        }
        results = {}
        for name, (handler, with_cookie) in scenarios.items():

            async def one(k: int, handler: Any = handler, with_cookie: bool = with_cookie) -> None:
                request = FakeRequest(cookies[k % len(cookies)] if with_cookie else None)
                await session._on_request(request)  # type: ignore[arg-type]
                await handler(request.ctx.session)
                response = text("ok")
                await session._on_response(request, response)  # type: ignore[arg-type]
                render(response)

            for k in range(min(n, 2000)):  # warm
                await one(k)
            t0 = time.process_time()
            for k in range(n):
                await one(k)
            results[name] = (time.process_time() - t0) / n * 1e6

        async def baseline() -> None:
            request = FakeRequest(cookies[0])
            response = text("ok")
            render(response)
            request.ctx.x = None

        t0 = time.process_time()
        for _ in range(n):
            await baseline()
        base = (time.process_time() - t0) / n * 1e6
        return {name: round(us - base, 2) for name, us in results.items()}
    finally:
        await session._stop(app)


def main(argv: list[str] | None = None) -> None:
    """Print µs of library work per request, by scenario."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", default="memory://")
    parser.add_argument("--n", type=int, default=20000)
    args = parser.parse_args(argv)
    for name, us in run_async(measure(args.backend, args.n)).items():
        print(f"{name:10} {us:7.2f} µs CPU per request (library share)")


if __name__ == "__main__":
    main()
