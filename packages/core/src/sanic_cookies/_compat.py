"""Every private Sanic attribute the core uses, each with a public-API fallback.

Sanic's private names make three hot paths cheaper (see `_set_cookie` and
`_request_cookie`); none of them changes a byte sent or read. They may vanish in
any Sanic release, so they are used only here, only when present, and each has
a fallback built on Sanic's public API alone that gives the same result, a
little slower:

* ``sanic.cookies.request._unquote`` (a quoted cookie value as Sanic reads it):
  fallback `public_unquote`, the same algorithm.
* `Cookie`'s private attribute fields (``_path``, ``_max_age``...), read to key
  the rendering cache and written to stamp a cookie without Sanic's checks:
  fallback the public properties and the public constructor.
* ``sanic.response.types.HEADER_TRANSLATION_TABLE`` (the table Sanic strips
  header values with): fallback none, so rendered cookies are translated as
  any string is.
* ``Sanic._app_registry`` (every app of this process; read by the
  ``@csrf_protect`` start-up check and by `served_over_asgi`): fallback
  ``Sanic.get_app()``, which names the app when the process has only one and
  none when it has several.

Callers look the functions up on this module at call time
(``_compat.unquote(...)``), so `use_private_internals` switches every caller,
which is how the tests run the fallbacks.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sanic import Sanic
from sanic.cookies.response import Cookie
from sanic.exceptions import SanicException

__all__ = [
    "HEADER_TRANSLATION_TABLE",
    "PRIVATE_INTERNALS_AVAILABLE",
    "cookie_attributes",
    "public_unquote",
    "registered_apps",
    "stamp_cookie",
    "unquote",
    "use_private_internals",
]

_sanic_unquote: Callable[[str], str] | None
try:
    from sanic.cookies.request import _unquote as _sanic_unquote
except ImportError:  # pragma: no cover - a Sanic without it: the fallback serves
    _sanic_unquote = None

#: The table Sanic strips header values with (an object no caller passes if unknown).
HEADER_TRANSLATION_TABLE: object
try:
    from sanic.response.types import HEADER_TRANSLATION_TABLE
except ImportError:  # pragma: no cover - another Sanic: its translate runs as it is
    HEADER_TRANSLATION_TABLE = object()

# `Cookie`'s private fields, in the order `cookie_attributes` returns them.
_FIELDS = (
    "_path",
    "_comment",
    "_domain",
    "_max_age",
    "_expires",
    "_samesite",
    "_secure",
    "_httponly",
    "_partitioned",
)
_PUBLIC = tuple(field[1:] for field in _FIELDS)

# The Expires of a deletion cookie (what Sanic's delete_cookie sends too).
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _cookie_has_private_fields() -> bool:
    """Whether this Sanic's `Cookie` keeps its attributes in the fields `_FIELDS` names."""
    probe = Cookie("probe", "v", path="/p", max_age=7, samesite="Strict", secure=True)
    try:
        return (
            all(hasattr(probe, field) for field in _FIELDS)
            and probe._path == "/p"
            and probe._max_age == 7
            and probe._samesite == "Strict"
        )
    except Exception:  # pragma: no cover - some other shape: use the public API
        return False


#: Whether every private Sanic attribute this module knows of is there.
PRIVATE_INTERNALS_AVAILABLE: bool = (
    _sanic_unquote is not None
    and _cookie_has_private_fields()
    and isinstance(getattr(Sanic, "_app_registry", None), dict)
)

# A backslash escape: three octal digits (tried first, as Sanic does), else any character.
_ESCAPE = re.compile(r"\\(?:([0-3][0-7][0-7])|(.))")


def public_unquote(value: str) -> str:
    """A double-quoted cookie value decoded as Sanic decodes it (backslash and octal escapes).

    The fallback of ``sanic.cookies.request._unquote``, written against nothing private.
    """
    if len(value) < 2 or value[0] != '"' or value[-1] != '"':
        return value
    return _ESCAPE.sub(_unescape, value[1:-1])


