"""`SessionCookie`: Sanic's `Cookie`, rendered byte for byte the same, but cheaply.

Sanic's ``Cookie.__str__`` sorts and formats every attribute on each call (about
9 µs, the largest single cost of a session write). A session's cookie carries the
same attributes on every response but for ``Max-Age``, which changes once a second,
so the part after ``name=value`` is remembered by attribute values.
"""

from __future__ import annotations

import re
from typing import Any

from sanic.cookies.response import Cookie

__all__ = ["SessionCookie"]

# Values made only of these characters are never quoted by Sanic (they are a subset
# of the characters it leaves alone), so its rendering starts with ``name=value``.
_plain = re.compile(r"[A-Za-z0-9_.~-]+").fullmatch

# Rendered attribute parts, by (name, attributes...). A handful are live at a time
# (one per second of Max-Age); the cache is emptied when it fills.
_TAILS: dict[tuple[Any, ...], str] = {}
_MAX_TAILS = 64


class SessionCookie(Cookie):
    """A `Cookie` whose ``Set-Cookie`` rendering reuses the attribute part."""

    __slots__ = ()

    def _render(self) -> str:
        full: str = super().__str__()  # type: ignore[no-untyped-call]
        return full

    def __str__(self) -> str:
        value = self.value
        if not _plain(value):
            return self._render()
        attributes = (
            self.key,
            self.path,
            self.comment,
            self.domain,
            self.max_age,
            self.expires,
            self.samesite,
            self.secure,
            self.httponly,
            self.partitioned,
        )
        tail = _TAILS.get(attributes)
        if tail is None:
            full = self._render()
            head = f"{self.key}={value}"
            if not full.startswith(head):  # not the shape assumed above: never cache it
                return full
            tail = full[len(head) :]
            if len(_TAILS) >= _MAX_TAILS:
                _TAILS.clear()
            _TAILS[attributes] = tail
        return f"{self.key}={value}{tail}"
