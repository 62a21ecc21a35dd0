"""Minimal sanic-cookies demo: a visit counter kept in a server-side session.

Run it with ``nox -s demo`` (or ``python examples/demo.py`` with sanic-cookies installed).
"""

from __future__ import annotations

from sanic import Request, Sanic, text
from sanic.response import HTTPResponse

from sanic_cookies import Session

app = Sanic("sanic_cookies_demo")
Session(app)  # default settings: in-memory backend, Secure + HttpOnly cookie


@app.get("/")
async def index(request: Request) -> HTTPResponse:
    async with request.ctx.session as sess:
        sess["visits"] = sess.get("visits", 0) + 1
        visits = sess["visits"]
    return text(f"Hello! You have visited this page {visits} time(s) in this session.\n")


if __name__ == "__main__":
    # The session cookie is Secure by default. Browsers treat http://localhost as a secure
    # context and keep it; curl does not send Secure cookies over plain http.
    print(
        "Demo running on http://localhost:8000 — open it in a browser and reload "
        "to see the visit counter grow (the session cookie is Secure; browsers accept it on "
        "localhost, curl over plain http does not send it back)."
    )
    app.run(host="127.0.0.1", port=8000, single_process=True)
