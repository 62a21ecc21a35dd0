"""The docs' examples and the demo escape the ``next`` value they echo into HTML.

`safe_next` already refuses values with markup in them (tests/core/auth/test_safe_next.py);
these tests take that guard away, letting any ``next`` through, and check that each HTML
page of the examples still shows no tag of the attacker's: an example teaches the pattern
an app copies, so it must be safe on its own. (1.0.0's login form in
docs/authentication.md sent ``<script>`` back intact.)
"""

from __future__ import annotations

import asyncio
import importlib.util
import uuid
from pathlib import Path
from typing import Any

import pytest
from docs_runner import ROOT, Block, python_blocks
from sanic import Request, Sanic

import sanic_cookies

PAYLOAD = "/\"><script>alert(document.cookie)</script><x y='"

#: Blocks that build an HTML page from `safe_next` (a page showing the ``next`` value).
ECHOING = [
    b
    for b in python_blocks()
    if "safe_next(" in b.code and "html(" in b.code and "fragment" not in b.markers
]


def _let_anything_through(request: Request, default: str = "/") -> str:
    value = request.args.get("next")
    if value is None and request.form:
        value = request.form.get("next")
    return value if isinstance(value, str) else default


@pytest.fixture(autouse=True)
def _no_guard(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sanic_cookies, "safe_next", _let_anything_through)
    Sanic.test_mode = True
    Sanic._app_registry.clear()


def _assert_no_injected_markup(body: str, where: str) -> None:
    assert "<script" not in body, f"{where}: the payload's tag came back:\n{body[:800]}"
    assert "<x " not in body, f"{where}: the payload's tag came back:\n{body[:800]}"


async def _get_every_page(app: Any, where: str) -> int:
    pages = 0
    for route in app.router.routes:
        if "GET" not in route.methods or "<" in route.path:
            continue
        _, response = await app.asgi_client.get(
            "/" + route.path.lstrip("/"), params={"next": PAYLOAD}
        )
        if response.status == 200 and "html" in response.headers.get("content-type", ""):
            _assert_no_injected_markup(response.text, f"{where} GET /{route.path}")
            pages += 1
    return pages


def test_some_docs_example_shows_next_in_html() -> None:
    # The test below must have something to check: the login form of docs/authentication.md.
    assert any(b.path.name == "authentication.md" for b in ECHOING), [b.id for b in ECHOING]


@pytest.mark.parametrize("block", ECHOING, ids=[b.id for b in ECHOING])
def test_docs_example_escapes_next(block: Block) -> None:
    assert not block.requires, f"{block.id}: give this test the servers it needs"
    namespace: dict[str, Any] = {"__name__": "__docs__"}
    exec(compile(block.code, block.id, "exec"), namespace)
    apps = {id(v): v for v in namespace.values() if isinstance(v, Sanic)}.values()
    pages = sum(asyncio.run(_get_every_page(app, block.id)) for app in apps)
    assert pages >= 1, f"{block.id}: no HTML page answered"


def _demo_module() -> Any:
    spec = importlib.util.spec_from_file_location(
        f"demo_{uuid.uuid4().hex}", ROOT / "examples" / "demo.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_demo_escapes_next(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SESSION_BACKEND", "memory://")
    demo = _demo_module()
    monkeypatch.setattr(demo, "safe_next", _let_anything_through)
    app = demo.create_app(f"demo_{uuid.uuid4().hex}")

    async def run() -> None:
        assert await _get_every_page(app, "examples/demo.py") >= 2
        # The login page again, after a wrong password: the form's hidden field. (The form
        # is CSRF-protected: post it with its session cookie and token, as a browser does.)
        _, form = await app.asgi_client.get("/login")
        token = form.text.split('name="csrf_token" value="')[1].split('"')[0]
        cookie = "; ".join(h.split(";")[0] for h in form.headers.get_list("set-cookie"))
        _, response = await app.asgi_client.post(
            "/login",
            data={"username": "ada", "password": "wrong", "next": PAYLOAD, "csrf_token": token},
            headers={"cookie": cookie},
        )
        assert response.status == 401
        assert 'name="next" value="/&quot;&gt;&lt;script&gt;' in response.text
        _assert_no_injected_markup(response.text, "examples/demo.py POST /login")

    asyncio.run(run())


def test_the_guard_is_really_off_here() -> None:
    # Proof that the tests above check the examples' own escaping, not safe_next's refusal.
    assert sanic_cookies.safe_next is _let_anything_through
    assert Path(ROOT / "examples" / "demo.py").is_file()
