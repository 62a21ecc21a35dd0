"""Encryption keys: checking what the user configured and building the key ring."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable

from cryptography.fernet import Fernet, MultiFernet

from sanic_cookies import ConfigurationError

__all__ = ["KEYGEN_HINT", "KeyInput", "build_keyring", "parse_keys"]

#: How to make a key; every key error repeats it.
KEYGEN_HINT = "Make a key with: python -m sanic_cookies keygen"

#: What `keys` may be: one key, a comma- or space-separated string of keys, or a list of keys.
KeyInput = str | bytes | Iterable[str | bytes]

# A Fernet key: 32 bytes, urlsafe base64 with its one "=" of padding (44 characters).
_KEY_PATTERN = re.compile(r"[A-Za-z0-9_-]{43}=")
_SEPARATORS = re.compile(r"[\s,]+")


def parse_keys(keys: KeyInput | None) -> list[bytes]:
    """Check `keys` and return them as a list of Fernet keys, the encrypting one first.

    A string may hold several keys separated by commas or whitespace (so
    ``SANIC_SESSION_KEYS="new,old"`` works from the environment). Bytes are
    one key. Repeated keys are kept once, in their first position.

    Raises:
        ConfigurationError: No key, or a key that is not 32 urlsafe-base64 bytes.
            The message never contains the key itself.
    """
    if keys is None:
        raise ConfigurationError(
            "The cookie:// session backend needs encryption keys: set app.config.SESSION_KEYS "
            "to a list of keys (the first encrypts, all decrypt), or pass "
            f"CookieBackend(keys=[...]). {KEYGEN_HINT}"
        )
    if isinstance(keys, str):
        items: list[str | bytes] = [k for k in _SEPARATORS.split(keys) if k]
    elif isinstance(keys, bytes | bytearray):
        items = [bytes(keys)]
    else:
        try:
            items = list(keys)
        except TypeError:
            raise ConfigurationError(
                f"SESSION_KEYS must be a list of keys (str or bytes), got {type(keys).__name__}. "
                f"{KEYGEN_HINT}"
            ) from None
    if not items:
        raise ConfigurationError(
            f"SESSION_KEYS is empty: the cookie:// backend needs at least one key. {KEYGEN_HINT}"
        )
    parsed: list[bytes] = []
    for position, item in enumerate(items):
        key = _check_key(item, position)
        if key not in parsed:
            parsed.append(key)
    return parsed


def build_keyring(keys: list[bytes]) -> MultiFernet:
    """A `MultiFernet` that encrypts with ``keys[0]`` and decrypts with every key."""
    return MultiFernet([Fernet(key) for key in keys])


def _check_key(item: object, position: int) -> bytes:
    if isinstance(item, bytearray):
        item = bytes(item)
    if isinstance(item, bytes):
        try:
            text = item.decode("ascii").strip()
        except UnicodeDecodeError:
            raise _bad_key(position, "raw bytes; a key is urlsafe-base64 text") from None
    elif isinstance(item, str):
        text = item.strip()
    else:
        raise _bad_key(position, f"a {type(item).__name__}, not str or bytes")
    if not _KEY_PATTERN.fullmatch(text):
        raise _bad_key(position, f"{len(text)} characters, not 44 urlsafe-base64 characters")
    try:
        raw = base64.urlsafe_b64decode(text)
    except (binascii.Error, ValueError):  # pragma: no cover - the pattern admits only valid text
        raise _bad_key(position, "not urlsafe base64") from None
    if len(raw) != 32:  # pragma: no cover - 43 characters + "=" always decode to 32 bytes
        raise _bad_key(position, f"{len(raw)} bytes, not 32")
    return text.encode("ascii")


def _bad_key(position: int, why: str) -> ConfigurationError:
    return ConfigurationError(
        f"SESSION_KEYS[{position}] is not a valid key ({why}). A key is 32 random bytes in "
        f"urlsafe base64, 44 characters ending in '='. {KEYGEN_HINT}"
    )
