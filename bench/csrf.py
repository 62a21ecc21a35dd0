"""Microseconds of CSRF checking per POST, without HTTP (the cost `CSRFProtect` adds).

``python -m bench.csrf [--backend memory://] [--n 20000]`` builds real Sanic requests
(``sanic.Request``, the browser's headers: cookie, ``Sec-Fetch-Site: same-origin``,
``Host``) and runs the session's and `CSRFProtect`'s request middleware, a handler
that does nothing, and the session's response middleware, for three routes:

* ``exempt``: a `csrf_exempt` POST (the middleware runs and steps aside): the floor;
* ``exempt+read``: the same, with a handler that reads the session (``load()``): how
  much of the check is that one read of the session;
* ``header``: a checked POST with the token in ``X-CSRF-Token``;
* ``form``: a checked POST with the token in a url-encoded form field (Sanic parses
  the body for it).

It prints CPU µs per request of each, and of ``header`` and ``form`` above
``exempt``: the check itself (origin rules, one read of the session, unmasking and
the constant-time comparison; the form case adds the body parse). ``cookie://`` runs
with a fresh key.
"""

from __future__ import annotations

import argparse
import time
from types import SimpleNamespace
from typing import Any

from sanic import Request, Sanic
from sanic.compat import Header
from sanic.response import text

from bench.loadgen import run_async

HOST = "bench.test"


async def measure(backend: str, n: int) -> dict[str, float]:
    """CPU µs per request of each route against `backend`."""
    from sanic_cookies import CSRFProtect, Session, csrf_exempt

    Sanic.test_mode = True
    app = Sanic(f"csrf_{time.monotonic_ns()}")
    if backend.startswith("cookie:"):
        from cryptography.fernet import Fernet

        app.config.SESSION_KEYS = [Fernet.generate_key().decode()]
    session = Session(app, backend=backend, warn_lock=False)
    protect = CSRFProtect(app)
    await session._start(app)

    async def handler(request: Request) -> None:
        return None

    async def reader(request: Request) -> None:
        await request.ctx.session.load()

    checked = SimpleNamespace(handler=handler, extra=SimpleNamespace(websocket=False))
    exempt = SimpleNamespace(
        handler=csrf_exempt(lambda request: None), extra=SimpleNamespace(websocket=False)
    )

    def make(route: Any, cookie: str | None, headers: dict[str, str], body: bytes) -> Request:
        all_headers = {"host": HOST, "sec-fetch-site": "same-origin", **headers}
        if cookie:
            all_headers["cookie"] = cookie
        request = Request(b"/post", Header(all_headers), "1.1", "POST", None, app)  # type: ignore[arg-type]
        request.route = route
        request.body = body
        return request

    try:
        # Sessions with a token each (one per request in turn, as the HTTP benchmark does).
        sessions: list[tuple[str, str]] = []
        for _ in range(256):
            request = make(checked, None, {}, b"")
            await session._on_request(request)
            token = await protect.token(request)
            response = text("ok")
            await session._on_response(request, response)
            value = response.cookies.get_cookie("session").value  # type: ignore[union-attr]
            sessions.append((f"session={value}", token))

        form = "application/x-www-form-urlencoded"
        scenarios = {
            "exempt": lambda c, t: make(exempt, c, {}, b""),
            "exempt+read": lambda c, t: make(exempt, c, {"x-read": "1"}, b""),
            "header": lambda c, t: make(checked, c, {"x-csrf-token": t}, b""),
            "form": lambda c, t: make(
                checked, c, {"content-type": form}, f"note=hi&csrf_token={t}".encode()
            ),
        }
        results: dict[str, float] = {}
        for name, build in scenarios.items():

            async def one(k: int, build: Any = build) -> None:
                cookie, token = sessions[k % len(sessions)]
                request = build(cookie, token)
                await session._on_request(request)
                await protect._on_request(request)
                await (reader if "x-read" in request.headers else handler)(request)
                response = text("ok")
                await session._on_response(request, response)

            for k in range(min(n, 2000)):  # warm
                await one(k)
            t0 = time.process_time()
            for k in range(n):
                await one(k)
            results[name] = (time.process_time() - t0) / n * 1e6
        results["header - exempt"] = results["header"] - results["exempt"]
        results["form - exempt"] = results["form"] - results["exempt"]
        results["read - exempt"] = results["exempt+read"] - results["exempt"]
        return {name: round(us, 2) for name, us in results.items()}
    finally:
        await session._stop(app)


def main(argv: list[str] | None = None) -> None:
    """Print µs per POST, by route, and the CSRF check's share."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", default="memory://")
    parser.add_argument("--n", type=int, default=20000)
    args = parser.parse_args(argv)
    for name, us in run_async(measure(args.backend, args.n)).items():
        print(f"{name:16} {us:7.2f} µs CPU per POST")


if __name__ == "__main__":
    main()
