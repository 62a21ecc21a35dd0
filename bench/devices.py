"""Microseconds that recording the device (User-Agent, client IP) adds to a login.

``python -m bench.devices [--backend memory://] [--n 10000] [--runs 3]`` builds real
Sanic requests (``sanic.Request`` with a Chrome User-Agent and an ``X-Forwarded-For``
behind ``PROXIES_COUNT = 1``) and runs the session's request middleware,
``login_user`` and the response middleware, a fresh user per login (so the per-user
cap's listing stays one session long, as for a typical user):

* ``login``: as shipped, the device recorded;
* ``login, no device``: the same with the capture replaced by ``("", "")`` (this bench
  only: the product has no switch for it), the floor;
* ``capture``: `client_device` alone on a fresh request (read and clean the header,
  Sanic's parse of the proxy headers for ``request.client_ip``, the IP's parse);
* ``label``: `user_agent_label` of the stored string, which `list_sessions` pays
  per listed session.

It prints the median CPU µs of each over ``--runs`` runs, the difference of the two
logins, and the bytes the device adds to the stored record.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from sanic import Request, Sanic
from sanic.compat import Header
from sanic.response import text

from bench.loadgen import run_async

CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/129.0.0.0 Safari/537.36"
)
HEADERS = {"host": "bench.test", "user-agent": CHROME, "x-forwarded-for": "203.0.113.7"}


def _cpu_us(n: int, step: Callable[[int], Any]) -> float:
    t0 = time.process_time()
    for k in range(n):
        step(k)
    return (time.process_time() - t0) / n * 1e6


async def _cpu_us_async(n: int, step: Callable[[int], Awaitable[None]]) -> float:
    t0 = time.process_time()
    for k in range(n):
        await step(k)
    return (time.process_time() - t0) / n * 1e6


async def measure(backend: str, n: int, runs: int = 3) -> dict[str, float]:
    """Median CPU µs per login with and without the device, and the parts."""
    import sanic_cookies._auth as auth_module
    from sanic_cookies import AuthSession, user_agent_label
    from sanic_cookies._device import client_device
    from sanic_cookies._record import AuthInfo

    Sanic.test_mode = True
    app = Sanic(f"devices_{time.monotonic_ns()}")
    app.config.PROXIES_COUNT = 1
    auth = AuthSession(app, backend=backend)
    await auth._start(app)

    def make() -> Request:
        return Request(b"/login", Header(HEADERS), "1.1", "POST", None, app)  # type: ignore[arg-type]

    counter = iter(range(10**9))

    async def login(_: int) -> None:
        request = make()
        await auth._on_request(request)
        await auth.login_user(request, {"id": f"u{next(counter)}"})
        await auth._on_response(request, text("ok"))

    shipped = auth_module.client_device

    def no_device(request: Request, *, store_ip: bool = True) -> tuple[str, str]:
        return "", ""

    samples: dict[str, list[float]] = {
        "login": [],
        "login, no device": [],
        "capture": [],
        "label": [],
    }
    try:
        for _ in range(min(n, 1000)):  # warm
            await login(0)
        for _ in range(runs):
            # Interleaved, so machine noise hits both the same.
            samples["login"].append(await _cpu_us_async(n, login))
            auth_module.client_device = no_device  # type: ignore[assignment]
            try:
                samples["login, no device"].append(await _cpu_us_async(n, login))
            finally:
                auth_module.client_device = shipped
            # A fresh request each time: Sanic parses the proxy headers on first use.
            made = _cpu_us(n, lambda k: make())
            samples["capture"].append(_cpu_us(n, lambda k: client_device(make())) - made)
            samples["label"].append(_cpu_us(n, lambda k: user_agent_label(CHROME)))
    finally:
        await auth._stop(app)
    results = {name: statistics.median(values) for name, values in samples.items()}
    results["device cost"] = results["login"] - results["login, no device"]
    ua, ip = client_device(make())
    bare = AuthInfo(user={"id": "u1"}, user_id="u1", login_at=time.time())
    full = AuthInfo(user={"id": "u1"}, user_id="u1", login_at=time.time(), ua=ua, ip=ip)
    import msgspec

    results["record bytes added"] = float(
        len(msgspec.json.encode(full)) - len(msgspec.json.encode(bare))
    )
    return {name: round(value, 2) for name, value in results.items()}


def main(argv: list[str] | None = None) -> None:
    """Print µs per login, with and without the device, and the parts."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", default="memory://")
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    for name, value in run_async(measure(args.backend, args.n, args.runs)).items():
        unit = "bytes" if name.endswith("bytes added") else "µs CPU"
        print(f"{name:20} {value:8.2f} {unit}")


if __name__ == "__main__":
    main()
