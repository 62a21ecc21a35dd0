"""Backend options given in the URL's query string (``...?table=web_sessions``).

The options this package knows are taken out of the URL; everything else in
the query (``sslmode``, ``application_name``, ...) stays for the driver.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import SplitResult, parse_qsl, urlencode

from sanic_cookies import ConfigurationError, redact_url, split_backend_url

__all__ = ["check_dsn", "split_url"]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"expected true or false, got {text!r}")


def _optional_float(text: str) -> float | None:
    return None if text.strip().lower() in {"", "none", "off"} else float(text)


_PARSERS: dict[str, Callable[[str], Any]] = {
    "table": str,
    "schema": str,
    "create_table": _bool,
    "command_timeout": float,
    "connect_timeout": float,
    "sweep_interval": _optional_float,
    "sweep_batch": int,
    "lock_scope": str,
    "max_size": int,
    "pool_size": int,
    "max_overflow": int,
    "pool_timeout": float,
    "statement_cache_size": int,
    "replica": str,
}


def split_url(url: str, known: set[str], options: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """Take the options named in `known` out of `url`'s query string.

    Args:
        url: The backend URL.
        known: The option names the backend accepts.
        options: Options given in code; they win over the URL's.

    Returns:
        The URL without those options, and the merged options.

    Raises:
        ConfigurationError: An option in the URL has a value of the wrong type, or the
            URL does not parse (see `sanic_cookies.split_backend_url`).
    """
    parts = check_dsn(url)
    kept: list[tuple[str, str]] = []
    found: dict[str, Any] = {}
    for name, raw in parse_qsl(parts.query, keep_blank_values=True):
        if name in known and name in found:  # (the last would win without a word)
            raise ConfigurationError(f"The URL gives the option {name} twice")
        if name in known and name in _PARSERS:
            try:
                found[name] = _PARSERS[name](raw)
            except ValueError as exc:
                raise ConfigurationError(f"Bad option {name}={raw!r} in the URL: {exc}") from None
        else:
            kept.append((name, raw))
    # (Not urlunsplit: it drops the '//' of an empty authority, which SQLAlchemy needs:
    # 'postgresql+asyncpg:///db?host=...' would become 'postgresql+asyncpg:/db?host=...'.)
    query = urlencode(kept)
    stripped = f"{parts.scheme}://{parts.netloc}{parts.path}" + (f"?{query}" if query else "")
    merged = {**found, **options}
    if isinstance(merged.get("replica"), str):
        check_dsn(merged["replica"])
    return stripped, merged


def check_dsn(url: str) -> SplitResult:
    """`url` split, if asyncpg and SQLAlchemy will read it as it reads.

    Raises:
        ConfigurationError: It does not parse (see `sanic_cookies.split_backend_url`),
            or its password holds an '@' left as it is: both drivers end the password
            at the first '@', where `urlsplit` takes the last.
    """
    parts = split_backend_url(url)
    if parts.netloc.count("@") > 1:
        raise ConfigurationError(
            f"Malformed URL {redact_url(url)!r}: percent-encode '@' in a password as %40 "
            "(in a replica= URL inside the query, as %2540)"
        )
    return parts
