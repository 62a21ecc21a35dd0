"""sanic-cookies-cookie 1.0.0's token format, kept to measure the new one against it.

`CookieBackendV1` is today's `CookieBackend` sealing and opening tokens the way 1.0.0
did: msgpack deflated when that is smaller, then Fernet (AES-128-CBC + HMAC-SHA256)
through a `MultiFernet` that tries each key in turn, with the same strict base64
checks. Only the benchmark uses it (``bench.apps``' ``cookie-1.0`` app, and
``bench.memsize``' cookie sizes): the library writes the new format only.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import struct
import zlib

import msgspec
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from sanic_cookies import SessionTooLarge
from sanic_cookies.backends.cookie import CookieBackend
from sanic_cookies.backends.cookie._backend import now
from sanic_cookies.backends.cookie._keys import KeyInput, parse_keys
from sanic_cookies.backends.cookie._token import MAX_PLAINTEXT, SID_BYTES, Opened, TokenError

__all__ = ["CookieBackendV1"]

_PLAIN, _DEFLATE = 0, 1
_FERNET_VERSION = 0x80
_FERNET_OVERHEAD = 1 + 8 + 16 + 32
_TOKEN_CHARS = re.compile(r"[A-Za-z0-9_-]+")
_MAX_TOKEN_CHARS = 8192
_MIN_TOKEN_CHARS = (_FERNET_OVERHEAD + 16) * 4 // 3


class _Payload(msgspec.Struct, array_like=True, frozen=True):
    sid: bytes
    ttl: float
    deadline: float
    value: bytes


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(_Payload)


def _pack_plaintext(sid: bytes, ttl: float, deadline: float, value: bytes) -> bytes:
    packed = _encoder.encode(_Payload(sid=sid, ttl=ttl, deadline=deadline, value=value))
    deflated = zlib.compress(packed, 9, wbits=-15)
    if len(deflated) < len(packed):
        return bytes((_DEFLATE,)) + deflated
    return bytes((_PLAIN,)) + packed


def _predict_token_length(plaintext_length: int) -> int:
    ciphertext = (plaintext_length // 16 + 1) * 16
    raw = _FERNET_OVERHEAD + ciphertext
    return (raw * 4 + 2) // 3


def _open_token(keyring: MultiFernet, token: object) -> Opened:
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


class CookieBackendV1(CookieBackend):
    """`CookieBackend` writing and reading 1.0.0's Fernet tokens (benchmark only)."""

    def __init__(self, keys: KeyInput | None = None, **options: object) -> None:
        super().__init__(keys, **options)  # type: ignore[arg-type]
        self._fernet = MultiFernet([Fernet(key) for key in parse_keys(keys)])

    async def encode_cookie(
        self,
        value: bytes,
        ttl: float,
        *,
        previous: str | None = None,
        deadline: float | None = None,
    ) -> str:
        """1.0.0's `encode_cookie`: deflate when smaller, then Fernet."""
        if not ttl > 0 or math.isinf(ttl):
            raise ValueError(f"ttl must be a positive, finite number of seconds, got {ttl!r}")
        t = now()
        issued = int(t)
        end = t + ttl if deadline is None else min(deadline, t + ttl)
        sid = self._session_id(previous)
        plaintext = _pack_plaintext(sid, end - issued, end if deadline is None else deadline, value)
        if len(plaintext) > MAX_PLAINTEXT:
            raise SessionTooLarge(len(plaintext), MAX_PLAINTEXT)
        size = _predict_token_length(len(plaintext))
        if size > self.max_cookie_size:
            raise SessionTooLarge(size, self.max_cookie_size)
        token = self._fernet.encrypt_at_time(plaintext, issued)
        return token.rstrip(b"=").decode("ascii")

    def _open(self, token: object) -> Opened | None:
        try:
            return _open_token(self._fernet, token)
        except TokenError:
            return None
