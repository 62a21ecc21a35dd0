"""The token format: what goes inside the encrypted cookie, and how it is sealed.

A token is urlsafe base64 *without* ``=`` padding (a cookie never needs quoting)
of these bytes (version 2, written since 1.1)::

    offset  size  field
    0       1     version: 0x02
    1       4     key id: names the key that sealed the token (derived from it)
    5       8     issue time: milliseconds since the epoch, unsigned big-endian
    13      12    nonce: random
    25      n     ciphertext of the plaintext (n bytes: no padding)
    25 + n  16    GCM tag

sealed with AES-256-GCM under a key derived from the configured one (HKDF-SHA256),
with bytes 0-12 (version, key id, issue time) as associated data: the header is
authenticated without being encrypted, so the key id picks the key directly and a
changed header, key id, nonce, ciphertext or tag fails the one decryption.

The plaintext is a msgpack array, *never compressed* (a compressed length would
tell an attacker how well their input matches a secret stored next to it: the
CRIME/BREACH attack)::

    [sid, ttl, deadline, value]

* ``sid`` - 16 random bytes naming the session across its tokens: every write
  of one session keeps it, login (id rotation) and logout change it. The
  revocation list is keyed by it, so revoking the newest token also revokes
  every older copy of the same session.
* ``ttl`` - seconds the token is valid after its issue time.
* ``deadline`` - the session's absolute end (epoch seconds).
* ``value`` - the core's encoded record, opaque here.

The token's length is a function of the plaintext's length alone: 25 + n + 16
bytes, 4/3 of that in characters.

1.0 tokens (Fernet: version byte 0x80, AES-128-CBC + HMAC-SHA256, a flag byte then
the msgpack array, deflated when that was smaller) are still read, never written.

Decoding is strict: a token must be the canonical encoding of its bytes, so
two different cookie strings never decrypt to the same session.
"""

from __future__ import annotations

import binascii
import math
import os
import struct
import zlib
from typing import NamedTuple

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.fernet import InvalidToken

from ._keys import KEY_ID_BYTES, Keyring

_isfinite = math.isfinite  # one name lookup on the hot path

__all__ = [
    "MAX_PLAINTEXT",
    "SID_BYTES",
    "Opened",
    "TokenError",
    "open_token",
    "pack_plaintext",
    "predict_token_length",
    "seal",
]

#: Bytes of the per-session id inside a token.
SID_BYTES = 16
#: The most plaintext bytes a token may carry (defence in depth: only a key holder
#: can make a token, but a bug should not inflate gigabytes from a 1.0 token).
MAX_PLAINTEXT = 1 << 20

_VERSION = 0x02
_NONCE_BYTES = 12
_TAG_BYTES = 16
_AAD_END = 1 + KEY_ID_BYTES + 8
_HEADER_BYTES = _AAD_END + _NONCE_BYTES
_OVERHEAD = _HEADER_BYTES + _TAG_BYTES
_HEADER = struct.Struct(f">B{KEY_ID_BYTES}sQ")

# 1.0 tokens: Fernet's version (1) + timestamp (8) + IV (16) + AES-CBC ciphertext + HMAC (32).
_FERNET_VERSION = 0x80
_FERNET_OVERHEAD = 1 + 8 + 16 + 32
_PLAIN, _DEFLATE = 0, 1

_FROM_URLSAFE = bytes.maketrans(b"-_", b"+/")
_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")
_PADDING = {0: b"", 2: b"==", 3: b"="}
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
# Anything longer cannot be a token we wrote (cookies stop at about 4 KB).
_MAX_TOKEN_CHARS = 8192
_MIN_TOKEN_CHARS = (_OVERHEAD * 4 + 2) // 3


class _Payload(msgspec.Struct, array_like=True, frozen=True):
    sid: bytes
    ttl: float
    deadline: float
    value: bytes


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(_Payload)


class TokenError(Exception):
    """A cookie value that is not a token of ours; the message says why (for debug logs)."""


class Opened(NamedTuple):
    """The content of a valid token.

    Attributes:
        sid: The session's id across its tokens.
        issued: The issue time (epoch seconds; whole seconds in a 1.0 token).
        expires_at: ``issued + ttl``: when this token stops being valid.
        deadline: The session's absolute end.
        value: The core's record bytes.
        legacy: True for a 1.0 (Fernet) token.
    """

    sid: bytes
    issued: float
    expires_at: float
    deadline: float
    value: bytes
    legacy: bool = False


def pack_plaintext(sid: bytes, ttl: float, deadline: float, value: bytes) -> bytes:
    """Encode the plaintext of a token (never compressed: see the module docstring)."""
    # float(): msgpack writes a float in 9 bytes whatever its value, an int in 1 to 9,
    # so the plaintext's length depends only on the length of `value`.
    ttl, deadline = float(ttl), float(deadline)
    if not (math.isfinite(ttl) and math.isfinite(deadline)):
        # inf/NaN would read back as a login that never expires.
        raise ValueError(f"a token's ttl and deadline must be finite, got {ttl!r}, {deadline!r}")
    return _encoder.encode(_Payload(sid, ttl, deadline, value))


def predict_token_length(plaintext_length: int) -> int:
    """Characters of the token `seal` makes from `plaintext_length` bytes (no padding)."""
    return ((_OVERHEAD + plaintext_length) * 4 + 2) // 3


def seal(keyring: Keyring, plaintext: bytes, issued_ms: int) -> str:
    """Encrypt `plaintext` with the first key, stamped `issued_ms`; return the unpadded token."""
    header = _HEADER.pack(_VERSION, keyring.key_id, issued_ms)
    nonce = os.urandom(_NONCE_BYTES)
    sealed = keyring.aead.encrypt(nonce, plaintext, header)
    # binascii directly: base64.urlsafe_b64encode is two Python calls around it.
    encoded = binascii.b2a_base64(header + nonce + sealed, newline=False)
    return encoded.translate(_TO_URLSAFE).rstrip(b"=").decode("ascii")


