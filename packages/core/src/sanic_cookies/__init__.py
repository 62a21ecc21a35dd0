"""Sessions for Sanic: server-side or encrypted-cookie, locked, safe by default.

Public API::

    from sanic_cookies import Session, SessionDict, Backend, register, ...
"""

# First-party backends are separate distributions installed into the
# `sanic_cookies.backends` namespace; extending the path lets editable and
# wheel installs of those distributions sit side by side with the core.
from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)

from ._auth import AuthSession, SessionInfo
from ._backend import Backend, ClientSideBackend, LocalLock, SessionLock, StoredSession
from ._config import SessionConfig
from ._csrf import CSRFError, CSRFProtect, csrf_exempt, csrf_protect, csrf_token
from ._decorators import (
    LoginGuard,
    fresh_login_required,
    is_safe_path,
    login_required,
    safe_next,
)
from ._deployment import served_over_asgi
from ._discovery import backend_from_url, register, registered_schemes
from ._errors import (
    BackendError,
    BackendNotFound,
    BackendUnavailable,
    ConfigurationError,
    DuplicateBackend,
    LockLost,
    LockTimeout,
    SanicCookiesError,
    SessionNotLoaded,
    SessionSerializationError,
    SessionTooLarge,
    SessionValidationError,
    UnsupportedOperation,
    WebsocketSessionError,
)
from ._flash import MAX_FLASH_BYTES, flash, get_flashed_messages
from ._lease import LeaseLock, LeaseStore
from ._metrics import BackendMetrics, StoreObserver
from ._multi import MultiBackend
from ._record import AuthInfo, SessionRecord
from ._schema import SessionSchema
from ._session import Session
from ._session_dict import SessionDict
from ._turns import KeyTurns, Turn
from ._url import BackendURL, parse_backend_url, redact_url, split_backend_url
from ._user_agent import user_agent_label

__version__ = "1.0.0"

__all__ = [
    "MAX_FLASH_BYTES",
    "AuthInfo",
    "AuthSession",
    "Backend",
    "BackendError",
    "BackendMetrics",
    "BackendNotFound",
    "BackendURL",
    "BackendUnavailable",
    "CSRFError",
    "CSRFProtect",
    "ClientSideBackend",
    "ConfigurationError",
    "DuplicateBackend",
    "KeyTurns",
    "LeaseLock",
    "LeaseStore",
    "LocalLock",
    "LockLost",
    "LockTimeout",
    "LoginGuard",
    "MultiBackend",
    "SanicCookiesError",
    "Session",
    "SessionConfig",
    "SessionDict",
    "SessionInfo",
    "SessionLock",
    "SessionNotLoaded",
    "SessionRecord",
    "SessionSchema",
    "SessionSerializationError",
    "SessionTooLarge",
    "SessionValidationError",
    "StoreObserver",
    "StoredSession",
    "Turn",
    "UnsupportedOperation",
    "WebsocketSessionError",
    "backend_from_url",
    "csrf_exempt",
    "csrf_protect",
    "csrf_token",
    "flash",
    "fresh_login_required",
    "get_flashed_messages",
    "is_safe_path",
    "login_required",
    "parse_backend_url",
    "redact_url",
    "register",
    "registered_schemes",
    "safe_next",
    "served_over_asgi",
    "split_backend_url",
    "user_agent_label",
]
