"""A short, human label for a User-Agent string: "Firefox on Linux", "Safari on iOS".

For a "your sessions" page, not for feature detection: it knows the common
browsers and systems by the tokens they have sent for years, and nothing else
(no dependency, no database to keep up to date). What it does not recognise is
"Unknown browser" (plus the system, when that is known).
"""

from __future__ import annotations

import re

__all__ = ["UNKNOWN_BROWSER", "user_agent_label"]

#: The label of a User-Agent this parser does not recognise (or an empty one).
UNKNOWN_BROWSER = "Unknown browser"

# Scripts and tools, by a token at the start of (or anywhere in) the string.
# Checked before browsers: a tool's string says nothing about a system.
_TOOLS: tuple[tuple[str, str], ...] = (
    ("curl/", "curl"),
    ("wget/", "Wget"),
    ("python-requests/", "Python requests"),
    ("python-httpx/", "Python httpx"),
    ("python-urllib/", "Python urllib"),
    ("aiohttp/", "Python aiohttp"),
    ("go-http-client/", "Go HTTP client"),
    ("okhttp/", "OkHttp"),
    ("postmanruntime/", "Postman"),
    ("insomnia/", "Insomnia"),
    ("httpie/", "HTTPie"),
    ("java/", "Java HTTP client"),
    ("node-fetch", "Node.js fetch"),
    ("axios/", "axios"),
)

# A crawler names itself "...bot", "...spider" or "...crawler" (Googlebot, bingbot,
# Baiduspider, AhrefsBot); the name is the word that carries it.
_BOT_NAME = re.compile(r"([A-Za-z][A-Za-z0-9_.-]*?(?:bot|spider|crawler))\b", re.IGNORECASE)

# Browsers, first match wins: the order matters, because most strings name several
# (Edge's and Opera's say "Chrome" and "Safari", Chrome's says "Safari").
_BROWSERS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("edg/", "edga/", "edgios/", "edge/"), "Edge"),
    (("opr/", "opera", "opios/", "opt/"), "Opera"),
    (("samsungbrowser/",), "Samsung Internet"),
    (("vivaldi/",), "Vivaldi"),
    (("yabrowser/",), "Yandex Browser"),
    (("ucbrowser/",), "UC Browser"),
    (("firefox/", "fxios/"), "Firefox"),
    (("headlesschrome/",), "Headless Chrome"),
    (("crios/", "chrome/"), "Chrome"),
    (("chromium/",), "Chromium"),
    (("msie ", "trident/"), "Internet Explorer"),
    (("safari/", "applewebkit/"), "Safari"),
)

# Systems, first match wins: iOS strings say "like Mac OS X", Android ones "Linux".
_SYSTEMS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("windows",), "Windows"),
    (("iphone", "ipad", "ipod"), "iOS"),
    (("android",), "Android"),
    (("cros ",), "ChromeOS"),
    (("macintosh", "mac os x"), "macOS"),
    (("freebsd",), "FreeBSD"),
    (("openbsd",), "OpenBSD"),
    (("linux", "x11"), "Linux"),
)


def _first(lowered: str, table: tuple[tuple[tuple[str, ...], str], ...]) -> str | None:
    for tokens, name in table:
        for token in tokens:
            if token in lowered:
                return name
    return None


def user_agent_label(user_agent: str | None) -> str:
    """A short label for `user_agent`: "<browser> on <system>", or what is known of it.

    Examples: ``"Firefox on Linux"``, ``"Chrome on Android"``, ``"Safari on iOS"``,
    ``"Edge on Windows"``, ``"curl"``, ``"Googlebot (bot)"``; ``"Unknown browser"``
    for an empty or unrecognised string (``"Unknown browser on Windows"`` when only
    the system is recognised).

    Args:
        user_agent: A User-Agent header value (may be None or empty).

    Returns:
        The label; at most about 40 characters for any input.
    """
    if not user_agent:
        return UNKNOWN_BROWSER
    lowered = user_agent.lower()
    special = _tool(lowered) or _bot(user_agent, lowered)
    if special is not None:
        return special
    browser = _first(lowered, _BROWSERS)
    system = _first(lowered, _SYSTEMS)
    if browser is None:
        return f"{UNKNOWN_BROWSER} on {system}" if system else UNKNOWN_BROWSER
    return f"{browser} on {system}" if system else browser


def _tool(lowered: str) -> str | None:
    """The name of a command-line tool or library (``curl/8.0``), or None."""
    for token, name in _TOOLS:
        if lowered.startswith(token):
            return name
    return None


def _bot(user_agent: str, lowered: str) -> str | None:
    """``"<name> (bot)"`` for a crawler, or None."""
    if "bot" in lowered or "spider" in lowered or "crawler" in lowered:  # spares the regex
        bot = _BOT_NAME.search(user_agent)
        if bot is not None and "cubot" not in lowered:  # Cubot: a phone maker, not a crawler
            return f"{bot.group(1)[:24]} (bot)"
    return None
