"""The small numbered values the conformance tests store and read back."""

from __future__ import annotations

from sanic_cookies._backend import StoredSession
from sanic_cookies._ids import new_session_id, store_key

__all__ = ["decode_stored", "encode_value", "new_key"]


def new_key() -> str:
    """A fresh store key, as the core makes them (the hash of a new session id)."""
    return store_key(new_session_id())


def encode_value(n: int) -> bytes:
    """A small stored value carrying the number `n`."""
    return b'{"n":%d}' % n


def decode_stored(stored: StoredSession | None) -> int | None:
    """The number in a value written by `encode_value`."""
    if stored is None:
        return None
    return int(stored.value.decode().split(":")[1].rstrip("}"))
