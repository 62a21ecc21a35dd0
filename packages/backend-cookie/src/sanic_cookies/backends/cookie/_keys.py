"""Encryption keys: checking what the user configured and building the key ring."""

from __future__ import annotations

import base64
import binascii
import itertools
import re
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.fernet import Fernet, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from sanic_cookies import ConfigurationError

__all__ = ["KEYGEN_HINT", "KEY_ID_BYTES", "KeyInput", "Keyring", "build_keyring", "parse_keys"]

#: How to make a key; every key error repeats it.
KEYGEN_HINT = "Make a key with: python -m sanic_cookies keygen"

#: What `keys` may be: one key, a comma- or space-separated string of keys, or a list of keys.
KeyInput = str | bytes | Iterable[str | bytes]

# A Fernet key: 32 bytes, urlsafe base64 with its one "=" of padding (44 characters).
_KEY_PATTERN = re.compile(r"[A-Za-z0-9_-]{43}=")
_SEPARATORS = re.compile(r"[\s,]+")
# A key of 32 random bytes has about 28 distinct byte values; fewer than this is
# not random (a repeated byte, a short word repeated, a counter): far below its
# nominal 256 bits, and guessable. (A random key has fewer than 16 with odds of
# about 1 in 10^16.)
_MIN_DISTINCT_BYTES = 16
# Longest repeated pattern refused: 16 bytes twice (b"0123456789abcdef" * 2). A random
# key repeats a 16-byte pattern with odds of 1 in 2^128.
_MAX_PERIOD = 16

#: Bytes of the key id in a token's header.
KEY_ID_BYTES = 4
# What the token key and key id are derived for (HKDF "info"): the AEAD never uses
# the configured bytes themselves, which 1.0's Fernet tokens also use.
_HKDF_INFO = b"sanic-cookies token v2: AES-256-GCM key and key id"


def parse_keys(keys: KeyInput | None) -> list[bytes]:
    """Check `keys` and return them as a list of Fernet keys, the encrypting one first.

    A string may hold several keys separated by commas or whitespace (so
    ``SANIC_SESSION_KEYS="new,old"`` works from the environment). Bytes are
    one key. Repeated keys are kept once, in their first position.

    Raises:
        ConfigurationError: No key, a key that is not 32 urlsafe-base64 bytes, or a
            degenerate one (too few distinct byte values, printable text, a
            counter or a repeated pattern: not random).
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


@dataclass(frozen=True, slots=True)
class Keyring:
    """The configured keys, ready for the token format.

    Attributes:
        key_id: The id of the encrypting key (the first), written in each token's header.
        aead: The AES-256-GCM cipher of the encrypting key.
        by_id: Every key's cipher(s) by key id (a list: two keys could share an id).
        legacy: A `MultiFernet` of every key, to read 1.0 (Fernet) tokens.
    """

    key_id: bytes
    aead: AESGCM
    by_id: dict[bytes, list[AESGCM]]
    legacy: MultiFernet


def build_keyring(keys: list[bytes]) -> Keyring:
    """A `Keyring` that encrypts with ``keys[0]`` and decrypts with every key."""
    by_id: dict[bytes, list[AESGCM]] = {}
    first: tuple[bytes, AESGCM] | None = None
    for key in keys:
        derived = HKDF(
            algorithm=hashes.SHA256(), length=32 + KEY_ID_BYTES, salt=None, info=_HKDF_INFO
        ).derive(base64.urlsafe_b64decode(key))
        key_id, aead = derived[32:], AESGCM(derived[:32])
        by_id.setdefault(key_id, []).append(aead)
        if first is None:
            first = (key_id, aead)
    if first is None:
        raise ConfigurationError(f"No encryption key. {KEYGEN_HINT}")
    return Keyring(
        key_id=first[0],
        aead=first[1],
        by_id=by_id,
        legacy=MultiFernet([Fernet(key) for key in keys]),
    )


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
        if len(text) == 44:
            why = "44 characters, but not urlsafe base64 ending in '='"
        else:
            why = f"{len(text)} characters instead of 44"
        raise _bad_key(position, why)
    try:
        raw = base64.urlsafe_b64decode(text)
    except (binascii.Error, ValueError):  # pragma: no cover - the pattern admits only valid text
        raise _bad_key(position, "not urlsafe base64") from None
    if len(raw) != 32:  # pragma: no cover - 43 characters + "=" always decode to 32 bytes
        raise _bad_key(position, f"{len(raw)} bytes, not 32")
    pattern = _not_random(raw)
    if pattern is not None:
        raise _bad_key(position, f"its 32 bytes {pattern}: not random, so guessable")
    return text.encode("ascii")


def _not_random(raw: bytes) -> str | None:
    """Why `raw` was made by hand rather than drawn at random, or None.

    Each test passes a random key except with odds far below 1 in 10^13.
    """
    distinct = len(set(raw))
    if distinct < _MIN_DISTINCT_BYTES:
        return f"hold only {distinct} distinct value(s)"
    # A passphrase: all 32 bytes printable ASCII ((95/256)^32, about 1 in 10^14, by chance).
    if all(0x20 <= byte <= 0x7E for byte in raw):
        return "are all printable ASCII text (a passphrase)"
    # A counter or a stride: bytes(range(32)), or a short pattern added to a step.
    steps = {(b - a) % 256 for a, b in itertools.pairwise(raw)}
    if len(steps) == 1:
        return "count up by a fixed step"
    for period in range(2, _MAX_PERIOD + 1):
        if all(raw[i] == raw[i - period] for i in range(period, len(raw))):
            return f"repeat a pattern of {period} bytes"
    return None


def _bad_key(position: int, why: str) -> ConfigurationError:
    return ConfigurationError(
        f"SESSION_KEYS[{position}] is not a valid key ({why}). A key is 32 random bytes in "
        f"urlsafe base64, 44 characters ending in '='. {KEYGEN_HINT}"
    )
