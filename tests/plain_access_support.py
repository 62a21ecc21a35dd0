"""0.4-style plain access (no ``async with``) through a real Sanic app, on any backend.

`check_plain_access(make_app)` runs the same scenario for every backend's tests:
reads, writes, a read-modify-write on one line, iteration; every change is saved
when the response goes out, each line that touches the session emits exactly one
`RuntimeWarning` pointing at that line (none with ``warn_lock=False``).
"""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sanic import Request, Sanic, json
from sanic.response import HTTPResponse

from sanic_cookies import Backend, Session

Sanic.test_mode = True

_SOURCE = Path(__file__).read_text(encoding="utf-8").splitlines()


def site(tag: str) -> int:
    """The line number of the line marked ``# site: <tag>`` in this file."""
    lines = [i + 1 for i, line in enumerate(_SOURCE) if line.rstrip().endswith(f"# site: {tag}")]
    assert len(lines) == 1, tag
    return lines[0]


def plain_access_app(backend: Backend | str, **settings: Any) -> Sanic[Any, Any]:
    """An app whose handlers use ``request.ctx.session`` as 0.4's README allowed.

    Each request's RuntimeWarnings are recorded in ``app.ctx.caught`` (a list per request).
    """
    app: Sanic[Any, Any] = Sanic(f"plain_{uuid.uuid4().hex}")
    settings.setdefault("secure", False)
    Session(app, backend=backend, **settings)
    app.ctx.caught = []

    @app.on_request
    async def record(request: Request) -> None:
        # Entered here, left in `stop_recording`: warnings of the handler only.
        request.ctx.recorder = warnings.catch_warnings(record=True)
        request.ctx.caught = request.ctx.recorder.__enter__()
        warnings.simplefilter("always")

    @app.on_response
    async def stop_recording(request: Request, response: HTTPResponse) -> None:
        request.ctx.recorder.__exit__(None, None, None)
        app.ctx.caught.append(
            [w for w in request.ctx.caught if issubclass(w.category, RuntimeWarning)]
        )

    @app.get("/write")
    async def write(request: Request) -> HTTPResponse:
        request.ctx.session["k"] = request.args.get("v")  # site: write
        return json("ok")

    @app.get("/read")
    async def read(request: Request) -> HTTPResponse:
        value = request.ctx.session.get("k")  # site: read
        return json(value)

    @app.get("/incr")
    async def incr(request: Request) -> HTTPResponse:
        sess = request.ctx.session
        sess["n"] = sess.get("n", 0) + 1  # site: incr
        return json(sess["n"])  # site: incr-read

    @app.get("/iterate")
    async def iterate(request: Request) -> HTTPResponse:
        sess = request.ctx.session
        data = dict(sess.items())  # site: items
        has_k = "k" in sess  # site: contains
        size = len(sess)  # site: len
        keys = sorted(sess)  # site: iter
        return json({"data": data, "has_k": has_k, "size": size, "keys": keys})

    @app.get("/delete")
    async def delete(request: Request) -> HTTPResponse:
        del request.ctx.session["k"]  # site: delete
        return json("ok")

    @app.get("/locked")
    async def locked(request: Request) -> HTTPResponse:
        async with request.ctx.session as sess:
            return json(dict(sess))

    return app


class _Browser:
    def __init__(self, app: Sanic[Any, Any], cookie_name: str) -> None:
        self.app = app
        self.cookie_name = cookie_name
        self.cookie: str | None = None
        self.set_cookies = 0

    async def get(self, path: str) -> Any:
        client = self.app.asgi_client
        client.cookies.clear()
        headers = {"cookie": f"{self.cookie_name}={self.cookie}"} if self.cookie else {}
        _, response = await client.get(path, headers=headers)
        for header in response.headers.get_list("set-cookie"):
            name, _, rest = header.partition("=")
            if name == self.cookie_name:
                self.set_cookies += 1
                value = rest.split(";", 1)[0]
                self.cookie = value or None
        assert response.status == 200, (path, response.status, response.text)
        return response.json


async def check_plain_access(
    make_app: Callable[..., Sanic[Any, Any]], *, cookie_name: str = "session"
) -> None:
    """Run the scenario on ``make_app()`` and on ``make_app(warn_lock=False)``."""
    for warn in (True, False):
        app = make_app() if warn else make_app(warn_lock=False)
        browser = _Browser(app, cookie_name)
        caught: list[list[warnings.WarningMessage]] = app.ctx.caught

        def expect(*tags: str, warn: bool = warn, caught: Any = caught) -> None:
            got = caught[-1]
            if not warn:
                assert got == [], [str(w.message) for w in got]
                return
            assert sorted((w.filename, w.lineno) for w in got) == sorted(
                (__file__, site(tag)) for tag in tags
            ), [(w.filename, w.lineno, str(w.message)) for w in got]
            assert all("async with request.ctx.session" in str(w.message) for w in got)

        assert await browser.get("/write?v=first") == "ok"
        expect("write")
        assert browser.cookie is not None, "the write was not saved (no cookie sent)"
        assert await browser.get("/read") == "first"
        expect("read")
        assert await browser.get("/incr") == 1
        expect("incr", "incr-read")
        assert await browser.get("/incr") == 2
        expect("incr", "incr-read")
        assert await browser.get("/iterate") == {
            "data": {"k": "first", "n": 2},
            "has_k": True,
            "size": 2,
            "keys": ["k", "n"],
        }
        expect("items", "contains", "len", "iter")
        # What the store holds, read under the lock: every unlocked change was saved.
        assert await browser.get("/locked") == {"k": "first", "n": 2}
        expect()
        assert await browser.get("/write?v=second") == "ok"
        assert await browser.get("/delete") == "ok"
        expect("delete")
        assert await browser.get("/locked") == {"n": 2}
        # A new browser starts empty and its reads write nothing.
        stranger = _Browser(app, cookie_name)
        assert await stranger.get("/read") is None
        assert stranger.set_cookies == 0
