"""What a login records about the device it came from: its User-Agent and IP address.

Both come from the client (the IP through the proxies Sanic is told to trust),
so both are capped in length and cleaned of characters no store can hold: a
login never fails, and a record never grows, because of a strange header.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from sanic import Request

from ._errors import ConfigurationError

__all__ = ["MAX_IP_LENGTH", "MAX_USER_AGENT_LENGTH", "client_device", "resolve_store_ip"]

#: The most characters of a User-Agent a session keeps (real ones are 100-200).
MAX_USER_AGENT_LENGTH = 256

#: The most characters of an IP address a session keeps: the longest IPv6 text
#: form (an IPv4-mapped one) is 45.
MAX_IP_LENGTH = 45


def _clean(text: str, cap: int) -> str:
    text = text[:cap]
    if text.isprintable():  # every real header: no per-character work
        return text
    # Drops control characters (PostgreSQL refuses NUL) and lone surrogates (not UTF-8).
    return "".join(char for char in text if char.isprintable())


def _ip_text(address: str) -> str:
    """`address` as Sanic gives it, in its canonical form if it is an IP address.

    Sanic brackets IPv6 ("[2001:db8::1]"); a proxy may also forward an
    obfuscated name ("_hidden", RFC 7239) or a UNIX socket path, kept as text.
    """
    candidate = address[1:-1] if address.startswith("[") and address.endswith("]") else address
    try:
        return str(ipaddress.ip_address(candidate))[:MAX_IP_LENGTH]  # a scope id may be long
    except ValueError:
        return _clean(address, MAX_IP_LENGTH)


def client_device(request: Request, *, store_ip: bool = True) -> tuple[str, str]:
    """The User-Agent and client IP of `request`, capped and cleaned ("" for unknown).

    The IP is ``request.client_ip``: the address the trusted proxies forwarded
    (Sanic's ``PROXIES_COUNT``, ``FORWARDED_SECRET`` and ``REAL_IP_HEADER``
    settings say which to trust), else the socket's peer.

    Args:
        request: The request logging in.
        store_ip: False: the IP is not read ("" is returned for it).
    """
    user_agent = _clean(request.headers.get("user-agent", ""), MAX_USER_AGENT_LENGTH)
    ip = _ip_text(request.client_ip) if store_ip and request.client_ip else ""
    return user_agent, ip


def resolve_store_ip(given: bool | None, app_config: Mapping[str, Any], prefix: str) -> bool:
    """`store_ip` from the argument, else ``<prefix>STORE_IP``, else True.

    Raises:
        ConfigurationError: Not a bool.
    """
    setting = prefix + "STORE_IP"
    value = app_config.get(setting, True) if given is None else given
    if not isinstance(value, bool):
        raise ConfigurationError(f"store_ip ({setting}) must be True or False; got {value!r}")
    return value
