"""Start-up checks over an app's routes, for decorators that must sit below the route decorator.

A decorator written above ``@app.post(...)`` / ``@bp.websocket(...)`` wraps what the route
decorator returns, the handler the app already routes to: its wrapper is never called.
`csrf_protect` and `login_required` mark the handler they are given, and `check_routes_at_startup`
has every app that may route to it run a check over all its routes before it starts
(``before_server_start``), so a marked handler that is routed to unwrapped refuses
start-up with a `ConfigurationError` instead of going unguarded.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterator
from inspect import unwrap
from typing import Any

from sanic import Blueprint, Sanic
from sanic_routing import Route

from . import _compat

__all__ = ["check_routes_at_startup", "route_handlers", "route_label", "routed_handler"]

#: ``async check(app)``: raise `ConfigurationError` for a route the app must not serve.
RouteCheck = Callable[[Sanic[Any, Any]], Awaitable[None]]


def check_routes_at_startup(handler: Any, key: str, check: RouteCheck) -> None:
    """Run `check` before every app that may route to `handler` starts (once per app and `key`).

    The apps that may route to it: every app of the process now (an app route, or a
    blueprint registered on it later), and, through a blueprint's own listeners, every
    app that registers a blueprint of the handler's module, created later or not.

    Args:
        handler: What the decorator was given (the routed handler, if it sits above).
        key: An attribute set on ``app.ctx`` / ``blueprint.ctx`` once it has `check`.
        check: The listener; it looks at all the app's routes.
    """
    targets: list[Any] = list(_compat.registered_apps())
    targets += [v for v in _module_globals(handler).values() if isinstance(v, Blueprint)]
    for target in targets:
        if not getattr(target.ctx, key, False):
            setattr(target.ctx, key, True)
            target.listener(check, "before_server_start")


def _module_globals(handler: Any) -> dict[str, Any]:
    """The globals of the module that defines `handler` (empty for a non-function)."""
    found = getattr(unwrap(handler), "__globals__", None)
    return found if isinstance(found, dict) else {}


def routed_handler(route: Route) -> Any:
    """The route's own handler: Sanic 25 registers ``partial(app._websocket_handler, it)``
    for a websocket route."""
    handler = route.handler
    websocket = bool(getattr(route.extra, "websocket", False))
    if websocket and isinstance(handler, functools.partial) and handler.args:
        return handler.args[0]
    return handler


def route_handlers(app: Sanic[Any, Any]) -> Iterator[tuple[Route, Any]]:
    """Each route of `app` (blueprints' included) with its own handler (`routed_handler`)."""
    for route in app.router.routes:
        yield route, routed_handler(route)


def route_label(route: Route, handler: Any) -> str:
    """How a `ConfigurationError` names a route: its handler, name and path."""
    name = getattr(handler, "__qualname__", repr(handler))
    return f"{name} (route {route.name!r}, /{route.path})"
