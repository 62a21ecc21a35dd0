"""`CookieBackend`: the whole session, encrypted, in the cookie."""

from __future__ import annotations

import hashlib
import logging
import math
import os
from typing import Any, ClassVar, Self
from urllib.parse import urlsplit

from sanic_cookies import (
    Backend,
    ClientSideBackend,
    ConfigurationError,
    SessionTooLarge,
    StoredSession,
    backend_from_url,
)
from sanic_cookies.clock import now

from ._keys import KeyInput, build_keyring, parse_keys
from ._token import (
    MAX_PLAINTEXT,
    SID_BYTES,
    Opened,
    TokenError,
    open_token,
    pack_plaintext,
    predict_token_length,
    seal,
)

__all__ = ["MAX_COOKIE_SIZE", "CookieBackend"]

logger = logging.getLogger("sanic_cookies.backends.cookie")

#: The most bytes browsers keep for one cookie: name, value and attributes together
#: (Werkzeug's ``MAX_COOKIE_SIZE``). Larger cookies are dropped without a word.
MAX_COOKIE_SIZE = 4093

# Fernet refuses tokens stamped this far in the future; so do we.
_CLOCK_SKEW = 60.0
# A revocation marker outlives the token by this much, for clocks a little apart.
_REVOCATION_SLACK = 5.0
_REVOKED = b"1"
_OPTIONS = frozenset({"keys", "revocation", "max_cookie_size"})


# How many recently opened tokens `CookieBackend` remembers the session id of.
_RECENT_SIDS = 1024


