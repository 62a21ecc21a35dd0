"""How the CSRF and flash helpers reach a request's session: by name, locked or peeked."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from sanic import Request

from ._errors import ConfigurationError
from ._session import Session
from ._session_dict import SessionDict

__all__ = ["locked", "peek", "session_named", "sessions_of"]


def sessions_of(app: Any) -> list[Session]:
    """The sessions attached to `app` (``app.ctx.exts``), in attachment order."""
    exts = getattr(app.ctx, "exts", None)
    return [v for v in vars(exts).values() if isinstance(v, Session)] if exts is not None else []


def session_named(request: Request, name: str | None, *, what: str) -> SessionDict:
    """The request's session called `name`; None: ``"session"``, else the app's only one.

    Raises:
        ConfigurationError: No such session (says which ones the app has).
    """
    sessions = sessions_of(request.app)
    if name is None:
        names = [s.name for s in sessions]
        name = "session" if "session" in names or len(names) != 1 else names[0]
    sess = getattr(request.ctx, name, None)
    if not isinstance(sess, SessionDict):
        have = ", ".join(repr(s.name) for s in sessions) or "none"
        raise ConfigurationError(
            f"{what}: the app has no session named {name!r} (its sessions: {have}); "
            "attach one with Session(app) or pass session_name="
        )
    return sess


@contextlib.asynccontextmanager
async def locked(sess: SessionDict) -> AsyncIterator[SessionDict]:
    """`sess` under its lock: the handler's ``async with`` block if one is open, else our own."""
    if sess.is_locked:
        yield sess
    else:
        async with sess:
            yield sess


async def peek(sess: SessionDict, key: str) -> Any:
    """The value of `key` (None if absent), read without taking the lock.

    For a quick "is there anything?" before locking: loads the session read-only
    if the handler has not, and reads without the unlocked-access warning (nothing
    is written from what is read here).
    """
    return await sess.peek(key)
