"""What a backend stores for one session: a msgspec struct, encoded as JSON.

Backends never look inside: they keep the encoded bytes and a TTL. The core
decodes the record to enforce the absolute lifetime and to list a user's
sessions. The session's own data sits in the record as raw JSON so it is
encoded once per write and can be compared byte for byte to detect changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from ._errors import SessionSerializationError

__all__ = [
    "AuthInfo",
    "SessionRecord",
    "decode_data",
    "decode_record",
    "encode_data",
    "encode_record",
]


class AuthInfo(msgspec.Struct, array_like=True, omit_defaults=True):
    """Who is logged in to a session (written by `AuthSession.login_user`).

    The device fields came after 1.0 and sit at the end with defaults, so a
    1.0 record (an array without them) still decodes. Empty means not recorded.

    Attributes:
        user: What `login_user` stored.
        user_id: The user-index id of `user`.
        login_at: When the login happened (epoch seconds).
        remember: A remembered (persistent-cookie) login.
        ua: The login's User-Agent header, capped (see `sanic_cookies._device`).
        ip: The login's client IP address, unless IP storage is off.
    """

    user: Any
    user_id: str
    login_at: float
    remember: bool = False
    ua: str = ""
    ip: str = ""


class SessionRecord(msgspec.Struct, array_like=True, omit_defaults=True):
    """One stored session.

    Attributes:
        data: The session dictionary, already encoded as a JSON object.
        created: When the session was created (epoch seconds).
        deadline: The absolute end of the session's life (epoch seconds).
        ttl: The idle timeout of this session in seconds.
        persistent: Whether the cookie carries Max-Age (False: browser-session cookie).
        auth: The logged-in user, if any.
    """

    data: msgspec.Raw
    created: float
    deadline: float
    ttl: float
    persistent: bool = True
    auth: AuthInfo | None = None


def _encode_other(obj: Any) -> Any:
    """msgspec's hook for what it does not know: data that encodes itself, else its error.

    A typed session's data (`sanic_cookies._schema.SchemaData`) validates and encodes
    itself; a dict never reaches this hook, so an untyped session pays nothing for it.
    """
    encode = getattr(obj, "encode_session_data", None)
    if encode is None:
        raise TypeError(f"Encoding objects of type {type(obj).__name__} is unsupported")
    return msgspec.Raw(encode())


_encoder = msgspec.json.Encoder(enc_hook=_encode_other)
_record_decoder = msgspec.json.Decoder(SessionRecord)
_data_decoder = msgspec.json.Decoder(dict[str, Any])

EMPTY_DATA = b"{}"


def encode_data(data: Mapping[str, Any]) -> bytes:
    """Encode the session dictionary, naming the first key that cannot be encoded."""
    try:
        return _encoder.encode(data)
    except SessionSerializationError:
        raise  # a typed session's own error (`_encode_other`)
    except (TypeError, ValueError, OverflowError) as exc:
        for key, value in data.items():
            if not isinstance(key, str):
                raise SessionSerializationError(
                    f"Session keys must be str, got {type(key).__name__} {key!r}", key=None
                ) from exc
            try:
                _encoder.encode(value)
            except (TypeError, ValueError, OverflowError) as inner:
                raise SessionSerializationError(
                    f"Session value under key {key!r} cannot be stored: {inner}", key=key
                ) from exc
        raise SessionSerializationError(f"Session cannot be stored: {exc}") from exc


def decode_data(raw: bytes) -> dict[str, Any]:
    """Decode the session dictionary written by `encode_data`."""
    return _data_decoder.decode(raw)


def encoded_size(value: AuthInfo | None) -> int:
    """Bytes `value` takes in an encoded record (0 for None)."""
    return 0 if value is None else len(_encoder.encode(value))


def encode_record(record: SessionRecord) -> bytes:
    """Encode a record for a backend."""
    return _encoder.encode(record)


def decode_record(value: bytes) -> SessionRecord | None:
    """Decode a stored record; None for anything that is not one (garbage, old format)."""
    try:
        return _record_decoder.decode(value)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
