"""The app the multi-process tests serve: ``python pg_app.py``, configured by environment.

PGAPP_KIND (asyncpg | sqlalchemy), PGAPP_SCOPE (session | transaction), PGAPP_URL,
PGAPP_SCHEMA, PGAPP_TABLE, PGAPP_PORT, PGAPP_WORKERS, PGAPP_DELAY (seconds between read and write),
PGAPP_PIDFILE (where /hold writes its worker's pid).

Every worker builds its own backend from the URL at start-up.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from sanic import Request, Sanic, json, text
from sanic.response import HTTPResponse

from sanic_cookies import Session

KIND = os.environ.get("PGAPP_KIND", "asyncpg")
URL = os.environ["PGAPP_URL"]
DELAY = float(os.environ.get("PGAPP_DELAY", "0.005"))

app = Sanic("pgapp")
Session(
    app,
    backend=URL,
    backend_options={
        "schema": os.environ["PGAPP_SCHEMA"],
        "table": os.environ["PGAPP_TABLE"],
        "create_table": True,
        "sweep_interval": None,
        "lock_scope": os.environ.get("PGAPP_SCOPE", "session"),
        # A few connections per worker: the shared server has other users.
        **({"max_size": 4} if KIND == "asyncpg" else {"pool_size": 4}),
    },
    secure=False,
    warn_lock=False,
    lock_timeout=120.0,
    lock_lease=60.0,
)


@app.on_response
async def tag_worker(request: Request, response: HTTPResponse) -> None:
    response.headers["x-worker"] = str(os.getpid())


@app.get("/ping")
async def ping(request: Request) -> HTTPResponse:
    return text(str(os.getpid()))


@app.get("/start")
async def start(request: Request) -> HTTPResponse:
    async with request.ctx.session as sess:
        sess["n"] = 0
    return text("0")


@app.get("/incr")
async def incr(request: Request) -> HTTPResponse:
    async with request.ctx.session as sess:
        n = sess.get("n", 0)
        await asyncio.sleep(DELAY)
        sess["n"] = n + 1
    return text(str(n + 1))


@app.get("/incr-unlocked")
async def incr_unlocked(request: Request) -> HTTPResponse:
    # The control: the same read-modify-write without the lock (written at response time).
    sess = await request.ctx.session.load()
    n = sess.get("n", 0)
    await asyncio.sleep(DELAY)
    sess["n"] = n + 1
    return text(str(n + 1))


@app.get("/read")
async def read(request: Request) -> HTTPResponse:
    sess = await request.ctx.session.load()
    return json({"n": sess.get("n"), "pid": os.getpid()})


@app.get("/hold")
async def hold(request: Request) -> HTTPResponse:
    # Take the lock, change the value, and hang inside the block until killed.
    async with request.ctx.session as sess:
        sess["n"] = sess.get("n", 0) + 1000
        pidfile = Path(os.environ["PGAPP_PIDFILE"])
        await asyncio.to_thread(pidfile.write_text, str(os.getpid()))
        await asyncio.Event().wait()  # until killed: no timer to outlast
    return text("unreachable")


def main() -> None:
    app.run(
        host="127.0.0.1",
        port=int(os.environ["PGAPP_PORT"]),
        workers=int(os.environ.get("PGAPP_WORKERS", "4")),
        access_log=False,
        debug=False,
    )


if __name__ == "__main__":
    main()
