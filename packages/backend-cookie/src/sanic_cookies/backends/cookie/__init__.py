"""The encrypted-cookie backend for sanic-cookies (``cookie://``).

The whole session lives in the cookie, encrypted and authenticated with
Fernet; the server keeps nothing (unless you add a revocation list)::

    app.config.SESSION_BACKEND = "cookie://"
    app.config.SESSION_KEYS = ["<new key>", "<old key>"]  # python -m sanic_cookies keygen
    Session(app)

or, with an explicit instance and a revocation list in Redis::

    Session(app, backend=CookieBackend(keys=[...], revocation="redis://127.0.0.1:6379/0"))

See `CookieBackend` for keys and their rotation, expiry, the 4093-byte size
limit, what ``async with`` locks here, and logout/revocation.
"""

from ._backend import MAX_COOKIE_SIZE, CookieBackend
from ._keys import KEYGEN_HINT, parse_keys

__all__ = ["KEYGEN_HINT", "MAX_COOKIE_SIZE", "CookieBackend", "parse_keys"]
