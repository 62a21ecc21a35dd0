"""The token format: what goes inside the encrypted cookie, and how it is sealed.

A token is a Fernet token (AES-128-CBC + HMAC-SHA256, with the issue time in
whole seconds in its authenticated header) in urlsafe base64 *without* the
``=`` padding, so a cookie never needs quoting. Its plaintext is one flag byte
followed by a msgpack array::

    [sid, ttl, deadline, value]

* ``sid`` - 16 random bytes naming the session across its tokens: every write
  of one session keeps it, login (id rotation) and logout change it. The
  revocation list is keyed by it, so revoking the newest token also revokes
  every older copy of the same session.
* ``ttl`` - seconds the token is valid after its Fernet issue time.
* ``deadline`` - the session's absolute end (epoch seconds).
* ``value`` - the core's encoded record, opaque here.

The flag byte says whether the msgpack bytes are stored plain (0) or
deflate-compressed (1); compression is used only when it is smaller.

Decoding is strict: a token must be the canonical encoding of its bytes, so
two different cookie strings never decrypt to the same session.
"""

from __future__ import annotations

import base64
import binascii
import re
import struct
import zlib
from typing import NamedTuple

import msgspec
from cryptography.fernet import InvalidToken, MultiFernet

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
#: The most plaintext bytes a token may carry once decompressed (defence in depth:
#: only a key holder can make a token, but a bug should not inflate gigabytes).
MAX_PLAINTEXT = 1 << 20

_PLAIN, _DEFLATE = 0, 1
_FERNET_VERSION = 0x80
# Fernet: version (1) + timestamp (8) + IV (16) + AES-CBC ciphertext + HMAC (32).
_FERNET_OVERHEAD = 1 + 8 + 16 + 32
_TOKEN_CHARS = re.compile(r"[A-Za-z0-9_-]+")
# Anything longer cannot be a token we wrote (cookies stop at about 4 KB).
_MAX_TOKEN_CHARS = 8192
_MIN_TOKEN_CHARS = (_FERNET_OVERHEAD + 16) * 4 // 3


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
        issued: The Fernet issue time (whole epoch seconds).
        expires_at: ``issued + ttl``: when this token stops being valid.
        deadline: The session's absolute end.
        value: The core's record bytes.
    """

    sid: bytes
    issued: int
    expires_at: float
    deadline: float
    value: bytes


def pack_plaintext(sid: bytes, ttl: float, deadline: float, value: bytes) -> bytes:
    """Encode and, when that is smaller, compress the plaintext of a token."""
    packed = _encoder.encode(_Payload(sid=sid, ttl=ttl, deadline=deadline, value=value))
    # Raw deflate (no zlib header and checksum: the HMAC already guards integrity).
    deflated = zlib.compress(packed, 9, wbits=-15)
    if len(deflated) < len(packed):
        return bytes((_DEFLATE,)) + deflated
    return bytes((_PLAIN,)) + packed


def predict_token_length(plaintext_length: int) -> int:
    """Characters of the token `seal` makes from `plaintext_length` bytes (no padding)."""
    ciphertext = (plaintext_length // 16 + 1) * 16  # AES-CBC with PKCS7 padding
    raw = _FERNET_OVERHEAD + ciphertext
    return (raw * 4 + 2) // 3


def seal(keyring: MultiFernet, plaintext: bytes, issued: int) -> str:
    """Encrypt `plaintext` with the first key, stamped `issued`; return the unpadded token."""
    token = keyring.encrypt_at_time(plaintext, issued)
    return token.rstrip(b"=").decode("ascii")


def open_token(keyring: MultiFernet, token: object) -> Opened:
    """Check, decrypt and decode `token` (any object, from a cookie).

    Expiry is *not* checked here (the caller compares `Opened.expires_at` and
    `Opened.deadline` with its clock).

    Raises:
        TokenError: `token` is not a valid token under any key of `keyring`.
    """
    if not isinstance(token, str):
        raise TokenError(f"not a string but {type(token).__name__}")
    if not _MIN_TOKEN_CHARS <= len(token) <= _MAX_TOKEN_CHARS:
        raise TokenError(f"{len(token)} characters, not a token's length")
    if not _TOKEN_CHARS.fullmatch(token):
        raise TokenError("characters outside urlsafe base64")
    padded = token + "=" * (-len(token) % 4)
    try:
        raw = base64.urlsafe_b64decode(padded)
    except (binascii.Error, ValueError):
        raise TokenError("not base64") from None
    # One string per token: reject other spellings of the same bytes (stray padding bits).
    if base64.urlsafe_b64encode(raw).decode("ascii") != padded:
        raise TokenError("non-canonical base64")
    if raw[0] != _FERNET_VERSION:
        raise TokenError("unknown token version")
    try:
        plaintext = keyring.decrypt(padded)
    except InvalidToken:
        raise TokenError("does not decrypt under any configured key") from None
    (issued,) = struct.unpack(">Q", raw[1:9])
    payload = _decode_plaintext(plaintext)
    if len(payload.sid) != SID_BYTES:
        raise TokenError("malformed session id")
    return Opened(
        sid=payload.sid,
        issued=issued,
        expires_at=issued + payload.ttl,
        deadline=payload.deadline,
        value=payload.value,
    )


def _decode_plaintext(plaintext: bytes) -> _Payload:
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
    try:
        return _decoder.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        raise TokenError("malformed payload") from None
