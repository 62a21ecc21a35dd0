"""`redis_app.py` plus a tagged counter, for the Redis Cluster failover and resharding tests.

``/tagged?tag=T`` increments ``n`` under the session's lock and answers the
session's tag with it: the tag is written when the session is made, so an
answer carrying another tag would be another client's session.
``/tagged_read`` reads both without the lock. Settings as in `redis_app`.
"""

from __future__ import annotations

import os

from redis_app import app
from sanic import HTTPResponse, Request, json


@app.get("/tagged")
async def tagged(request: Request) -> HTTPResponse:
    async with request.ctx.session as sess:
        sess.setdefault("tag", request.args.get("tag", ""))
        n = sess.get("n", 0) + 1
        sess["n"] = n
    return json({"tag": sess["tag"], "n": n})


@app.get("/tagged_read")
async def tagged_read(request: Request) -> HTTPResponse:
    sess = await request.ctx.session.load()
    return json({"tag": sess.get("tag"), "n": sess.get("n", 0)})


if __name__ == "__main__":
    app.run(
        host="127.0.0.1",
        port=int(os.environ["SCT_PORT"]),
        workers=int(os.environ.get("SCT_WORKERS", "4")),
        access_log=False,
        motd=False,
    )