def _unescape(match: re.Match[str]) -> str:
    octal, char = match.groups()
    return chr(int(octal, 8)) if octal is not None else char


def _private_registered_apps() -> list[Sanic[Any, Any]]:
    return list(Sanic._app_registry.values())


def _public_registered_apps() -> list[Sanic[Any, Any]]:
    try:
        return [Sanic.get_app()]  # the only app; it raises when there are none or several
    except SanicException:
        return []


def _private_unquote(value: str) -> str:
    assert _sanic_unquote is not None  # chosen only when present
    return _sanic_unquote(value)


def _private_attributes(cookie: Cookie) -> tuple[Any, ...]:
    return (
        cookie.key,
        cookie._path,
        cookie._comment,
        cookie._domain,
        cookie._max_age,
        cookie._expires,
        cookie._samesite,
        cookie._secure,
        cookie._httponly,
        cookie._partitioned,
    )


def _public_attributes(cookie: Cookie) -> tuple[Any, ...]:
    return (cookie.key, *(getattr(cookie, name) for name in _PUBLIC))


def _private_stamp(
    cls: type[Cookie], proto: Cookie, attributes: dict[str, Any], value: str, max_age: int | None
) -> Any:
    cookie = cls.__new__(cls)
    cookie.key = proto.key
    cookie.value = value
    cookie._path = proto._path
    cookie._comment = None
    cookie._domain = proto._domain
    cookie._secure = proto._secure
    cookie._httponly = proto._httponly
    cookie._partitioned = proto._partitioned
    cookie._samesite = proto._samesite
    cookie._max_age = max_age
    cookie._expires = _EPOCH if max_age == 0 else None
    return cookie


def _public_stamp(
    cls: type[Cookie], proto: Cookie, attributes: dict[str, Any], value: str, max_age: int | None
) -> Any:
    name = attributes["name"]
    options = {k: v for k, v in attributes.items() if k not in ("name", "comment")}
    return cls(name, value, max_age=max_age, expires=_EPOCH if max_age == 0 else None, **options)


#: ``unquote(value)``: a quoted request cookie value as Sanic reads it.
unquote: Callable[[str], str] = _private_unquote
#: ``cookie_attributes(cookie)``: a `Cookie`'s key and attributes (path, comment, domain,
#: max-age, expires, samesite, secure, httponly, partitioned), as a hashable tuple.
cookie_attributes: Callable[[Cookie], tuple[Any, ...]] = _private_attributes
#: ``stamp_cookie(cls, proto, attributes, value, max_age)``: a new `cls` cookie with
#: `proto`'s checked attributes (`attributes` are the keyword arguments it was
#: built with, ``name`` included), `value` and `max_age` (a deletion cookie for 0).
stamp_cookie: Callable[[type[Cookie], Cookie, dict[str, Any], str, int | None], Any] = (
    _private_stamp
)
#: ``registered_apps()``: the Sanic apps of this process (on the fallback: the only
#: one, or none when there are several).
registered_apps: Callable[[], list[Sanic[Any, Any]]] = _private_registered_apps


def use_private_internals(enabled: bool) -> None:
    """Use Sanic's private attributes (if this Sanic has them) or only its public API.

    Args:
        enabled: False switches every caller to the public-API fallbacks (the
            tests do, to keep those paths working); True goes back to the fast
            paths where `PRIVATE_INTERNALS_AVAILABLE`.
    """
    global unquote, cookie_attributes, stamp_cookie, registered_apps
    private = enabled and PRIVATE_INTERNALS_AVAILABLE
    registered_apps = _private_registered_apps if private else _public_registered_apps
    unquote = _private_unquote if private else public_unquote
    cookie_attributes = _private_attributes if private else _public_attributes
    stamp_cookie = _private_stamp if private else _public_stamp


use_private_internals(True)
