"""Redis key names for sessions, their locks and the per-user index.

Every key of one session carries the session key as a Redis Cluster hash tag
(``{...}``), so the data key and the lock key live in the same hash slot and a
script may touch both atomically. The per-user index is tagged with the user id
instead: it usually lives in another slot, and no script ever touches it
together with a session key.
"""

from __future__ import annotations

from sanic_cookies import ConfigurationError

__all__ = ["KeySpace"]


class KeySpace:
    """Builds the Redis key names under one prefix.

    Layout, for prefix ``session:``::

        session:{<64 hex>}          hash: v (value), u (user id), ix / is (index bookkeeping)
        session:{<64 hex>}:lock     string: the lock holder's random token, with a PX lease
        session:{<64 hex>}:lock:void:<token>  a lock request that gave up (expires)
        session:user:{<user id>}    sorted set: session keys of one user (member: 64 hex)

    Args:
        prefix: Prepended to every key. It must not contain ``{`` or ``}``: a brace
            in the prefix would become the hash tag and split a session's keys
            across cluster slots.

    Raises:
        ConfigurationError: The prefix contains a brace.
    """

    __slots__ = ("prefix",)

    def __init__(self, prefix: str) -> None:
        if "{" in prefix or "}" in prefix:
            raise ConfigurationError(
                f"The Redis key prefix must not contain '{{' or '}}' (hash tags), got {prefix!r}"
            )
        self.prefix = prefix

    def data(self, key: str) -> str:
        """The hash holding the session stored under `key`."""
        return f"{self.prefix}{{{key}}}"

    def lock(self, key: str) -> str:
        """The lock of the session stored under `key` (same hash slot as its data)."""
        return f"{self.prefix}{{{key}}}:lock"

    def void(self, key: str, token: str) -> str:
        """Marks lock `token` of the session under `key` void (same hash slot)."""
        return f"{self.prefix}{{{key}}}:lock:void:{token}"

    def index(self, user_id: str) -> str:
        """The sorted set of the sessions of `user_id` (its own hash slot)."""
        return f"{self.prefix}user:{{{user_id}}}"
