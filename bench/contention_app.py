"""The app of the contention benchmark (`bench.contention`): one locked counter, timed lock waits.

Run as a script (``python bench/contention_app.py``) with its settings in the
environment, so that the same file serves the current tree and an older
release installed in another virtualenv:

* ``BC_URL``: the backend URL (``redis://...?prefix=...`` or ``postgresql://...``);
* ``BC_PORT``, ``BC_WORKERS``: where and how many Sanic workers.

``/incr`` increments ``n`` inside ``async with`` and answers the seconds it
waited to enter the block (the session lock's wait) and the new value.
"""

from __future__ import annotations

import os
import time
from typing import Any

from sanic import HTTPResponse, Request, Sanic, json

from sanic_cookies import Session, backend_from_url


def build_app() -> Sanic[Any, Any]:
    """The benchmark app, configured from the environment."""
    app: Sanic[Any, Any] = Sanic("bench_contention")
    app.config.ACCESS_LOG = False
    # Plain-http benchmark client: this app (only) sends a non-Secure cookie.
    Session(app, backend=backend_from_url(os.environ["BC_URL"]), secure=False, warn_lock=False)

    @app.get("/incr")
    async def incr(request: Request) -> HTTPResponse:
        t0 = time.perf_counter()
        async with request.ctx.session as sess:
            waited = time.perf_counter() - t0
            n = sess.get("n", 0) + 1
            sess["n"] = n
        return json({"n": n, "wait": waited, "pid": os.getpid()})

    @app.get("/read")
    async def read(request: Request) -> HTTPResponse:
        sess = await request.ctx.session.load()
        return json({"n": sess.get("n", 0)})

    return app


app = build_app()

if __name__ == "__main__":
    app.run(
        host="127.0.0.1",
        port=int(os.environ["BC_PORT"]),
        workers=int(os.environ.get("BC_WORKERS", "1")),
        access_log=False,
        motd=False,
    )
