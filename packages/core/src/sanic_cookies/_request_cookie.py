"""Reading one cookie from a request's ``Cookie`` header."""

from __future__ import annotations

from . import _compat

__all__ = ["cookie_value"]


def cookie_value(header: str, name: str) -> str | None:
    """The first value of the cookie `name` in `header`, as Sanic reads it; None if absent.

    The same value as ``sanic.cookies.request.parse_cookie(header).get(name)[0]``
    for a non-empty cookie-token `name` (the names a `SessionConfig` allows), but it
    builds no dict of every cookie: only the session's is looked for.
    """
    if name not in header:  # the common case for other apps' cookies: one C scan
        return None
    key, sep, value = header.partition("=")
    if sep and key == name and ";" not in value:
        # The whole header is this one cookie (the usual case): no list of its parts.
        value = value.strip()
    else:
        found = _scan(header, name)
        if found is None:
            return None
        value = found
    if len(value) > 2 and value[0] == '"' and value[-1] == '"':
        value = _compat.unquote(value)
    return value


def _scan(header: str, name: str) -> str | None:
    """The stripped, still quoted value of the first cookie `name` among several."""
    for token in header.split(";"):
        key, sep, value = token.partition("=")
        if sep and key.strip() == name:
            return value.strip()
    return None
