"""Memory per stored session in the memory backend; encoded cookie size.

``python -m bench.memsize [--sessions N]`` prints one JSON line. Run it in a
fresh process: tracemalloc counts every block the backend still holds after N
saves through the core's own record encoding (the hex keys and coroutines of
each call are freed on the way, so only what the backend keeps is counted).
`sys.getsizeof` over the backend's dict, keys, entry tuples and their items is
printed alongside as a cross-check.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
import time
import tracemalloc
from typing import Any

#: A small session: what a typical anonymous visitor's session holds.
PAYLOAD: dict[str, Any] = {"n": 1, "theme": "dark", "cart": [101, 202]}


def _record(data: dict[str, Any]) -> bytes:
    import msgspec

    from sanic_cookies._record import SessionRecord, encode_data, encode_record

    t = time.time()
    return encode_record(
        SessionRecord(
            data=msgspec.Raw(encode_data(data)),
            created=t,
            deadline=t + 90 * 86400,
            ttl=30 * 86400.0,
        )
    )


def _getsizeof_deep(backend: Any) -> int:
    """Bytes of the backend's dicts, keys and entries (and an entry tuple's items)."""
    total = sum(sys.getsizeof(d) for d in (backend._data, getattr(backend, "_owners", {})))
    for key, entry in backend._data.items():
        total += sys.getsizeof(key) + sys.getsizeof(entry)
        if isinstance(entry, tuple):
            total += sum(sys.getsizeof(item) for item in entry if item is not None)
    return total


async def memory_backend_bytes(sessions: int) -> dict[str, Any]:
    """Save `sessions` sessions of `PAYLOAD` and measure what the backend holds."""
    from sanic_cookies._ids import new_session_id, store_key
    from sanic_cookies._record import encode_data
    from sanic_cookies.backends.memory import MemoryBackend

    backend = MemoryBackend()
    payload = len(encode_data(PAYLOAD))
    sample = _record(PAYLOAD)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for _ in range(sessions):
        # A fresh record per session, as real sessions have their own timestamps.
        await backend.save(store_key(new_session_id()), _record(PAYLOAD), 86400.0)
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    per_session = (after - before) / sessions
    return {
        "sessions": sessions,
        "payload_bytes": payload,
        "record_bytes": len(sample),
        "tracemalloc_per_session": round(per_session, 1),
        "getsizeof_per_session": round(_getsizeof_deep(backend) / sessions, 1),
        "overhead_per_session": round(per_session - payload, 1),
    }


#: A typical logged-in session: a CSRF token and a preference, and who is logged in.
AUTH_DATA: dict[str, Any] = {"csrf": "x" * 43, "theme": "dark"}
AUTH_USER: dict[str, Any] = {"id": 12345, "name": "alice", "roles": ["customer"]}


async def cookie_bytes() -> dict[str, Any] | None:
    """Encoded cookie size of a typical logged-in session, in the new and the 1.0.0 format.

    None without the cookie backend.
    """
    try:
        from cryptography.fernet import Fernet

        from sanic_cookies.backends.cookie import CookieBackend
    except ImportError:
        return None
    import msgspec

    from sanic_cookies._record import AuthInfo, SessionRecord, encode_data, encode_record
    from sanic_cookies._set_cookie import SessionCookie

    t = time.time()
    ttl = 30 * 86400.0
    record = encode_record(
        SessionRecord(
            data=msgspec.Raw(encode_data(AUTH_DATA)),
            created=t,
            deadline=t + 90 * 86400,
            ttl=ttl,
            persistent=False,  # auth sessions default to browser-session cookies
            auth=AuthInfo(user=AUTH_USER, user_id="12345", login_at=t),
        )
    )
    from bench.cookie_v1 import CookieBackendV1

    key = Fernet.generate_key().decode()
    sizes: dict[str, Any] = {"record_bytes": len(record)}
    for label, backend in (("", CookieBackend(keys=[key])), ("_1_0", CookieBackendV1(keys=[key]))):
        token = await backend.encode_cookie(record, ttl, deadline=t + 90 * 86400)
        header = str(SessionCookie("session", token, secure=True, httponly=True, samesite="Lax"))
        sizes[f"cookie_bytes{label}"] = len(token)
        sizes[f"header_bytes{label}"] = len(f"Set-Cookie: {header}")
    return sizes


def main(argv: list[str] | None = None) -> None:
    """Print the measurements as one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sessions", type=int, default=100_000)
    args = parser.parse_args(argv)
    result: dict[str, Any] = {"memory": asyncio.run(memory_backend_bytes(args.sessions))}
    result["cookie"] = asyncio.run(cookie_bytes())
    print(json.dumps(result))


if __name__ == "__main__":
    main()
