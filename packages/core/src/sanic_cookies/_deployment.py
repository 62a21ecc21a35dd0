"""How this process serves its apps, for `ClientSideBackend.check_deployment`."""

from __future__ import annotations

import os

from . import _compat

__all__ = ["served_over_asgi"]


def served_over_asgi() -> bool:
    """True if this process serves a Sanic app over ASGI (uvicorn, hypercorn, ...).

    Sanic marks an app ``asgi`` when an ASGI server calls it; its worker processes
    are then the server's, which the app cannot count, so a backend whose state
    lives in one process (a ``memory://`` revocation store) cannot know it is
    alone. A Sanic worker process (``SANIC_WORKER_NAME`` set) knows its count
    from Sanic and is not asked here.

    For use in `ClientSideBackend.check_deployment`. It looks at every app of the
    process as Sanic registers them; on a Sanic without that registry it sees the
    app only when the process has exactly one.
    """
    if os.environ.get("SANIC_WORKER_NAME"):
        return False
    return any(getattr(app, "asgi", False) is True for app in _compat.registered_apps())
