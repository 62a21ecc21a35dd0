"""Finding the backend class for a URL scheme, through entry points.

The entry-point group is ``sanic_cookies.backends``; an entry point's name is
the URL scheme it serves (``+`` in a scheme is written ``.``, so
``postgresql+asyncpg://`` looks up ``postgresql.asyncpg``). Entry points are
read once per process; `register` adds schemes at runtime.
"""

from __future__ import annotations

import importlib
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from ._backend import Backend
from ._errors import BackendNotFound, ConfigurationError, DuplicateBackend
from ._url import is_url_scheme, redact_url

__all__ = ["backend_class", "backend_from_url", "register", "registered_schemes"]

GROUP = "sanic_cookies.backends"

# What to install for the schemes of the first-party distributions.
_INSTALL_HINTS = {
    "redis": "redis",
    "rediss": "redis",
    "redis.cluster": "redis",
    "rediss.cluster": "redis",
    "redis.sentinel": "redis",
    "rediss.sentinel": "redis",
    "postgresql": "postgres",
    "postgres": "postgres",
    "postgresql.asyncpg": "postgres",
    "cookie": "cookie",
}

_runtime: dict[str, type[Backend] | str] = {}
_discovered: dict[str, list[EntryPoint]] | None = None


def register(scheme: str, target: type[Backend] | str) -> None:
    """Serve URLs of `scheme` with `target` (a Backend subclass or ``"module:Class"``).

    Runtime registrations take precedence over installed entry points. Useful
    for in-app backends and tests. Schemes are not case-sensitive (``MyKV://`` is
    ``mykv://``), as in URLs.

    Raises:
        ConfigurationError: `scheme` is not a URL scheme: a letter, then letters, digits,
            ``+``, ``-`` or ``.`` (``my_kv`` is not: URL parsers read such a URL as a path).
    """
    if not isinstance(scheme, str) or not is_url_scheme(scheme):
        raise ConfigurationError(
            f"A URL scheme is a letter, then letters, digits, '+', '-' or '.'; got {scheme!r}"
        )
    _runtime[_entry_name(scheme.lower())] = target


def registered_schemes() -> list[str]:
    """Every scheme a backend is available for (installed or registered), as URLs spell
    it (``redis+cluster``)."""
    return sorted(name.replace(".", "+") for name in set(_entry_points()) | set(_runtime))


def backend_from_url(url: str, **options: Any) -> Backend:
    """Build the backend for `url` by its scheme.

    Raises:
        ConfigurationError: `url` is not a str, or has no scheme.
        BackendNotFound: nothing serves the scheme (the message says what to install).
        DuplicateBackend: two distributions serve the scheme.
    """
    return backend_class(url).from_url(url, **options)


def backend_class(url: str) -> type[Backend]:
    """The `Backend` subclass serving `url`'s scheme (errors as for `backend_from_url`)."""
    scheme, sep, _ = url.partition("://") if isinstance(url, str) else ("", "", "")
    if not sep or not scheme:
        raise ConfigurationError(
            "SESSION_BACKEND must be a URL such as 'memory://' or 'redis://host:6379/0', "
            f"got {redact_url(url)!r}"
        )
    return _load(_entry_name(scheme.lower()))


def _entry_name(scheme: str) -> str:
    return scheme.replace("+", ".")


def _load(name: str) -> type[Backend]:
    target: Any = _runtime.get(name)
    try:
        if target is None:
            claims = _entry_points().get(name)
            if not claims:
                raise BackendNotFound(_missing_message(name))
            if len(claims) > 1:
                first, second = claims[:2]
                raise DuplicateBackend(
                    f"URL scheme {name!r} is claimed by two installed distributions: "
                    f"{_dist_name(first)} ({first.value}) and {_dist_name(second)} "
                    f"({second.value}). Uninstall one of them, or choose one with "
                    f"sanic_cookies.register({name!r}, ...)."
                )
            target = claims[0].load()
        elif isinstance(target, str):
            module, _, attr = target.partition(":")
            target = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        if isinstance(exc, BackendNotFound):
            raise
        # Installed but broken (a missing dependency, say): say which and why.
        raise BackendNotFound(
            f"The session backend for {name.replace('.', '+')}:// URLs failed to import: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    if not (isinstance(target, type) and issubclass(target, Backend)):
        raise ConfigurationError(f"Backend for {name!r} is {target!r}, not a Backend subclass")
    return target


def _entry_points() -> dict[str, list[EntryPoint]]:
    """Installed entry points by scheme, read once; a scheme may have several claimants.

    Two claims are an error only when that scheme is used, so an unrelated clash
    does not stop an app that never asks for it.
    """
    global _discovered
    if _discovered is None:
        found: dict[str, list[EntryPoint]] = {}
        for entry in entry_points(group=GROUP):
            claims = found.setdefault(entry.name, [])
            # The same target twice (one distribution seen on two paths) is one claim.
            if all(other.value != entry.value for other in claims):
                claims.append(entry)
        _discovered = found
    return _discovered


def _dist_name(entry: EntryPoint) -> str:
    dist = entry.dist
    return dist.name if dist is not None else "<unknown distribution>"


def _missing_message(name: str) -> str:
    scheme = name.replace(".", "+")
    extra = _INSTALL_HINTS.get(name)
    if extra is not None:
        return (
            f"No session backend is installed for {scheme}:// URLs. "
            f'Install it with: pip install "sanic-cookies[{extra}]"'
        )
    known = ", ".join(registered_schemes()) or "none"
    return (
        f"No session backend is installed for {scheme}:// URLs (installed: {known}). "
        "Install the package that provides it, or call sanic_cookies.register()."
    )
