"""Redis backend for sanic-cookies: ``redis://``, ``rediss://``, Redis Cluster and Sentinel.

::

    from sanic_cookies import Session

    Session(app, backend="redis://127.0.0.1:6379/0")
    Session(app, backend="redis+sentinel://s1:26379,s2:26379,s3:26379/mymaster/0")
    # or: Session(app, backend=RedisBackend(client=app.ctx.redis, prefix="shop:session:"))

Sessions are stored with native TTLs; ``async with request.ctx.session`` takes
a lock shared by every process and machine using the same Redis, fenced so a
holder whose lease ran out can never overwrite a newer write.
"""

from __future__ import annotations

from ._backend import RedisBackend
from ._keys import KeySpace
from ._lock import RedisLock

__all__ = ["KeySpace", "RedisBackend", "RedisLock"]
