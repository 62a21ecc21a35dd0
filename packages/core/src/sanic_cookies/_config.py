"""Session settings: constructor arguments, else ``app.config.SESSION_*``, else defaults."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from typing import Any, Literal

from ._errors import ConfigurationError

__all__ = ["SessionConfig"]

DAY = 86400.0


@dataclasses.dataclass(frozen=True, slots=True)
class SessionConfig:
    """The resolved settings of one `Session`.

    Each field can be given to `Session(...)`, or set on the app as
    ``SESSION_<FIELD>`` (e.g. ``app.config.SESSION_EXPIRY = 3600``).
    """

    #: Cookie name (``SESSION_COOKIE_NAME``).
    cookie_name: str = "session"
    #: Idle timeout in seconds: a session unused this long ends (``SESSION_EXPIRY``).
    expiry: float = 30 * DAY
    #: Absolute lifetime in seconds, however active the session (``SESSION_LIFETIME``).
    lifetime: float = 90 * DAY
    #: Seconds between sliding-expiry refreshes of an unchanged session
    #: (``SESSION_REFRESH_INTERVAL``). None: a tenth of `expiry`, at most five minutes.
    refresh_interval: float | None = None
    #: Cookie Domain attribute; None: host-only (``SESSION_DOMAIN``).
    domain: str | None = None
    #: Cookie Path attribute (``SESSION_PATH``).
    path: str = "/"
    #: Cookie HttpOnly attribute: scripts cannot read the cookie (``SESSION_HTTPONLY``).
    httponly: bool = True
    #: Cookie Secure attribute: sent over HTTPS only (``SESSION_SECURE``).
    secure: bool = True
    #: Cookie SameSite attribute: "Lax", "Strict" or "None"; False: no attribute, so each
    #: browser applies its own default (``SESSION_SAMESITE``). None: this default.
    samesite: str | Literal[False] = "Lax"
    #: True: a browser-session cookie with no Max-Age (``SESSION_SESSION_COOKIE``).
    session_cookie: bool = False
    #: Name the cookie ``__Host-<name>``; needs secure, path "/" and no domain
    #: (``SESSION_HOST_PREFIX``).
    host_prefix: bool = False
    #: Cookie Partitioned attribute, CHIPS; needs host_prefix (``SESSION_PARTITIONED``).
    partitioned: bool = False
    #: Warn on session access outside ``async with`` (``SESSION_WARN_LOCK``).
    warn_lock: bool = True
    #: Load the session in the request middleware when the request carries a session
    #: cookie, so plain ``request.ctx.session[...]`` works on a network backend
    #: (``SESSION_AUTOLOAD``). Costs one store read per such request, used or not.
    autoload: bool = False
    #: Seconds to wait for a session's lock before answering 503 (``SESSION_LOCK_TIMEOUT``).
    lock_timeout: float = 5.0
    #: Seconds a lock outlives a holder that died (``SESSION_LOCK_LEASE``).
    lock_lease: float = 10.0
    #: Most bytes of a session's encoded data (a stored login's user included) on a
    #: server-side backend; a larger write raises ``SessionTooLarge`` and stores nothing.
    #: None: no limit (``SESSION_MAX_SIZE``).
    max_size: int | None = 64 * 1024

    @classmethod
    def resolve(cls, given: Mapping[str, Any], app_config: Mapping[str, Any]) -> SessionConfig:
        """Merge explicit arguments over ``SESSION_*`` settings over defaults, and check them."""
        values: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            if given.get(field.name) is not None or (
                field.name in _NONE_TURNS_OFF and field.name in given
            ):
                values[field.name] = given[field.name]
            elif (key := f"SESSION_{field.name.upper()}") in app_config and (
                app_config[key] is not None or field.name in _NONE_TURNS_OFF
            ):
                # A setting set to None is "not given", as an argument of None is.
                values[field.name] = app_config[key]
        try:
            config = cls(**values)
        except TypeError as exc:
            raise ConfigurationError(str(exc)) from None
        return config._checked()

    @property
    def refresh_after(self) -> float:
        """The effective refresh interval in seconds."""
        if self.refresh_interval is not None:
            return self.refresh_interval
        return min(300.0, self.expiry / 10)

    def _checked(self) -> SessionConfig:
        """This config with SameSite capitalized, or `ConfigurationError` for the first problem."""
        for check in _CHECKS:
            problem = check(self)
            if problem is not None:
                raise ConfigurationError(problem)
        return dataclasses.replace(self, samesite=_samesite(self))


# Settings whose None, passed explicitly, means "off" rather than "not given".
_NONE_TURNS_OFF = frozenset({"max_size"})
_SECONDS = ("expiry", "lifetime", "lock_timeout", "lock_lease")
_FLAGS = (
    "httponly",
    "secure",
    "session_cookie",
    "host_prefix",
    "partitioned",
    "warn_lock",
    "autoload",
)
_SAMESITE = ("Lax", "Strict", "None")
# RFC 6265 cookie-name token characters.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_DOMAIN = re.compile(r"\.?[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")


# -- the checks, in the order they run: each returns what is wrong, or None ------------


def _seconds_problem(config: SessionConfig) -> str | None:
    for name in _SECONDS:
        value = getattr(config, name)
        if not _is_number(value) or value <= 0:
            return f"{_label(name)} must be a positive number of seconds, got {value!r}"
    return None


def _refresh_problem(config: SessionConfig) -> str | None:
    value = config.refresh_interval
    if value is None or (_is_number(value) and value >= 0):
        return None
    return f"{_label('refresh_interval')} must be a number of seconds >= 0 or None, got {value!r}"


def _max_size_problem(config: SessionConfig) -> str | None:
    size = config.max_size
    if size is None or (isinstance(size, int) and not isinstance(size, bool) and size >= 1):
        return None
    return f"{_label('max_size')} must be a whole number of bytes >= 1 or None, got {size!r}"


def _flags_problem(config: SessionConfig) -> str | None:
    for name in _FLAGS:
        value = getattr(config, name)
        if not isinstance(value, bool):
            return f"{_label(name)} must be True or False, got {value!r}"
    return None


def _cookie_name_problem(config: SessionConfig) -> str | None:
    name = config.cookie_name
    if not isinstance(name, str) or not _TOKEN.fullmatch(name):
        return (
            f"{_label('cookie_name')} must be a non-empty cookie token "
            f"(letters, digits and !#$%&'*+-.^_`|~), got {name!r}"
        )
    if name.lower().startswith(("__host-", "__secure-")):
        return (
            f"{_label('cookie_name')} {name!r}: give the name without its prefix and set "
            "host_prefix=True (SESSION_HOST_PREFIX) for a __Host- cookie"
        )
    return None


def _path_problem(config: SessionConfig) -> str | None:
    path = config.path
    if isinstance(path, str) and path.startswith("/") and ";" not in path:
        return None
    return f"{_label('path')} must be a path starting with '/', got {path!r}"


def _domain_problem(config: SessionConfig) -> str | None:
    domain = config.domain
    if domain is None or (isinstance(domain, str) and _DOMAIN.fullmatch(domain)):
        return None
    return f"{_label('domain')} must be a host name such as 'example.com' or None, got {domain!r}"


def _samesite_problem(config: SessionConfig) -> str | None:
    value = config.samesite
    if value is False or (isinstance(value, str) and value.capitalize() in _SAMESITE):
        return None
    return (
        f"{_label('samesite')} must be 'Lax', 'Strict' or 'None', or False for no "
        f"attribute, got {value!r}"
    )


def _insecure_samesite_none(config: SessionConfig) -> str | None:
    if _samesite(config) == "None" and not config.secure:
        return "SameSite=None cookies must be Secure: set secure=True (SESSION_SECURE)"
    return None


def _host_prefix_problem(config: SessionConfig) -> str | None:
    if config.host_prefix and (not config.secure or config.path != "/" or config.domain):
        return "host_prefix=True (SESSION_HOST_PREFIX) needs secure=True, path='/' and no domain"
    if config.partitioned and not config.host_prefix:
        return (
            "partitioned=True (SESSION_PARTITIONED) needs host_prefix=True "
            "(SESSION_HOST_PREFIX): Sanic sets Partitioned only on __Host- cookies"
        )
    return None


_CHECKS: tuple[Callable[[SessionConfig], str | None], ...] = (
    _seconds_problem,
    _refresh_problem,
    _max_size_problem,
    _flags_problem,
    _cookie_name_problem,
    _path_problem,
    _domain_problem,
    _samesite_problem,
    _insecure_samesite_none,
    _host_prefix_problem,
)


def _samesite(config: SessionConfig) -> str | Literal[False]:
    """The SameSite setting as the cookie carries it ("lax" -> "Lax"), or False."""
    return config.samesite.capitalize() if config.samesite else config.samesite


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _label(name: str) -> str:
    return f"{name} (SESSION_{name.upper()})"
