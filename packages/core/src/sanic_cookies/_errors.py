"""The exception tree.

Every exception this package raises on purpose derives from `SanicCookiesError`::

    SanicCookiesError
     ├── ConfigurationError (ValueError)       a mistake in settings, raised at start-up
     │    ├── BackendNotFound (ImportError)    no backend for a URL scheme: says what to install
     │    └── DuplicateBackend                 two distributions claim one URL scheme
     ├── BackendError (sanic ServiceUnavailable → HTTP 503)
     │    ├── BackendUnavailable               the store failed or could not be reached
     │    ├── LockTimeout                      the session's lock was not acquired in time
     │    └── LockLost                         the lock's lease ran out before the save
     ├── SessionNotLoaded (RuntimeError)       sync access before `async with` / `await load()`
     ├── SessionSerializationError (TypeError) a value msgspec cannot encode; names the key
 │    └── SessionValidationError           a typed session's data does not match its schema
     ├── SessionTooLarge (ValueError)          an encoded session over a backend's size limit
     ├── WebsocketSessionError (RuntimeError)  a change a websocket cannot make: it sets no cookie
     └── UnsupportedOperation (NotImplementedError)  a capability the backend does not have

`BackendError` subclasses Sanic's `ServiceUnavailable`, so a handler that lets it
propagate answers 503 instead of 500: the client keeps its cookie and can retry.
The session raises it with `CLIENT_MESSAGE` only (see `for_client`): which store
failed, and why, goes to the log, never into a response.
"""

from __future__ import annotations

from typing import TypeVar

from sanic.exceptions import ServiceUnavailable

__all__ = [
    "BackendError",
    "BackendNotFound",
    "BackendUnavailable",
    "ConfigurationError",
    "DuplicateBackend",
    "LockLost",
    "LockTimeout",
    "SanicCookiesError",
    "SessionNotLoaded",
    "SessionSerializationError",
    "SessionTooLarge",
    "SessionValidationError",
    "UnsupportedOperation",
    "WebsocketSessionError",
]


class SanicCookiesError(Exception):
    """Root of every error raised by sanic-cookies."""


class ConfigurationError(SanicCookiesError, ValueError):
    """A setting is wrong. Raised when the app starts, never per request."""


class BackendNotFound(ConfigurationError, ImportError):
    """No installed backend handles a URL scheme.

    The message names the distribution to install, e.g.
    ``pip install "sanic-cookies[redis]"``.
    """


class DuplicateBackend(ConfigurationError):
    """Two installed distributions register the same URL scheme."""


#: The whole message of every store failure a client sees (the 503's body).
CLIENT_MESSAGE = "Session store unavailable, please try again"


class BackendError(SanicCookiesError, ServiceUnavailable):
    """The session store could not do what was asked; the request answers 503.

    `quiet` keeps Sanic from logging a traceback: sanic-cookies has already
    logged one clear line naming the backend and the cause. The error that
    reaches the app's handlers carries `CLIENT_MESSAGE` only; the backend's own
    one (the store's address, a driver error, a lock timeout) is its
    ``__cause__``, and in the log.
    """

    quiet = True

    def __init__(self, message: str = CLIENT_MESSAGE) -> None:
        super().__init__(message)


E = TypeVar("E", bound=BackendError)


def for_client(exc: E) -> E:
    """A new error of `exc`'s class (so handlers can still catch `LockTimeout`) saying only
    `CLIENT_MESSAGE`.

    Sanic renders an exception's message into the error response, even outside
    debug mode; a store's message can name its host, its driver and the
    failure, which an attacker may use to probe the service. Raise it
    ``from exc`` so the detail stays in the traceback for the developer.
    """
    # Built without the subclass's __init__, whose signature may differ (third-party
    # backends subclass these); BackendError.__init__ sets every attribute Sanic reads.
    public = type(exc).__new__(type(exc))
    BackendError.__init__(public, CLIENT_MESSAGE)
    return public


class BackendUnavailable(BackendError):
    """The store raised or timed out (connection refused, network error, ...)."""


class LockTimeout(BackendError):
    """The session's lock was not acquired within the acquire timeout."""


class LockLost(BackendError):
    """The lock's lease expired (or its connection dropped) before the save.

    The save was *not* applied: another holder may have written since, and
    overwriting it would lose that update. Extend the lease in long handlers
    with `SessionDict.extend_lock`.
    """


class SessionNotLoaded(SanicCookiesError, RuntimeError):
    """The session was read or written before it was loaded, on a backend that needs I/O.

    Use ``async with request.ctx.session as sess:`` (locked) or
    ``await request.ctx.session.load()`` (read-only) first, or turn on the
    ``autoload`` setting (``SESSION_AUTOLOAD``). Backends that load without I/O
    (memory, the encrypted cookie) never raise it: they load on first use.
    """


class SessionSerializationError(SanicCookiesError, TypeError):
    """A session value cannot be encoded; nothing was written."""

    def __init__(self, message: str, *, key: str | None = None) -> None:
        super().__init__(message)
        #: The top-level session key whose value failed to encode.
        self.key = key


class SessionValidationError(SessionSerializationError):
    """A typed session's data does not match its schema; nothing was written.

    Raised where the session is written (the end of ``async with``, or the response of
    a request that changed it without the lock), or at once for a key the schema has no
    field for. See docs/typed-sessions.md.
    """

    def __init__(self, message: str, *, key: str | None = None, path: str = "$") -> None:
        super().__init__(message, key=key)
        #: Where in the data the mismatch is, as msgspec names it (``$.cart[0]``).
        self.path = path


class SessionTooLarge(SanicCookiesError, ValueError):
    """The encoded session exceeds what the backend can store (e.g. a cookie's 4093 bytes)."""

    def __init__(self, size: int, limit: int, *, setting: str | None = None) -> None:
        if setting is None:
            advice = "Store less in the session, or use a server-side backend."
        else:
            advice = (
                f"Store less in the session (keep large data in your database and its id in "
                f"the session), or raise {setting}."
            )
        limit_text = f"{limit}" if setting is None else f"{limit} ({setting})"
        super().__init__(
            f"The encoded session is {size} bytes; the limit is {limit_text}. {advice}"
        )
        #: Bytes the session would take.
        self.size = size
        #: The limit it exceeds, in bytes.
        self.limit = limit
        #: The setting that sets the limit, if there is one (e.g. ``max_size (SESSION_MAX_SIZE)``).
        self.setting = setting


class WebsocketSessionError(SanicCookiesError, RuntimeError):
    """A websocket handler asked for a session change that needs a new cookie.

    A websocket is an upgraded connection: no response follows, so no
    ``Set-Cookie`` can reach the browser. Creating a session, giving it a new id
    (`login_user`, `regenerate`) and any change on a client-side backend (whose
    session *is* the cookie) are refused with this error before anything is
    written; the message says what to do instead (make the change over HTTP).
    """


class UnsupportedOperation(SanicCookiesError, NotImplementedError):
    """The backend does not provide this capability (see `Backend.supports_user_index`)."""
