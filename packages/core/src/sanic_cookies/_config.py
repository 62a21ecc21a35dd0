"""Session settings: constructor arguments, else ``app.config.SESSION_*``, else defaults."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

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
    #: Seconds between sliding-expiry refreshes of an unchanged session (``SESSION_REFRESH_INTERVAL``).
    #: None: a tenth of `expiry`, at most five minutes.
    refresh_interval: float | None = None
    #: Cookie Domain attribute; None: host-only (``SESSION_DOMAIN``).
    domain: str | None = None
    #: Cookie Path attribute (``SESSION_PATH``).
    path: str = "/"
    #: Cookie HttpOnly attribute: scripts cannot read the cookie (``SESSION_HTTPONLY``).
    httponly: bool = True
    #: Cookie Secure attribute: sent over HTTPS only (``SESSION_SECURE``).
    secure: bool = True
    #: Cookie SameSite attribute: "Lax", "Strict" or "None" (``SESSION_SAMESITE``).
    samesite: str = "Lax"
    #: True: a browser-session cookie with no Max-Age (``SESSION_SESSION_COOKIE``).
    session_cookie: bool = False
    #: Name the cookie ``__Host-<name>`` (needs secure, path "/", no domain) (``SESSION_HOST_PREFIX``).
    host_prefix: bool = False
    #: Cookie Partitioned attribute, CHIPS (``SESSION_PARTITIONED``).
    partitioned: bool = False
    #: Warn on session access outside ``async with`` (``SESSION_WARN_LOCK``).
    warn_lock: bool = True
    #: Seconds to wait for a session's lock before answering 503 (``SESSION_LOCK_TIMEOUT``).
    lock_timeout: float = 5.0
    #: Seconds a lock outlives a holder that died (``SESSION_LOCK_LEASE``).
    lock_lease: float = 10.0

    @classmethod
    def resolve(
        cls, given: Mapping[str, Any], app_config: Mapping[str, Any]
    ) -> SessionConfig:
        """Merge explicit arguments over ``SESSION_*`` settings over defaults, and check them."""
        values: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            if given.get(field.name) is not None:
                values[field.name] = given[field.name]
            elif f"SESSION_{field.name.upper()}" in app_config:
                values[field.name] = app_config[f"SESSION_{field.name.upper()}"]
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
        for name in ("expiry", "lifetime", "lock_timeout", "lock_lease"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ConfigurationError(f"SESSION_{name.upper()} must be a positive number of seconds, got {value!r}")
        samesite = self.samesite.capitalize()
        if samesite not in ("Lax", "Strict", "None"):
            raise ConfigurationError(
                f"SESSION_SAMESITE must be 'Lax', 'Strict' or 'None', got {self.samesite!r}"
            )
        if samesite == "None" and not self.secure:
            raise ConfigurationError("SameSite=None cookies must be Secure: set SESSION_SECURE=True")
        if self.host_prefix and (not self.secure or self.path != "/" or self.domain):
            raise ConfigurationError(
                "SESSION_HOST_PREFIX needs SESSION_SECURE=True, SESSION_PATH='/' and no SESSION_DOMAIN"
            )
        if not self.cookie_name or any(c in self.cookie_name for c in ' ;,="\\'):
            raise ConfigurationError(f"Invalid cookie name {self.cookie_name!r}")
        return dataclasses.replace(self, samesite=samesite)
