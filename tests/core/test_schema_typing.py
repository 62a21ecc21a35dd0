"""What a mypy user gets from a typed session: ``session.of(request).data`` is the Struct.

Runs ``mypy --strict`` over a small application module (mypy is in the ``test`` dependency
group, so every session that runs this test has it: a missing mypy fails, never skips).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import mypy  # noqa: F401  (imported so a missing mypy fails at collection)

APP = textwrap.dedent(
    """
    import msgspec
    from sanic import Request, Sanic, text
    from sanic.response import HTTPResponse
    from sanic_cookies import AuthSession, Session, SessionDict, SessionSchema


    class Cart(msgspec.Struct):
        items: list[str] = []


    def upgrade(stored: dict[str, object]) -> dict[str, object]:
        return stored


    app = Sanic("typed")
    session = Session(app, schema=Cart)
    migrated = Session(app, session_name="other", schema=SessionSchema(Cart, migrate=upgrade))
    plain = Session(app, session_name="plain")
    auth = AuthSession(app)


    @app.get("/")
    async def index(request: Request) -> HTTPResponse:
        async with session.of(request) as sess:
            reveal_type(session)
            reveal_type(sess)
            reveal_type(sess.data.items)
            reveal_type(migrated.of(request).data)
            reveal_type(plain.of(request).data)
            sess.data.items.append(1)
            sess.data.itmes = []
        annotated: SessionDict[Cart] = auth.of(request)
        reveal_type(annotated.data)
        untyped: SessionDict = request.ctx.session
        return text(str(len(untyped)))
    """
)


def test_mypy_sees_the_schema_through_session_of(tmp_path: Path) -> None:
    module = tmp_path / "typed_app.py"
    module.write_text(APP)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-error-summary",
            "--cache-dir",
            str(tmp_path / "cache"),
            str(module),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    # Older mypy versions spell builtins in full ("builtins.list[builtins.str]").
    out = result.stdout.replace("builtins.", "")
    lines = [line.split(": ", 1)[1] for line in out.splitlines() if ": " in line]
    assert lines == [
        'note: Revealed type is "sanic_cookies._session.Session[typed_app.Cart]"',
        'note: Revealed type is "sanic_cookies._session_dict.SessionDict[typed_app.Cart]"',
        'note: Revealed type is "list[str]"',
        'note: Revealed type is "typed_app.Cart"',
        'note: Revealed type is "Any"',
        'error: Argument 1 to "append" of "list" has incompatible type "int"; expected "str"  '
        "[arg-type]",
        'error: "Cart" has no attribute "itmes"; maybe "items"?  [attr-defined]',
        'note: Revealed type is "typed_app.Cart"',
    ], result.stdout + result.stderr