class CookieBackend(ClientSideBackend):
    """Sessions kept in an encrypted cookie (``cookie://``): no server state at all.

    Every write encrypts the session into a new Fernet token (AES-128-CBC with
    HMAC-SHA256) that the browser stores as the cookie. Anything that does not
    decrypt - tampered, truncated, forged, under an unknown or retired key,
    expired, revoked, or plain garbage - loads as a fresh anonymous session
    (logged at debug level), never as an error.

    **Keys.** `keys` is a list: the first key encrypts, every key decrypts.
    Rotate by prepending a new key; sessions under the old one still load and
    are re-encrypted under the new one at their next write; drop the old key
    once that has happened (after the refresh interval, or the idle timeout
    at the latest) and its remaining sessions become anonymous. Make keys with
    ``python -m sanic_cookies keygen``. In an app, set ``SESSION_KEYS`` and use
    the URL ``cookie://``; the `Session` passes ``SESSION_KEYS`` as the `keys`
    option of a client-side backend.

    **Expiry.** A token carries its issue time (Fernet's authenticated
    timestamp), its idle timeout and the session's absolute deadline; both
    are checked when it is decrypted, so a cookie kept past its Max-Age, or
    replayed by hand, is refused.

    **Size.** Data is msgpack-encoded and deflated when that is smaller. A
    write whose cookie - ``name=value`` and every attribute - would exceed
    `max_cookie_size` (4093 bytes, what browsers keep) raises
    `SessionTooLarge` with the size and the limit, inside the handler (or, for
    a write made outside ``async with``, turned into the error response): the
    client gets a 500 and keeps its previous cookie, never a cookie the
    browser would drop in silence. About 2.9 KB of incompressible data fits.

    **Locking.** There is no shared state to lock. ``async with`` excludes
    other requests *of this process* that carry the same cookie, nothing
    more: two requests from one browser that reach different workers (or
    interleave with a read outside ``async with``) each encrypt their own new
    cookie, and the browser keeps whichever response arrives last, so one of
    the two updates is lost. A write is never mixed with another session's
    data, but use a server-side backend (Redis, PostgreSQL) when parallel
    updates of one session must all survive.

    **Logout and revocation.** Login gives the session a new token and logout
    sends a deletion cookie, but without a revocation list a *copied* old
    cookie stays valid until it expires: the server keeps nothing to forget.
    Pass `revocation` (any server-side backend: memory, Redis, PostgreSQL) to
    fix that: logout and login then record the session's id there until its
    deadline, and every load checks it (one store round trip per request that
    uses the session, and only for cookies that decrypted). Every token of
    one session shares that id, so the revocation also covers copies taken
    before later writes. If the revocation store is down, loads answer 503.

    The user index ("log out everywhere", `list_user_sessions`) cannot exist
    without server state: `supports_user_index` is False and those methods
    raise `UnsupportedOperation`.

    Args:
        keys: The keys; see above. One str may hold several, separated by
            commas or whitespace.
        revocation: A `Backend` or a backend URL (``"redis://..."``) to hold the
            revocation list; opened and closed with this backend. None: no
            revocation.
        max_cookie_size: The most bytes the ``Set-Cookie`` header value may have.

    Raises:
        ConfigurationError: Missing or malformed keys (the message says how to
            make one), or a bad option.
    """

    name: ClassVar[str] = "cookie"
    supports_user_index: ClassVar[bool] = False
    per_process: ClassVar[bool] = False

    def __init__(
        self,
        keys: KeyInput | None = None,
        *,
        revocation: Backend | str | None = None,
        max_cookie_size: int = MAX_COOKIE_SIZE,
    ) -> None:
        super().__init__()
        self._keyring = build_keyring(parse_keys(keys))
        # Session ids of tokens `decode_cookie` opened lately, by token: the request that
        # writes a new token then skips decrypting its previous one again (~30 µs). The
        # keyring never changes, so a token always opens to the same id.
        self._recent_sids: dict[str, bytes] = {}
        if (
            isinstance(max_cookie_size, bool)
            or not isinstance(max_cookie_size, int)
            or not 256 <= max_cookie_size <= MAX_COOKIE_SIZE
        ):
            raise ConfigurationError(
                f"max_cookie_size must be a whole number from 256 to {MAX_COOKIE_SIZE}, "
                f"got {max_cookie_size!r}"
            )
        self.max_cookie_size = max_cookie_size
        if isinstance(revocation, str):
            revocation = backend_from_url(revocation)
        if revocation is not None and not isinstance(revocation, Backend):
            raise ConfigurationError(
                f"revocation must be a Backend or a backend URL, got {type(revocation).__name__}"
            )
        if isinstance(revocation, ClientSideBackend):
            raise ConfigurationError(
                f"revocation needs a server-side backend, not {revocation.label}"
            )
        self.revocation: Backend | None = revocation

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """Build from ``cookie://`` and the options ``keys``, ``revocation``, ``max_cookie_size``.

        A `Session` passes ``app.config.SESSION_KEYS`` as ``keys``, and
        ``SESSION_BACKEND_OPTIONS`` (or its ``backend_options``) as the rest.
        """
        parts = urlsplit(url)
        if (
            parts.scheme.lower() != "cookie"
            or parts.netloc
            or parts.path.strip("/")
            or (parts.query or parts.fragment)
        ):
            raise ConfigurationError(
                f"The encrypted-cookie backend takes the URL 'cookie://' with no host, path or "
                f"query (got {url!r}); pass keys through SESSION_KEYS and other options through "
                "SESSION_BACKEND_OPTIONS"
            )
        unknown = set(options) - _OPTIONS
        if unknown:
            raise ConfigurationError(
                f"Unknown cookie:// option(s): {', '.join(sorted(unknown))} "
                f"(known: {', '.join(sorted(_OPTIONS))})"
            )
        return cls(**options)

    async def open(self) -> None:
        """Open the revocation backend, if any."""
        if self.revocation is not None:
            await self.revocation.open()

    async def close(self) -> None:
        """Close the revocation backend, if any."""
        if self.revocation is not None:
            await self.revocation.close()

    # -- the client-side contract ------------------------------------------------------

    async def decode_cookie(self, token: str) -> StoredSession | None:
        """Return the session in `token`, or None if it is invalid, expired or revoked.

        Never raises for a bad `token` (of any type). With a revocation list,
        a token that decrypts costs one lookup there, whose failure propagates
        (the core answers 503).
        """
        opened = self._open(token)
        if opened is None:
            return None
        if len(self._recent_sids) >= _RECENT_SIDS:
            self._recent_sids.clear()
        self._recent_sids[token] = opened.sid  # (a str: `_open` refuses anything else)
        t = now()
        expires_at = min(opened.expires_at, opened.deadline)
        if opened.issued > t + _CLOCK_SKEW:
            why = "issued in the future"
        elif expires_at <= t:
            why = "expired"
        elif self.revocation is not None and (
            await self.revocation.load(_revocation_key(opened.sid)) is not None
        ):
            why = "revoked"
        else:
            return StoredSession(opened.value, expires_at)
        _log_rejected(token, why)
        return None

    async def encode_cookie(
        self,
        value: bytes,
        ttl: float,
        *,
        previous: str | None = None,
        deadline: float | None = None,
    ) -> str:
        """Encrypt `value` into a new token valid for `ttl` seconds (and until `deadline`).

        Args:
            value: The core's encoded record.
            ttl: Seconds the token is valid from now.
            previous: The token this one replaces in the same session: the new
                token keeps its session id (so a later revocation covers both).
                None, or a token that does not decrypt: a new session id.
            deadline: The session's absolute end (epoch seconds). None: now + ttl.

        Raises:
            SessionTooLarge: The token alone exceeds `max_cookie_size`.
            ValueError: `ttl` is not a positive number.
        """
        if not ttl > 0 or math.isinf(ttl):
            raise ValueError(f"ttl must be a positive, finite number of seconds, got {ttl!r}")
        t = now()
        issued = int(t)
        end = t + ttl if deadline is None else min(deadline, t + ttl)
        sid = self._session_id(previous)
        plaintext = pack_plaintext(sid, end - issued, end if deadline is None else deadline, value)
        if len(plaintext) > MAX_PLAINTEXT:
            raise SessionTooLarge(len(plaintext), MAX_PLAINTEXT)
        size = predict_token_length(len(plaintext))
        if size > self.max_cookie_size:
            raise SessionTooLarge(size, self.max_cookie_size)
        return seal(self._keyring, plaintext, issued)

    async def revoke_cookie(self, token: str, expires_at: float) -> None:
        """Put the session of `token` on the revocation list until its deadline.

        Does nothing without a revocation list, or for a token that does not
        decrypt (there is nothing it could unlock).
        """
        if self.revocation is None:
            return
        opened = self._open(token)
        if opened is None:
            return
        ttl = max(opened.deadline, opened.expires_at, expires_at) - now() + _REVOCATION_SLACK
        if ttl > 0:
            await self.revocation.save(_revocation_key(opened.sid), _REVOKED, ttl)

    # -- helpers -------------------------------------------------------------------------

    def _open(self, token: object) -> Opened | None:
        try:
            return open_token(self._keyring, token)
        except TokenError as exc:
            _log_rejected(token, str(exc))
            return None

    def _session_id(self, previous: str | None) -> bytes:
        if previous is not None:
            sid = self._recent_sids.pop(previous, None)
            if sid is not None:
                return sid
            opened = self._open(previous)
            if opened is not None:
                return opened.sid
        return os.urandom(SID_BYTES)


def _log_rejected(token: object, why: str) -> None:
    """One debug line per refused cookie, naming it by a hash prefix (never its content)."""
    if logger.isEnabledFor(logging.DEBUG):
        if isinstance(token, str):
            label = hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()[:8]
        else:
            label = type(token).__name__
        logger.debug("session cookie %s ignored: %s", label, why)


def _revocation_key(sid: bytes) -> str:
    """The revocation-list key of a session id: 64 hex digits, like every store key."""
    return hashlib.sha256(b"sanic-cookies revoked session " + sid).hexdigest()
