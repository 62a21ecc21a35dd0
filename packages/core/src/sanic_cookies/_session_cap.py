"""The per-user cap on live sessions: a login past it ends that user's oldest sessions.

Without a cap, one account logged in over and over (a script, a credential-stuffing
run that found a password) grows the store and the user index without bound, and
makes every "your sessions" page and "log out everywhere" of that user slower.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from typing import Any

from ._backend import Backend, StoredSession
from ._errors import ConfigurationError
from ._record import SessionRecord

__all__ = ["DEFAULT_MAX_SESSIONS_PER_USER", "cap_listing", "resolve_cap", "sessions_over_cap"]

#: Live sessions one user may have; the login after that ends the oldest one.
DEFAULT_MAX_SESSIONS_PER_USER = 100

#: Marks "not given" apart from None, which turns the cap off.
UNSET: Any = object()


def resolve_cap(given: Any, app_config: Mapping[str, Any], prefix: str) -> int | None:
    """The cap from the argument, else ``<prefix>MAX_SESSIONS_PER_USER``, else the default.

    Raises:
        ConfigurationError: Neither a positive int nor None.
    """
    setting = prefix + "MAX_SESSIONS_PER_USER"
    value = given
    if value is UNSET:
        value = app_config.get(setting, DEFAULT_MAX_SESSIONS_PER_USER)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(
            f"max_sessions_per_user ({setting}) must be a whole number of sessions, at "
            f"least 1, or None for no cap; got {value!r}"
        )
    return value


def sessions_over_cap(
    records: Mapping[str, SessionRecord], cap: int, current: str | None
) -> list[str]:
    """The keys to end so that, with the session `current` (logging in now), `cap` remain.

    `records` are the user's live sessions by store key. `current` is never
    chosen, and does not count among them: it is the login being made (its old
    key, if still listed, is replaced by the new one). The oldest logins go
    first; sessions of one login time go in creation order, then by key, so the
    choice is the same on every process.
    """
    others = [(key, record) for key, record in records.items() if key != current]
    excess = len(others) - (cap - 1)
    if excess <= 0:
        return []
    others.sort(
        key=lambda item: (
            item[1].auth.login_at if item[1].auth is not None else 0.0,
            item[1].created,
            item[0],
        )
    )
    return [key for key, _ in others[:excess]]


def cap_listing(backend: Backend, user_id: str) -> Awaitable[Mapping[str, StoredSession]]:
    """The listing of `user_id`'s sessions the cap counts: from the primary store.

    The cap runs inside a login, so it must never read a read replica: a
    lagging one would under-count, a broken one would fail the login. A
    backend with a replica (PostgreSQL's ``replica=``) offers
    ``list_user_sessions_primary``; every other backend has one store.
    """
    primary = getattr(backend, "list_user_sessions_primary", None)
    if primary is not None:
        listing: Awaitable[Mapping[str, StoredSession]] = primary(user_id)
        return listing
    return backend.list_user_sessions(user_id)
