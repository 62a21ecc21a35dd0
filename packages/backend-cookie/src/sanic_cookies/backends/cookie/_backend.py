"""`CookieBackend`: the whole session, encrypted, in the cookie."""

from __future__ import annotations

import hashlib
import logging
import math
import os
from typing import Any, ClassVar, Self
from urllib.parse import parse_qs

import msgspec

from sanic_cookies import (
    Backend,
    ClientSideBackend,
    ConfigurationError,
    SessionRecord,
    SessionTooLarge,
    StoredSession,
    UnsupportedOperation,
    backend_from_url,
    redact_url,
    served_over_asgi,
    split_backend_url,
)
from sanic_cookies.backends.memory import MemoryBackend
from sanic_cookies.clock import now

from ._keys import KeyInput, Keyring, build_keyring, parse_keys
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

# Tokens stamped this far in the future are refused.
_CLOCK_SKEW = 60.0
# A revocation marker outlives the token by this much, for clocks a little apart.
_REVOCATION_SLACK = 5.0
_REVOKED = b"1"
# How long a user's "log out everywhere" time is kept: longer than any cookie lives in
# a browser (Chrome and the cookie RFC draft cap Max-Age at 400 days).
_USER_MARKER_TTL = 400 * 86400.0
# A 1.0 token is reported as expiring this soon, so the core's sliding refresh replaces
# it with a new-format token the first time its session is used.
_LEGACY_REISSUE = 1.0
_OPTIONS = frozenset(
    {"keys", "revocation", "max_cookie_size", "allow_logged_out_cookie_replay", "single_process"}
)


# How many recently opened tokens `CookieBackend` remembers the session id of.
_RECENT_SIDS = 1024


class _UserMarker(msgspec.Struct, array_like=True, frozen=True):
    """A user's "log out everywhere": sessions logged in before `not_before` are over."""

    not_before: float
    keep: bytes | None = None  # the session id that survives it, if any


_marker_encoder = msgspec.msgpack.Encoder()
_marker_decoder = msgspec.msgpack.Decoder(_UserMarker)
_record_decoder = msgspec.json.Decoder(SessionRecord)

REPLAY_WITHOUT_REVOCATION = (
    "AuthSession {name!r} uses {label} without a revocation store: a copy of a session "
    "cookie taken before logout_user() (from a shared computer, a proxy log, malware) "
    "would keep working after the logout until it expires, since the server keeps "
    "nothing to forget. Give the cookie backend a revocation store, e.g. "
    "{options} = {{'revocation': 'redis://127.0.0.1:6379/0'}}, "
    "backend_options={{'revocation': 'redis://...'}} or "
    "CookieBackend(keys=..., revocation='redis://...'), which makes logout final and "
    "enables logout_everywhere(). To accept the replay knowingly, set the option "
    "allow_logged_out_cookie_replay=True."
)


