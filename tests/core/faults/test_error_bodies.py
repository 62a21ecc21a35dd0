"""A store failure answers 503 with one generic body; what failed, and why, goes to the log only.

1.0.0 answered "Session store redis unavailable during save" (and a lock timeout's own
message): the body told a visitor which store the app runs and which operation broke.
Each case here makes one kind of failure happen through a real app on a real store
(memory, Redis, PostgreSQL): a driver error, a lock held elsewhere until the request
times out, a lost lock, a failing per-user index call. Every 503 body must be the same
bytes, naming neither the store nor the error, in every error format Sanic renders;
the log must hold the detail.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from fault_harness import Rig, build_rig, key_of, next_cookie

from sanic_cookies import LockLost
from sanic_cookies._errors import CLIENT_MESSAGE

STORES = ["memory", "redis", "postgres"]

#: What the injected faults say: none of it may reach a client.
DRIVER_DETAIL = "could not connect to server at 10.9.8.7:6379 (password for 'sessions' rejected)"
LOST_DETAIL = "lease of the lock on sessions-primary ran out"

#: Words that would tell a client what broke (the body's generic "Session store" is fine).
TELLTALES = (
    "memory",
    "redis",
    "postgres",
    "10.9.8.7",
    "password",
    "sessions-primary",
    "lock",
    "lease",
    "timeout",
    "acquire",
    "during",
    "Connection",
    "LockLost",
    "LockTimeout",
    "BackendUnavailable",
    "Injected",
)

FORMATS = {
    "route's": {},  # Sanic picks the format of the route's own responses (JSON here)
    "text": {"accept": "text/plain"},
    "json": {"accept": "application/json"},
    "html": {"accept": "text/html"},
}


async def _rig(stores: Any, kind: str, tag: str) -> tuple[Rig, str]:
    backend, reader = await stores(kind, tag)
    rig = build_rig([backend], [reader], faulty_index=0, lock_timeout=0.3)
    response = await rig.request("/login")  # logged in: the index operations apply
    assert response.status == 200, response.text
    cookie = next_cookie(response, None)
    response = await rig.request("/set?n=1", cookie)
    assert response.status == 200, response.text
    cookie = next_cookie(response, cookie)
    assert cookie is not None
    return rig, cookie


def _assert_generic(response: Any, expected_body: bytes | None) -> bytes:
    assert response.status == 503, response.text
    body: bytes = response.body
    # What a reader sees: Sanic's HTML error page carries its own script and styles.
    shown = re.sub(r"<(script|style)>.*?</\1>", "", body.decode(), flags=re.DOTALL)
    for word in TELLTALES:
        found = re.search(rf"\b{re.escape(word)}", shown, re.IGNORECASE)
        assert found is None, f"{word!r} in the 503 body: {body!r}"
    assert CLIENT_MESSAGE in body.decode()
    if expected_body is not None:
        assert body == expected_body, "two failures gave different bodies"
    return body


def _logged(caplog: pytest.LogCaptureFixture, *needles: str) -> None:
    lines = [r.getMessage() for r in caplog.records if r.name == "sanic_cookies"]
    assert any(all(n in line for n in needles) for line in lines), (needles, lines)


Failure = Callable[[Rig, str, dict[str, str]], Awaitable[Any]]


async def _driver_error(rig: Rig, cookie: str, headers: dict[str, str]) -> Any:
    with rig.faulty.fail("acquire", exc=ConnectionRefusedError(DRIVER_DETAIL)):
        return await rig.request("/get", cookie, headers=headers)


async def _held_lock(rig: Rig, cookie: str, headers: dict[str, str]) -> Any:
    # Another process (here: a second client of the same store) holds the session's lock.
    key = key_of(cookie)
    assert key is not None
    holder = rig.readers[0].lock(key, timeout=5.0, lease=30.0)
    await holder.acquire()
    try:
        return await rig.request("/set?n=2", cookie, headers=headers)
    finally:
        await holder.release()


async def _lost_lock(rig: Rig, cookie: str, headers: dict[str, str]) -> Any:
    with rig.faulty.fail("save_and_release", exc=LockLost(LOST_DETAIL)):
        return await rig.request("/set?n=2", cookie, headers=headers)


async def _index_error(rig: Rig, cookie: str, headers: dict[str, str]) -> Any:
    with rig.faulty.fail("delete_user_sessions", exc=ConnectionResetError(DRIVER_DETAIL)):
        return await rig.request("/logout-all", cookie, headers=headers)


FAILURES: dict[str, tuple[Failure, tuple[str, ...]]] = {
    # name: (how to fail, what the log line must say)
    "driver-error": (_driver_error, ("lock on backend", "ConnectionRefusedError", DRIVER_DETAIL)),
    "lock-timeout": (_held_lock, ("lock on backend", "LockTimeout")),
    "lock-lost": (_lost_lock, ("save on backend", "LockLost", LOST_DETAIL)),
    "index-error": (_index_error, ("delete_user_sessions", "ConnectionResetError", DRIVER_DETAIL)),
}


@pytest.mark.parametrize("fmt", list(FORMATS))
@pytest.mark.parametrize("kind", STORES)
async def test_every_store_failure_gives_the_same_body_naming_nothing(
    kind: str, fmt: str, stores: Any, tag: str, caplog: pytest.LogCaptureFixture
) -> None:
    rig, cookie = await _rig(stores, kind, tag)
    headers = FORMATS[fmt]
    body: bytes | None = None
    for name, (fail, logged) in FAILURES.items():
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="sanic_cookies"):
            response = await fail(rig, cookie, headers)
        body = _assert_generic(response, body)
        _logged(caplog, *logged)
        # The session is intact and usable afterwards (nothing held, nothing lost).
        response = await rig.request("/get", cookie)
        assert response.status == 200, (name, response.text)
        assert response.json == {"n": "1"}, name


async def test_the_error_a_handler_catches_keeps_its_class_and_cause(stores: Any, tag: str) -> None:
    # Handlers may still tell a lock timeout from a dead store; the detail is the cause.
    from sanic import Request, json

    from sanic_cookies import BackendError, LockTimeout

    rig, cookie = await _rig(stores, "memory", tag)
    seen: dict[str, Any] = {}

    @rig.app.get("/careful")
    async def careful(request: Request) -> Any:
        try:
            async with request.ctx.session:
                pass
        except BackendError as exc:
            seen["exc"] = exc
            return json({"kind": type(exc).__name__, "said": str(exc)}, status=503)
        return json({})

    key = key_of(cookie)
    assert key is not None
    holder = rig.readers[0].lock(key, timeout=5.0, lease=30.0)
    await holder.acquire()
    try:
        response = await rig.request("/careful", cookie)
    finally:
        await holder.release()
    assert response.json == {"kind": "LockTimeout", "said": CLIENT_MESSAGE}
    exc = seen["exc"]
    assert isinstance(exc, LockTimeout)
    assert isinstance(exc.__cause__, LockTimeout) and "0.3" in str(exc.__cause__)
