"""Backend URLs: ``scheme://user:password@host:port/path?option=value`` into typed parts.

A backend's `from_url` receives the whole URL and the keyword options from code
or ``SESSION_BACKEND_OPTIONS``. `parse_backend_url` splits the URL, merges the
query options with the keyword ones, converts each to the type of its default
and rejects any option the backend does not take, all with `ConfigurationError`
(raised at start-up, so a typo stops the app instead of being ignored).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, NamedTuple
from urllib.parse import SplitResult, parse_qsl, unquote, urlencode, urlsplit

from ._errors import ConfigurationError

__all__ = ["BackendURL", "parse_backend_url", "redact_url", "split_backend_url"]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class BackendURL(NamedTuple):
    """A backend URL, split, with its options typed (from `parse_backend_url`).

    Attributes:
        scheme: The URL scheme, lower case (``sqlite``).
        username: The user before ``@``, percent-decoded, or None.
        password: The password after ``user:``, percent-decoded, or None.
        host: The host name, percent-decoded (a socket path may be written
            ``%2Fvar%2Frun%2Fkv.sock``), or None.
        port: The port number, or None.
        path: The path, percent-decoded, with its leading ``/`` (``""`` if none).
        options: Every accepted option: its given value (query string or keyword,
            converted to the type of its default), or its default.
    """

    scheme: str
    username: str | None
    password: str | None
    host: str | None
    port: int | None
    path: str
    options: dict[str, Any]


def parse_backend_url(
    url: str, options: Mapping[str, Any] | None = None, *, accepts: Mapping[str, Any]
) -> BackendURL:
    """Split `url` and type its options; call it from `Backend.from_url`.

    Options come from the query string (``?lease=30&create=false``) and from
    `options` (keyword arguments from code or configuration), which override the
    query. Each is converted to the type of its default in `accepts`: `bool`
    (``1/true/yes/on`` or ``0/false/no/off``), `int`, `float` or `str`; a default of
    None accepts a string. For example::

        parsed = parse_backend_url(url, options, accepts={"lease": 30.0, "table": "sessions"})
        parsed.options["lease"]  # a float, 30.0 unless the URL or a keyword said otherwise

    Args:
        url: The whole backend URL.
        options: Keyword options given with the URL.
        accepts: Every option the backend takes, with its default.

    Returns:
        The URL's parts and every accepted option.

    Raises:
        ConfigurationError: The URL is malformed (no scheme, a bad port, an option
            given twice in the query, an unencoded ``#``), an option is unknown, or a value does not
            convert to its option's type.
    """
    where, parts, port = _split(url)
    given = _given_options(where, parts.query, options or {}, accepts)
    typed = {name: _convert(where, name, given.get(name, d), d) for name, d in accepts.items()}
    return BackendURL(
        scheme=parts.scheme.lower(),
        username=_unquoted(parts.username),
        password=_unquoted(parts.password),
        host=_unquoted(parts.hostname),
        port=port,
        path=unquote(parts.path),
        options=typed,
    )


def _split(url: str) -> tuple[str, SplitResult, int | None]:
    """``("scheme://", parts, port)`` of `url`, or `ConfigurationError` if it is malformed."""
    scheme, sep, _ = url.partition("://")
    if not sep or not scheme:
        raise ConfigurationError(
            f"A backend URL looks like 'scheme://host/path', got {redact_url(url)!r}"
        )
    where = f"{scheme.lower()}://"
    if "#" in url:
        # Whatever follows a '#' is a fragment, silently dropped: a path or password
        # containing one would be cut short without a word.
        raise ConfigurationError(
            f"A {where} URL cannot contain '#': percent-encode it as %23 (in a path, a "
            "password, an option)"
        )
    parts = split_backend_url(url)
    if "," in parts.netloc.rpartition("@")[2]:
        raise ConfigurationError(
            f"A {where} URL names one host, got several in {redact_url(url)!r}"
        )
    return where, parts, parts.port


def _given_options(
    where: str, query: str, options: Mapping[str, Any], accepts: Mapping[str, Any]
) -> dict[str, Any]:
    """The options of the query string, overridden by `options`; each must be accepted."""
    given: dict[str, Any] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name in given:
            raise ConfigurationError(f"{where} URL option {name!r} is given twice")
        given[name] = value
    given.update(options)
    unknown = sorted(set(given) - set(accepts))
    if unknown:
        known = ", ".join(sorted(accepts)) or "none"
        raise ConfigurationError(
            f"{where} does not take the option(s) {', '.join(unknown)}; it takes: {known}"
        )
    return given


def _unquoted(value: str | None) -> str | None:
    return unquote(value) if value is not None else None


def _convert(where: str, name: str, value: Any, default: Any) -> Any:
    """`value` of option `name` as the type of its `default` (str for a default of None)."""
    kind = str if default is None else type(default)
    if value is default:  # a default of None included: the value None is it
        return value
    if isinstance(value, str) and kind is not str:
        return _parse(where, name, value, kind)
    if kind is float and _is_int(value):
        return float(value)
    if isinstance(value, kind) and (kind is bool or not isinstance(value, bool)):
        return value  # already of its type (True is no int here)
    shown = "" if _secret(name) else f" {value!r}"
    raise ConfigurationError(
        f"{where} option {name!r} must be {kind.__name__}, got {type(value).__name__}{shown}"
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _parse(where: str, name: str, text: str, kind: type) -> Any:
    if kind is bool:
        lowered = text.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
    elif kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    shown = "another value" if _secret(name) else repr(redact_url(text) if "@" in text else text)
    raise ConfigurationError(f"{where} option {name!r} must be {kind.__name__}, got {shown}")


def split_backend_url(url: str) -> SplitResult:
    """`urllib.parse.urlsplit(url)`, checked: its port reads, and its ``@`` is where it ends
    the credentials.

    A ``#``, ``/``, ``?`` or second ``@`` left as it is in a password moves the
    rest of the password and the host out of the authority: the URL would name
    another host or port, and the text taken for a port may be the password. Such a
    URL (an ``@`` in the path or in an option's name), a port that is not a number
    from 0 to 65535, a scheme urlsplit cannot read (``my_kv://``: the whole URL
    would be a path), a control character (urlsplit deletes tabs and newlines), text
    that is not UTF-8, and a ``#`` anywhere (a fragment, which would cut an option
    or a path short) raise `ConfigurationError` with the URL shown through
    `redact_url`. An authority may list several hosts (``h1:5432,h2:5433``): each
    port must read.
    """
    if not isinstance(url, str):
        raise ConfigurationError(f"A backend URL must be a str, got {type(url).__name__}")
    if not url.isascii() and not _encodes(url):
        # (A byte that is not UTF-8 in the environment or argv arrives as a lone surrogate.)
        raise ConfigurationError("A backend URL must be UTF-8 text: it holds a byte that is not")
    if _UNSAFE.search(url):
        # urlsplit deletes tabs and newlines without a word (a password would change).
        raise ConfigurationError(
            f"A backend URL cannot contain control characters, got {redact_url(url)!r}: "
            "percent-encode them (a tab as %09, a newline as %0A)"
        )
    try:
        parts: SplitResult | None = urlsplit(url)
    except ValueError:  # (its words may quote a password: not shown)
        parts = None
    if parts is None or not _port_reads(parts) or _misread(url, parts):
        raise ConfigurationError(
            f"Malformed URL {redact_url(url)!r}: a port that is not a number from 0 to 65535, "
            "a scheme that is not letters, digits, '+', '-' and '.', or a character left as it "
            "is in a password, or an '@' in the path or an option's name (percent-encode '#', "
            "'/', '?', '@' and ':' as %23, %2F, %3F, %40 and %3A)"
        )
    if "#" in url:
        # What follows a '#' is a fragment, which no backend reads: an option or a path
        # holding one would be cut short without a word (``?prefix=app#2`` reads as "app").
        raise ConfigurationError(
            f"A backend URL cannot contain '#': percent-encode it as %23, got {redact_url(url)!r}"
        )
    return parts


def _encodes(text: str) -> bool:
    try:
        text.encode()
    except UnicodeError:
        return False
    return True


#: Query options whose name contains one of these are shown as ``***`` ("pass" covers
#: password, passwd and passphrase, "key" apikey, api_key and the cookie backend's keys;
#: over-redacting an option is harmless).
_SECRET_WORDS = ("pass", "pwd", "secret", "token", "auth", "credential", "key", "private")

#: What a URL scheme may hold (RFC 3986): urlsplit takes a URL with any other for a path.
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")


def is_url_scheme(text: str) -> bool:
    """Whether `text` can be a URL's scheme (`register` refuses any other)."""
    return _SCHEME.fullmatch(text) is not None


#: Control characters, which a URL never holds as they are (urlsplit deletes tabs and
#: newlines without a word; a space it keeps, and a scheme cannot hold one).
_UNSAFE = re.compile(r"[\x00-\x1f\x7f]")
#: How deep URLs inside a query are redacted; deeper ones are hidden whole.
_NESTING = 3


def redact_url(url: object) -> str:
    """`url` with every password replaced by ``***``: safe for a log line or an error.

    A URL inside the query (such as PostgreSQL's ``?replica=postgresql://...``) and
    every option whose name contains ``pass`` (password, passwd, passphrase), ``pwd``,
    ``secret``, ``token``, ``auth``, ``credential``, ``key`` (apikey, keys) or
    ``private`` (such as Sentinel's ``sentinel_password=``) are redacted too, in a
    query split by ``&`` or by ``;``; a fragment (``#...``) is shown as ``#***``. Of a
    URL that does not parse as written (a ``#``, ``/``, ``?`` or ``@`` left unencoded
    in a password, a missing slash, a scheme urlsplit cannot read, ``user:password``
    with no ``@host``, text that is not a URL at all) only the scheme and the host
    after the last ``@`` are shown. Never raises: what is not a str is shown as its
    type, what cannot be read as ``<unparsable URL>``.

    Use it in every message of a backend that shows its URL.
    """
    if not isinstance(url, str):
        return f"<{type(url).__name__}, not a URL>"
    try:
        return _redacted(url, _NESTING)
    except Exception:  # (a lone surrogate, say): a redactor must not raise in an error path
        return "<unparsable URL>"


def _redacted(url: str, depth: int) -> str:
    """`redact_url` of `url`, with URLs in its query redacted `depth` levels down."""
    parts = urlsplit(url)
    if _misread(url, parts) or not _port_reads(parts) or _UNSAFE.search(url):
        return _misread_shown(url, parts)
    # (';' separates options too for some parsers: split on both, to hide more, not less.)
    pairs = parse_qsl(parts.query.replace(";", "&"), keep_blank_values=True)
    query = _redacted_query(pairs, depth)
    credentials, at, host = parts.netloc.rpartition("@")
    user, colon, _ = credentials.partition(":")
    if query is None and not colon and not parts.fragment:
        return url  # nothing to hide (and nothing re-encoded)
    netloc = f"{user}:***{at}{host}" if colon else parts.netloc
    query = query or parts.query
    # (Not urlunsplit: it drops the '//' of an empty authority, 'cookie://?x' -> 'cookie:?x'.)
    return f"{parts.scheme}://{netloc}{parts.path}" + _tail(query, parts.fragment)


def _tail(query: str, fragment: str) -> str:
    """``?query#***`` as far as there is a query and a fragment (never shown)."""
    return (f"?{query}" if query else "") + ("#***" if fragment else "")


def _misread_shown(url: str, parts: SplitResult) -> str:
    """What of a URL that does not parse as written is safe to show."""
    scheme = f"{parts.scheme}://" if parts.scheme else ""
    if "://" not in url:  # not a URL as written (a connection string, say): nothing of it
        return f"{scheme}***"
    if "@" not in url:
        # "user:password" with no "@host" reads as host:port: the "port" may be a password,
        # and what follows a '/' in it the path.
        return f"{scheme}{parts.hostname or ''}:***"
    # After the last '@', up to the first character a host or path cannot hold.
    where = re.match(r"[^?#&=;]*", url.rpartition("@")[2])
    return f"{scheme}***@{where[0] if where else ''}" + ("?***" if "?" in url else "")


def _port_reads(parts: SplitResult) -> bool:
    """Whether every port of the authority is a number from 0 to 65535 (or absent).

    Each host of a list (``h1:5432,h2:5433``, as PostgreSQL and Sentinel URLs
    have) is read on its own.
    """
    try:
        for host in parts.netloc.rpartition("@")[2].split(","):
            urlsplit(f"//{host}").port  # noqa: B018 (raises ValueError for a bad port)
    except ValueError:
        return False
    return True


def _misread(url: str, parts: SplitResult) -> bool:
    """Whether `url` may not be read as written: its '@' or its scheme may be elsewhere.

    A ``#``, ``/``, ``?`` or a second ``@`` left in a password moves an '@' into the
    fragment, the path or the query. So an '@' in the fragment, in the path, or in an
    option's name is taken for one. An '@' in an option's value is not
    (``?user=admin@server``, ``?prefix=app@v2:``): so a password of digits, then a
    '?', then an '=' before its '@' is not caught. A URL whose scheme urlsplit does not
    read as written (no ``://``, a space or a character a scheme cannot hold) is read
    whole as a path.
    """
    scheme, sep, _ = url.partition("://")
    if not sep or not is_url_scheme(scheme):
        return True
    if "@" not in url:
        return False
    if "@" in parts.fragment or "@" in parts.path:
        return True
    return any("@" in pair.partition("=")[0] for pair in parts.query.split("&"))


def _redacted_query(pairs: list[tuple[str, str]], depth: int) -> str | None:
    """The query with credential options and nested URLs redacted; None if it has none."""
    if not any(_secret(name) or "//" in value for name, value in pairs):
        return None
    return urlencode(
        [(name, _redacted_value(name, value, depth)) for name, value in pairs], safe=":/@*"
    )


def _redacted_value(name: str, value: str, depth: int) -> str:
    if _secret(name) or ("//" in value and depth <= 1):
        return "***"
    return _redacted(value, depth - 1) if "//" in value else value


def _secret(option: str) -> bool:
    lowered = option.lower()
    return any(word in lowered for word in _SECRET_WORDS)
