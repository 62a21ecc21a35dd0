"""`SessionCookie`: Sanic's `Cookie`, rendered byte for byte the same, but cheaply.

Three costs of Sanic's cookie handling are avoided, none of which changes a byte sent:

* ``Cookie.__str__`` sorts and formats every attribute on each call (about 9 µs).
  A session's cookie carries the same attributes on every response but for
  ``Max-Age``, which changes once a second, so the part after ``name=value`` is
  remembered by attribute values.
* ``Cookie.__init__`` checks the name and every attribute again for each response.
  `CookieTemplate` has Sanic check them once, then stamps cookies with the result.
* Sanic strips CR, LF and NUL from each header name and value with ``str.translate``,
  which looks every character up in a dict (about 0.1 µs a character, 10 µs for a
  session cookie, 6k instructions for the name ``Set-Cookie`` alone). The rendering is a
  `_HeaderValue`, and the name `SET_COOKIE` a `_HeaderName`, whose ``translate`` finds
  out with three C scans that there is nothing to strip.

`CookieTemplate.size` tells the length of a rendering without making it (the
cookie backend's size limit is checked on every write).
"""

from __future__ import annotations

from typing import Any, cast

from multidict import istr
from sanic.cookies.response import Cookie, CookieJar

from . import _compat

__all__ = ["SET_COOKIE", "CookieTemplate", "SessionCookie"]

_SANIC_HEADER_TABLE = _compat.HEADER_TRANSLATION_TABLE

# Values made only of these characters are never quoted by Sanic (they are a subset
# of the characters it leaves alone), so its rendering starts with ``name=value``.
_PLAIN_BYTES = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.~-"

# Rendered attribute parts, by (name, attributes...). A handful are live at a time
# (one per second of Max-Age); the cache is emptied when it fills.
_TAILS: dict[tuple[Any, ...], str] = {}
_MAX_TAILS = 64


class _CheapCleanUp:
    """A string (mixin) that Sanic's header clean-up need not copy character by character.

    Sanic calls ``.translate(HEADER_TRANSLATION_TABLE)`` on each header name and value
    to delete CR, LF and NUL. When none of the three is present that returns the
    string unchanged, which this answers after three `in` scans; any other table,
    or a string holding one of them, goes through the real ``str.translate``.
    """

    __slots__ = ()

    def translate(self, table: Any, /) -> str:
        text = cast(str, self)
        if table is not _SANIC_HEADER_TABLE or "\r" in text or "\n" in text or "\x00" in text:
            return str.translate(text, table)
        return text


class _HeaderValue(_CheapCleanUp, str):
    """A rendered cookie, cleaned up cheaply (`_CheapCleanUp`)."""

    __slots__ = ()


class _HeaderName(_CheapCleanUp, istr):
    """A header name, case-insensitive as Sanic's own, cleaned up cheaply (`_CheapCleanUp`).

    Sanic's headers keep the name object they are given, so it reaches the clean-up as is.
    """

    __slots__ = ()


#: The ``Set-Cookie`` header's name, for ``response.headers.add(SET_COOKIE, cookie)``.
SET_COOKIE: str = _HeaderName(CookieJar.HEADER_KEY)


class SessionCookie(Cookie):
    """A `Cookie` whose ``Set-Cookie`` rendering reuses the attribute part."""

    __slots__ = ()

    def _render(self) -> str:
        full: str = super().__str__()  # type: ignore[no-untyped-call]
        return full

    def __str__(self) -> str:
        value = self.value
        # Plain: non-empty ASCII that is empty once the `_PLAIN_BYTES` are deleted (one C
        # pass over the bytes, cheaper than a regex match). `_plain`, inline: one call less.
        if not (value and value.isascii() and not value.encode().translate(None, _PLAIN_BYTES)):
            return self._render()
        attributes = _compat.cookie_attributes(self)
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
        return _HeaderValue(f"{self.key}={value}{tail}")


class CookieTemplate:
    """The fixed attributes of a session's cookie, checked by Sanic once.

    `make` gives the `SessionCookie` that ``SessionCookie(name, value, max_age=...,
    **attributes)`` would give (a deletion cookie for ``max_age=0``: it also gets
    ``Expires`` at the epoch), without repeating Sanic's checks of the name, path,
    domain, SameSite and prefix rules for every response.

    Args:
        name: The cookie name, without prefix.
        **attributes: `Cookie` keyword arguments other than ``max_age`` and ``expires``.

    Raises:
        KeyError, ServerError, TypeError: What `Cookie` raises for them.
    """

    __slots__ = ("_attributes", "_proto", "_size_without_value")

    def __init__(self, name: str, **attributes: Any) -> None:
        self._proto = Cookie(name, "", **attributes)
        self._attributes = {"name": name, **attributes}
        # What a plain value adds to, with no Max-Age: Sanic's own rendering of a probe.
        probe = self.make(_PROBE, None)
        full: str = Cookie.__str__(probe)  # type: ignore[no-untyped-call]
        fits = full.startswith(f"{probe.key}={_PROBE}")  # not the shape assumed: no shortcut
        self._size_without_value = len(full.encode()) - len(_PROBE) if fits else None

    @property
    def key(self) -> str:
        """The cookie's name as sent, prefix included."""
        key: str = self._proto.key
        return key

    def make(self, value: str, max_age: int | None) -> SessionCookie:
        """A cookie holding `value`; `max_age` None for a browser-session cookie."""
        if max_age is not None and (type(max_age) is not int or max_age < 0):
            raise ValueError("Cookie max-age must be an integer")  # as Sanic's check says
        cookie: SessionCookie = _compat.stamp_cookie(
            SessionCookie, self._proto, self._attributes, value, max_age
        )
        return cookie

    def size(self, value: str, max_age: int | None) -> int:
        """Bytes of ``str(make(value, max_age))`` in UTF-8, worked out without rendering it.

        Exact: for a plain value (one Sanic sends unquoted) the rendering is ``name=``,
        the value, then attributes that do not depend on the value, of which only
        ``; Max-Age=<digits>`` varies. Any other value, and ``max_age`` 0 (which adds
        ``Expires``), is rendered and measured.

        Raises:
            ValueError: What `make` raises for `max_age`.
        """
        fixed = self._size_without_value
        if fixed is None or not _plain(value):
            return self._rendered_size(value, max_age)
        if max_age is None:
            return fixed + len(value)
        if type(max_age) is not int or max_age <= 0:  # `make` refuses it, or adds Expires
            return self._rendered_size(value, max_age)
        return fixed + len(value) + _MAX_AGE_BYTES + len(str(max_age))

    def _rendered_size(self, value: str, max_age: int | None) -> int:
        return len(str(self.make(value, max_age)).encode())


# The plain value whose rendering `CookieTemplate` measures once.
_PROBE = "x"
# ``; Max-Age=`` before the digits (Sanic's ``"%s=%d" % ("Max-Age", max_age)``, joined by "; ").
_MAX_AGE_BYTES = len("; Max-Age=")


def _plain(value: str) -> bool:
    """`SessionCookie.__str__`'s test: a value Sanic sends as it is (ASCII: a byte a character)."""
    return bool(value and value.isascii() and not value.encode().translate(None, _PLAIN_BYTES))
