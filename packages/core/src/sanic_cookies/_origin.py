"""Is an unsafe request from this site? The Origin / ``Sec-Fetch-Site`` check of `CSRFProtect`.

The rules, in order (those of Go's ``CrossOriginProtection``, with Django's Referer
rule for HTTPS requests that carry neither header):

1. An ``Origin`` in the trusted list passes.
2. ``Sec-Fetch-Site`` (every browser since 2023): ``same-origin`` and ``none`` (the
   user typed or bookmarked the URL) pass; ``same-site`` and ``cross-site`` fail.
3. Else an ``Origin`` must name this host (``null``, sent from sandboxed frames and
   ``data:`` pages, fails; so does an ``http:`` page posting to an ``https:`` site).
4. Else, over HTTPS, a ``Referer`` must be present and name this host or a trusted
   origin over HTTPS; over plain HTTP a request with no such header passes (it is not
   from a browser, or from one too old to say), and the token check decides.

"This host" is ``request.host`` (Sanic reads ``X-Forwarded-Host`` and ``Forwarded``
only when the app trusts its proxies). Schemes are compared only as in rule 3, so a
TLS-terminating proxy that forwards plain HTTP does not break every form.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from sanic import Request

from ._errors import ConfigurationError

__all__ = ["OriginPolicy"]

# An origin, strictly: scheme://host[:port] and nothing else (no path, query, fragment or
# user), the host made of valid DNS labels or an IPv6 literal, so that a wildcard suffix
# can only match whole labels ("https://x.evil.com/.partner.example" is no origin at all).
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOST = rf"(?:{_LABEL}\.)*{_LABEL}|\[[0-9a-f:.]+\]"
_ORIGIN = re.compile(
    rf"(?P<scheme>https?)://(?P<wild>\*\.)?(?P<host>{_HOST})(?P<port>:[0-9]{{1,5}})?"
)


def parse_origin(origin: str) -> str | None:
    """`origin` in lower case if it is exactly ``http(s)://host[:port]``, else None."""
    origin = origin.lower()
    match = _ORIGIN.fullmatch(origin)
    return origin if match is not None and not match["wild"] else None


class OriginPolicy:
    """The trusted origins and the check of one request's origin headers."""

    def __init__(self, trusted_origins: Iterable[str]) -> None:
        if isinstance(trusted_origins, str):
            raise ConfigurationError(
                "trusted_origins must be a list of origins, not one string: "
                f"write [{trusted_origins!r}]"
            )
        self.exact: frozenset[str] = frozenset()
        self.wildcards: tuple[tuple[str, str, str], ...] = ()
        exact: set[str] = set()
        wildcards: list[tuple[str, str, str]] = []
        for origin in trusted_origins:
            match = _ORIGIN.fullmatch(origin.lower()) if isinstance(origin, str) else None
            if match is None:
                raise ConfigurationError(
                    "A trusted origin is a scheme and a host, optionally with a port or a "
                    f"leading '*.' for subdomains, such as 'https://app.example.com'; "
                    f"got {origin!r}{_punycode_hint(origin)}"
                )
            port = match["port"] or ""
            if match["wild"]:
                wildcards.append((match["scheme"], "." + match["host"], port))
            else:
                exact.add(f"{match['scheme']}://{match['host']}{port}")
        self.exact = frozenset(exact)
        self.wildcards = tuple(wildcards)

    def is_trusted(self, origin: str) -> bool:
        """Tell whether `origin` (``scheme://host[:port]``) is in the trusted list."""
        parsed = parse_origin(origin)
        if parsed is None:
            return False
        if parsed in self.exact:
            return True
        match = _ORIGIN.fullmatch(parsed)
        assert match is not None  # parse_origin said so
        scheme, host, port = match["scheme"], match["host"], match["port"] or ""
        return any(
            scheme == s and port == p and host.endswith(suffix) and len(host) > len(suffix)
            for s, suffix, p in self.wildcards
        )

    def refusal(self, request: Request) -> str | None:
        """Why `request` looks cross-site (for the log), or None if it passes."""
        headers = request.headers
        origin = headers.get("origin")
        if origin is not None and origin != "null" and self.is_trusted(origin):
            return None
        site = headers.get("sec-fetch-site")
        if site is not None:
            return _fetch_site_refusal(site, origin)
        secure = request.scheme in ("https", "wss")
        if origin == "null":
            return "Origin is 'null'"
        if origin is not None:
            return self._same_host(origin, secure, "Origin", request)
        if not secure:
            return None
        return self._referer_refusal(headers.get("referer"), request)

    def _referer_refusal(self, referer: str | None, request: Request) -> str | None:
        """Django's rule for an HTTPS request with neither Origin nor Sec-Fetch-Site."""
        if not referer:
            return "no Origin, Sec-Fetch-Site or Referer on an HTTPS request"
        try:
            parts = urlsplit(referer)
        except ValueError:
            return "the Referer is malformed"
        if parts.scheme != "https" or not parts.netloc:
            return "the Referer is not an https:// URL"
        source = f"https://{parts.netloc}"
        if self.is_trusted(source):
            return None
        return self._same_host(source, True, "Referer", request)

    @staticmethod
    def _same_host(source: str, secure: bool, header: str, request: Request) -> str | None:
        scheme, sep, host = source.lower().partition("://")
        if not sep or scheme not in ("http", "https"):
            return f"the {header} {source!r} is malformed"
        if secure and scheme != "https":
            return f"the {header} {source!r} is not secure but this site is"
        if host != request.host.lower():
            return f"the {header} {source!r} is not this site ({request.host!r}) nor trusted"
        return None


def _fetch_site_refusal(site: str, origin: str | None) -> str | None:
    """The browser said where the request comes from: only this site (or the user) passes."""
    if site in ("same-origin", "none"):
        return None
    return f"Sec-Fetch-Site is {site!r}" + (
        f" and Origin {origin!r} is not trusted" if origin else ""
    )


def _punycode_hint(origin: object) -> str:
    """For an internationalized host, the ASCII (punycode) origin to write instead."""
    if not isinstance(origin, str) or origin.isascii():
        return ""
    scheme, sep, rest = origin.partition("://")
    host, colon, port = rest.partition(":")
    wild = "*." if host.startswith("*.") else ""
    try:
        ascii_host = host.removeprefix(wild).encode("idna").decode("ascii")
    except UnicodeError:
        return ""
    ascii_origin = f"{scheme}{sep}{wild}{ascii_host}{colon}{port}"
    return f" (write an internationalized host in its ASCII form: {ascii_origin!r})"