class CookieBackend(ClientSideBackend):
    """Sessions kept in an encrypted cookie (``cookie://``): no server state at all.

    Every write encrypts the session into a new token (AES-256-GCM, with the
    key id and issue time in an authenticated header; see ``_token`` and
    ``docs/backend-cookie.md`` for the byte format) that the browser stores
    as the cookie. Anything that does not decrypt - tampered, truncated,
    forged, under an unknown or retired key, expired, revoked, or plain
    garbage - loads as a fresh anonymous session (logged at debug level),
    never as an error. Tokens of 1.0 (Fernet) are still read, and replaced by
    a new-format token the first time their session is used.

    **Keys.** `keys` is a list: the first key encrypts, every key decrypts
    (the token's key id picks it). Rotate by prepending a new key; sessions
    under the old one still load and are re-encrypted under the new one at
    their next write; drop the old key once that has happened (after the
    refresh interval, or the idle timeout at the latest) and its remaining
    sessions become anonymous. Make keys with ``python -m sanic_cookies
    keygen``; degenerate keys (too few distinct bytes) are refused. In an
    app, set ``SESSION_KEYS`` and use the URL ``cookie://``; the `Session`
    passes ``SESSION_KEYS`` as the `keys` option of a client-side backend.

    **Expiry.** A token carries its issue time (authenticated), its idle
    timeout and the session's absolute deadline; both are checked when it is
    decrypted, so a cookie kept past its Max-Age, or replayed by hand, is
    refused.

    **Size.** Data is msgpack-encoded and never compressed (compression
    before encryption lets an attacker who controls part of the session
    learn a secret next to it from the token's length: CRIME/BREACH). The
    token's length depends only on the length of the data. A write whose
    cookie - ``name=value`` and every attribute - would exceed
    `max_cookie_size` (4093 bytes, what browsers keep) raises
    `SessionTooLarge` with the size and the limit, inside the handler (or,
    for a write made outside ``async with``, turned into the error response):
    the client gets a 500 and keeps its previous cookie, never a cookie the
    browser would drop in silence. About 2.9 KB of session data fits.

    **Locking.** There is no shared state to lock. ``async with`` excludes
    other requests *of this process* that carry the same cookie, nothing
    more: two requests from one browser that reach different workers (or
    interleave with a read outside ``async with``) each encrypt their own new
    cookie, and the browser keeps whichever response arrives last, so one of
    the two updates is lost. A write is never mixed with another session's
    data, but use a server-side backend (Redis, PostgreSQL) when parallel
    updates of one session must all survive.

    **Logout and revocation.** Login gives the session a new token and logout
    sends a deletion cookie, but without a revocation store a *copied* old
    cookie stays valid until it expires: the server keeps nothing to forget.
    Pass `revocation` (any server-side backend: Redis, PostgreSQL; memory
    only with one worker) to fix that: logout and login then record the
    session's id there until its deadline, and every load checks it (one
    store round trip per request that uses the session, two for a logged-in
    one, and only for cookies that decrypted). Every token of one session
    shares that id, so the revocation also covers copies taken before later
    writes. If the revocation store is down, loads answer 503.

    An `AuthSession` refuses to start on this backend without `revocation`
    (its logout would not be final) unless `allow_logged_out_cookie_replay`
    is set, which logs a warning at start-up instead. A per-process
    revocation store (``memory://``) under several workers is refused; so
    is one under an ASGI server (uvicorn, hypercorn...), whose worker count
    the app cannot see, unless `single_process` declares that one process
    serves the app.

    With `revocation`, `revoke_user_cookies` ("log out everywhere") records a
    per-user time in the store: every session of that user logged in before
    it is refused from then on. Listing a user's sessions needs server state
    per session, which this backend does not keep: `supports_user_index` is
    False, and `AuthSession.list_sessions` / `logout_session` raise
    `UnsupportedOperation`.

    Args:
        keys: The keys; see above. One str may hold several, separated by
            commas or whitespace.
        revocation: A `Backend` or a backend URL (``"redis://..."``) to hold the
            revocation list; opened and closed with this backend. None: no
            revocation.
        max_cookie_size: The most bytes the ``Set-Cookie`` header value may have.
        allow_logged_out_cookie_replay: Let an `AuthSession` run without
            `revocation`, accepting that a cookie copied before logout keeps
            working until it expires.
        single_process: Declare that one process serves the app, so a
            per-process revocation store (``memory://``) is allowed where the
            worker count cannot be seen (under an ASGI server). Say so only
            if true: with several processes, a cookie logged out in one still
            works in the others.

    Raises:
        ConfigurationError: Missing, malformed or degenerate keys (the message
            says how to make one), or a bad option.
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
        allow_logged_out_cookie_replay: bool = False,
        single_process: bool = False,
    ) -> None:
        super().__init__()
        self._keyring: Keyring = build_keyring(parse_keys(keys))
        # Session ids of tokens `decode_cookie` opened lately, by token: the request that
        # writes a new token then skips decrypting its previous one again. The keyring
        # never changes, so a token always opens to the same id.
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
        if not isinstance(allow_logged_out_cookie_replay, bool):
            raise ConfigurationError(
                "allow_logged_out_cookie_replay must be True or False, "
                f"got {allow_logged_out_cookie_replay!r}"
            )
        self.allow_logged_out_cookie_replay = allow_logged_out_cookie_replay
        if not isinstance(single_process, bool):
            raise ConfigurationError(
                f"single_process must be True or False, got {single_process!r}"
            )
        self.single_process = single_process
        if isinstance(revocation, str):
            revocation = backend_from_url(revocation, **_uncapped_memory(revocation))
        if isinstance(revocation, MemoryBackend) and revocation.max_entries is not None:
            # A full store drops entries, and a dropped revocation un-revokes its cookie.
            raise ConfigurationError(
                f"revocation: a memory store capped at max_entries={revocation.max_entries} "
                "would drop revocations when full, and those cookies would work again. Pass "
                "MemoryBackend(max_entries=None) (a memory:// URL is uncapped here), or use "
                "redis:// or postgresql://"
            )
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
        """Build from ``cookie://`` and the options of the constructor.

        A `Session` passes ``app.config.SESSION_KEYS`` as ``keys``, and
        ``SESSION_BACKEND_OPTIONS`` (or its ``backend_options``) as the rest:
        ``revocation``, ``max_cookie_size``, ``allow_logged_out_cookie_replay``,
        ``single_process``.
        """
        parts = split_backend_url(url)
        if (
            parts.scheme.lower() != "cookie"
            or parts.netloc
            or parts.path.strip("/")
            or (parts.query or parts.fragment)
        ):
            raise ConfigurationError(
                "The encrypted-cookie backend takes the URL 'cookie://' with no host, path or "
                f"query (got {redact_url(url)!r}); pass keys through SESSION_KEYS and other "
                "options through SESSION_BACKEND_OPTIONS"
            )
        unknown = set(options) - _OPTIONS
        if unknown:
            raise ConfigurationError(
                f"Unknown cookie:// option(s): {', '.join(sorted(unknown))} "
                f"(known: {', '.join(sorted(_OPTIONS))})"
            )
        return cls(**options)

    def check_deployment(self, *, session: str, workers: int, final_logout: bool) -> None:
        """Refuse, at start-up, a set-up under which a logged-out cookie would still work.

        * A per-process revocation store (``memory://``) under several workers:
          a logout recorded in one worker is unknown to the others. Under an
          ASGI server the count is unknown (the server forks the workers), so
          the store is refused there unless `single_process` is set.
        * No revocation store under an `AuthSession` (`final_logout`), unless
          `allow_logged_out_cookie_replay` is set: then a WARNING is logged.

        Raises:
            ConfigurationError: Either case; the message explains the replay and the fix.
        """
        revocation = self.revocation
        if revocation is not None:
            if revocation.per_process and workers > 1:
                raise ConfigurationError(
                    f"Session {session!r}: the cookie backend's revocation store "
                    f"{revocation.label} lives in one process, but the app runs {workers} "
                    "workers: a cookie logged out in one worker would still work in the "
                    "others. Use a shared revocation store such as redis:// or postgresql://."
                )
            if revocation.per_process and not self.single_process and served_over_asgi():
                raise ConfigurationError(
                    f"Session {session!r}: the cookie backend's revocation store "
                    f"{revocation.label} lives in one process, and the app is served over "
                    "ASGI, whose server may run several worker processes (uvicorn --workers "
                    "N) that the app cannot count: a cookie logged out in one worker would "
                    "still work in the others. Use a shared revocation store such as "
                    "redis:// or postgresql://, or, if exactly one process serves the app, "
                    "declare it with the cookie backend option single_process=True "
                    "(SESSION_BACKEND_OPTIONS = {'revocation': 'memory://', "
                    "'single_process': True})."
                )
            return
        if not final_logout:
            return
        message = REPLAY_WITHOUT_REVOCATION.format(
            name=session, label=self.label, options=session.upper() + "_BACKEND_OPTIONS"
        )
        if not self.allow_logged_out_cookie_replay:
            raise ConfigurationError(message)
        logger.warning(
            "AuthSession %r runs on %s without a revocation store "
            "(allow_logged_out_cookie_replay=True): a cookie copied before logout keeps "
            "working until it expires, and logout_everywhere() is not available",
            session,
            self.label,
        )

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
        a token that decrypts costs one lookup there (two if logged in: the
        session's and its user's), whose failure propagates (the core answers 503).
        """
        opened = self._live(token)
        if opened is None:
            return None
        if self.revocation is not None and await self._revoked(opened[0]):
            _log_rejected(token, "revoked")
            return None
        return opened[1]

    @property
    def loads_now(self) -> bool:
        """True unless the revocation list needs I/O (a Redis or PostgreSQL one)."""
        return self.revocation is None or self.revocation.loads_now

    def decode_cookie_now(self, token: str) -> StoredSession | None:
        """`decode_cookie` without an await (no revocation list, or one in memory).

        Raises:
            UnsupportedOperation: The revocation list needs I/O.
        """
        revocation = self.revocation
        if revocation is not None and not revocation.loads_now:
            raise UnsupportedOperation(
                f"{self.label} checks a {revocation.label} revocation list, which needs I/O"
            )
        opened = self._live(token)
        if opened is None:
            return None
        if revocation is not None and self._revoked_now(opened[0]):
            _log_rejected(token, "revoked")
            return None
        return opened[1]

    def _live(self, token: str) -> tuple[Opened, StoredSession] | None:
        """The opened token and its session, if it decrypts and has not expired."""
        opened = self._open(token)
        if opened is None:
            return None
        if len(self._recent_sids) >= _RECENT_SIDS:
            self._recent_sids.clear()
        self._recent_sids[token] = opened.sid  # (a str: `_open` refuses anything else)
        t = now()
        expires_at, deadline = opened.expires_at, opened.deadline
        if deadline < expires_at:  # (the earlier of the two, without a call to min())
            expires_at = deadline
        if opened.issued > t + _CLOCK_SKEW:
            why = "issued in the future"
        elif expires_at <= t:
            why = "expired"
        else:
            if opened.legacy:
                # Seen as due for its sliding refresh: the core writes it anew, in the
                # new format, at the end of the first request that uses it.
                expires_at = min(expires_at, t + _LEGACY_REISSUE)
            # tuple.__new__: the NamedTuple's own __new__ is one more Python call per load.
            return opened, tuple.__new__(StoredSession, (opened.value, expires_at))
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
        issued_ms = int(t * 1000)
        issued = issued_ms / 1000
        end = t + ttl
        if deadline is not None and deadline < end:  # (the earlier, without a call to min())
            end = deadline
        sid = self._session_id(previous)
        plaintext = pack_plaintext(sid, end - issued, end if deadline is None else deadline, value)
        if len(plaintext) > MAX_PLAINTEXT:
            raise SessionTooLarge(len(plaintext), MAX_PLAINTEXT)
        size = predict_token_length(len(plaintext))
        if size > self.max_cookie_size:
            raise SessionTooLarge(size, self.max_cookie_size)
        return seal(self._keyring, plaintext, issued_ms)

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

    async def revoke_user_cookies(self, user_id: str, *, keep: str | None = None) -> int:
        """End every session of `user_id` logged in until now, except the one of `keep`.

        Records "not before now" for the user in the revocation store: from
        then on a token whose login is older is refused (the session of the
        token `keep`, if given, excepted). The server cannot count cookies, so
        this returns 0.

        Raises:
            UnsupportedOperation: No revocation store.
        """
        if self.revocation is None:
            raise UnsupportedOperation(
                "logout_everywhere() on cookie:// needs a revocation store (the option "
                "revocation='redis://...'): without one the server keeps nothing to refuse "
                "a user's cookies with"
            )
        kept = self._open(keep) if keep is not None else None
        marker = _UserMarker(not_before=now(), keep=kept.sid if kept is not None else None)
        await self.revocation.save(
            _user_key(user_id), _marker_encoder.encode(marker), _USER_MARKER_TTL
        )
        return 0

    # -- helpers -------------------------------------------------------------------------

    def _open(self, token: object) -> Opened | None:
        try:
            return open_token(self._keyring, token)
        except TokenError as exc:
            _log_rejected(token, str(exc))
            return None

    async def _revoked(self, opened: Opened) -> bool:
        """Whether the session of `opened` was logged out, or its user logged out everywhere."""
        assert self.revocation is not None
        if await self.revocation.load(_revocation_key(opened.sid)) is not None:
            return True
        auth = _auth_of(opened)
        if auth is None:
            return False
        return _marker_revokes(opened, auth, await self.revocation.load(_user_key(auth.user_id)))

    def _revoked_now(self, opened: Opened) -> bool:
        """`_revoked` on a revocation store that loads without I/O (`loads_now`)."""
        assert self.revocation is not None
        if self.revocation.load_now(_revocation_key(opened.sid)) is not None:
            return True
        auth = _auth_of(opened)
        if auth is None:
            return False
        return _marker_revokes(opened, auth, self.revocation.load_now(_user_key(auth.user_id)))

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


def _auth_of(opened: Opened) -> Any:
    """The login inside `opened`'s record, or None (none, or not a record the core can use)."""
    try:
        return _record_decoder.decode(opened.value).auth
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None  # not a record the core can use either: it will be ignored


def _marker_revokes(opened: Opened, auth: Any, stored: StoredSession | None) -> bool:
    """Whether the user's "logged out everywhere" marker `stored` covers this login."""
    if stored is None:
        return False
    try:
        marker = _marker_decoder.decode(stored.value)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return True  # unreadable marker: fail closed
    return bool(auth.login_at < marker.not_before and opened.sid != marker.keep)


def _revocation_key(sid: bytes) -> str:
    """The revocation-list key of a session id: 64 hex digits, like every store key."""
    return hashlib.sha256(b"sanic-cookies revoked session " + sid).hexdigest()


def _uncapped_memory(url: str) -> dict[str, Any]:
    """``max_entries=None`` for a ``memory://`` revocation URL that sets no cap itself."""
    parts = split_backend_url(url)  # (urlsplit's own errors may quote a password)
    if parts.scheme.lower() == "memory" and "max_entries" not in parse_qs(parts.query):
        return {"max_entries": None}
    return {}


def _user_key(user_id: str) -> str:
    """The revocation-store key of a user's "log out everywhere" time."""
    return hashlib.sha256(
        b"sanic-cookies user not before " + user_id.encode("utf-8", "surrogatepass")
    ).hexdigest()