def open_token(keyring: Keyring, token: object) -> Opened:
    """Check, decrypt and decode `token` (any object, from a cookie).

    Expiry is *not* checked here (the caller compares `Opened.expires_at` and
    `Opened.deadline` with its clock).

    Raises:
        TokenError: `token` is not a valid token under any key of `keyring`.
    """
    text = _checked_text(token)
    raw = _decoded(text)
    version = raw[0]
    if version == _VERSION:
        return _open_v2(keyring, raw)
    if version == _FERNET_VERSION:
        return _open_fernet(keyring, text, raw)
    raise TokenError("unknown token version")


def _checked_text(token: object) -> str:
    """`token`, if it is a string of a token's length in the urlsafe base64 alphabet."""
    if not isinstance(token, str):
        raise TokenError(f"not a string but {type(token).__name__}")
    if not _MIN_TOKEN_CHARS <= len(token) <= _MAX_TOKEN_CHARS:
        raise TokenError(f"{len(token)} characters, not a token's length")
    # Strict base64 after mapping "-_" to "+/" refuses every other character; "+", "/"
    # and "=" (the standard alphabet, padding) are refused first.
    if not token.isascii() or "+" in token or "/" in token or "=" in token:
        raise TokenError("characters outside urlsafe base64")
    return token


def _decoded(token: str) -> bytes:
    """The bytes of `token`, unpadded urlsafe base64 in its one canonical spelling."""
    # One string per token: reject other spellings of the same bytes (a length no
    # encoding has, or stray bits in the last character).
    tail = len(token) % 4
    if tail == 1 or (
        tail and _ALPHABET.find(token[-1]) & (0x0F if tail == 2 else 0x03)  # -1: not base64
    ):
        raise TokenError("non-canonical base64")
    try:
        return binascii.a2b_base64(
            token.encode("ascii").translate(_FROM_URLSAFE) + _PADDING[tail], strict_mode=True
        )
    except binascii.Error:
        raise TokenError("characters outside urlsafe base64") from None


def _open_v2(keyring: Keyring, raw: bytes) -> Opened:
    _, key_id, issued_ms = _HEADER.unpack_from(raw)
    candidates = keyring.by_id.get(key_id)
    if candidates is None:
        raise TokenError("sealed by a key that is not configured")
    # Slices of bytes: copying a cookie's few hundred bytes costs less than making the
    # memoryviews that would spare it, and than handing those to the cipher.
    nonce, header, sealed = raw[_AAD_END:_HEADER_BYTES], raw[:_AAD_END], raw[_HEADER_BYTES:]
    for aead in candidates:
        try:
            plaintext = aead.decrypt(nonce, sealed, header)
            break
        except InvalidTag:
            continue
    else:
        raise TokenError("does not decrypt (tampered, or a key id collision)")
    try:
        payload = _decoder.decode(plaintext)
    except (msgspec.DecodeError, msgspec.ValidationError):
        raise TokenError("malformed payload") from None
    if len(payload.sid) != SID_BYTES:
        raise TokenError("malformed session id")
    if not (_isfinite(payload.ttl) and _isfinite(payload.deadline)):
        raise TokenError("non-finite ttl or deadline")
    issued = issued_ms / 1000
    # tuple.__new__: the NamedTuple's own __new__ is one more Python call per request.
    return tuple.__new__(
        Opened, (payload.sid, issued, issued + payload.ttl, payload.deadline, payload.value, False)
    )


def _open_fernet(keyring: Keyring, token: str, raw: bytes) -> Opened:
    if len(raw) < _FERNET_OVERHEAD + 16:
        raise TokenError("too short for a 1.0 token")
    try:
        plaintext = keyring.legacy.decrypt(token + "=" * (-len(token) % 4))
    except InvalidToken:
        raise TokenError("1.0 token that does not decrypt under any configured key") from None
    (issued,) = struct.unpack(">Q", raw[1:9])
    return _opened(_decode_legacy_plaintext(plaintext), float(issued), legacy=True)


def _opened(payload: _Payload, issued: float, *, legacy: bool) -> Opened:
    if len(payload.sid) != SID_BYTES:
        raise TokenError("malformed session id")
    if not (_isfinite(payload.ttl) and _isfinite(payload.deadline)):
        raise TokenError("non-finite ttl or deadline")
    return Opened(
        sid=payload.sid,
        issued=issued,
        expires_at=issued + payload.ttl,
        deadline=payload.deadline,
        value=payload.value,
        legacy=legacy,
    )


def _decode_payload(body: bytes) -> _Payload:
    try:
        return _decoder.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        raise TokenError("malformed payload") from None


def _decode_legacy_plaintext(plaintext: bytes) -> _Payload:
    # 1.0: a flag byte, then msgpack, deflated (flag 1) or not (flag 0). Inflating on
    # read leaks nothing: the length an attacker sees is that of the token they sent.
    if not plaintext:
        raise TokenError("empty plaintext")
    flag, body = plaintext[0], plaintext[1:]
    if flag == _DEFLATE:
        decompressor = zlib.decompressobj(-15)
        try:
            body = decompressor.decompress(body, MAX_PLAINTEXT)
        except zlib.error:
            raise TokenError("corrupt compressed payload") from None
        if decompressor.unconsumed_tail or not decompressor.eof:
            raise TokenError("compressed payload too large or truncated")
    elif flag != _PLAIN:
        raise TokenError(f"unknown payload flag {flag}")
    return _decode_payload(body)
