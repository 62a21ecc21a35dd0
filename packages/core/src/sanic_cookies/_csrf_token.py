"""The CSRF synchronizer token: a secret per session, handed out masked.

The secret (32 bytes from `secrets`) lives in the session under `TOKEN_KEY`. Pages
get it masked with a fresh one-time pad each time (as Django and Rails do), so the
value in a page changes on every response and compression side channels (BREACH)
cannot recover it; `matches` unmasks and compares in constant time.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
import secrets
from collections.abc import MutableMapping
from typing import Any

__all__ = ["TOKEN_KEY", "mask", "matches", "new_secret", "rotate"]

#: The session key that holds the secret (underscored: the library's, not the app's).
TOKEN_KEY = "_csrf"

_SECRET_BYTES = 32
#: The exact shape of a masked token: pad and masked secret, unpadded URL-safe base64.
_MASKED = re.compile(r"[A-Za-z0-9_-]{86}")


def new_secret() -> str:
    """A fresh secret, as stored in the session (43 URL-safe base64 characters)."""
    return _encode(secrets.token_bytes(_SECRET_BYTES))


def mask(secret: str) -> str:
    """`secret` masked with a fresh pad: what a form or a header carries (86 characters)."""
    raw = _decode(secret)
    pad = secrets.token_bytes(len(raw))
    return _encode(pad + _xor(pad, raw))


def matches(submitted: object, secret: object) -> bool:
    """Tell whether `submitted` (a masked token) carries `secret`, in constant time."""
    if not isinstance(submitted, str) or not isinstance(secret, str):
        return False
    if not _MASKED.fullmatch(submitted):
        return False
    try:
        both = _decode(submitted)
        expected = _decode(secret)
    except ValueError:
        return False
    if len(both) != 2 * _SECRET_BYTES or len(expected) != _SECRET_BYTES:
        return False
    pad, masked = both[:_SECRET_BYTES], both[_SECRET_BYTES:]
    return hmac.compare_digest(_xor(pad, masked), expected)


def rotate(data: MutableMapping[str, Any]) -> None:
    """Replace the secret held in `data`, if it holds one (at login: old pages stop working)."""
    if TOKEN_KEY in data:
        data[TOKEN_KEY] = new_secret()


def _xor(a: bytes, b: bytes) -> bytes:
    # One big-int XOR: a byte-by-byte generator costs several times more per request.
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(len(a), "big")


def _encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _decode(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not URL-safe base64") from exc
