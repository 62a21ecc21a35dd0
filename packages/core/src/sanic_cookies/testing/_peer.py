"""The second process of the cross-process tests: ``python -m sanic_cookies.testing._peer``.

It reads one JSON line naming the backend class, URL and options, builds and opens
the backend, answers ``{"ready": true}``, then runs one command per JSON line on
stdin and answers one JSON line on stdout each:

    {"op": "acquire", "key": K, "timeout": T, "lease": L}  -> {"ok": true, "n": N or null}
    {"op": "save_and_release", "n": N, "ttl": S}            -> {"ok": true, "result": bool}
    {"op": "release"}                                       -> {"ok": true}
    {"op": "increment", "key": K, "times": N}               -> {"ok": true}
    {"op": "encode", "n": N, "ttl": S}                      -> {"ok": true, "token": str}
    {"op": "decode", "token": str}                          -> {"ok": true, "n": N or null}
    {"op": "exit"}                                          -> {"ok": true}, then exits

A failed command answers ``{"error": "<exception class>", "message": "..."}``.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from sanic_cookies._backend import Backend, ClientSideBackend, SessionLock

from ._values import decode_stored, encode_value


def _load_class(path: str) -> type[Backend]:
    module_name, _, qualname = path.partition(":")
    target: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        target = getattr(target, part)
    if not (isinstance(target, type) and issubclass(target, Backend)):
        raise TypeError(f"{path} is not a Backend subclass")
    return target


class _Peer:
    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.lock: SessionLock | None = None

    async def run(self, op: str, args: dict[str, Any]) -> dict[str, Any]:
        """Run command `op` with `args`; its answer (without ``"ok"``)."""
        command = _COMMANDS.get(op)
        if command is None:
            raise ValueError(f"unknown op {op!r}")
        return await command(self, args)

    async def acquire(self, args: dict[str, Any]) -> dict[str, Any]:
        self.lock = self.backend.lock(args["key"], timeout=args["timeout"], lease=args["lease"])
        return {"n": decode_stored(await self.lock.acquire())}

    async def save_and_release(self, args: dict[str, Any]) -> dict[str, Any]:
        assert self.lock is not None, "acquire first"
        result = await self.lock.save_and_release(encode_value(args["n"]), args["ttl"])
        return {"result": result}

    async def release(self, args: dict[str, Any]) -> dict[str, Any]:
        if self.lock is not None:
            await self.lock.release()
        return {}

    async def increment(self, args: dict[str, Any]) -> dict[str, Any]:
        await asyncio.gather(*(self._increment(args["key"]) for _ in range(args["times"])))
        return {}

    async def encode(self, args: dict[str, Any]) -> dict[str, Any]:
        backend = self.backend
        assert isinstance(backend, ClientSideBackend)
        return {"token": await backend.encode_cookie(encode_value(args["n"]), args["ttl"])}

    async def decode(self, args: dict[str, Any]) -> dict[str, Any]:
        backend = self.backend
        assert isinstance(backend, ClientSideBackend)
        return {"n": decode_stored(await backend.decode_cookie(args["token"]))}

    async def _increment(self, key: str) -> None:
        lock = self.backend.lock(key, timeout=60, lease=30)
        n = decode_stored(await lock.acquire()) or 0
        try:
            await asyncio.sleep(0)  # let the other increments of this process interleave
            await lock.save_and_release(encode_value(n + 1), 60)
        finally:
            await lock.release()


#: The commands `_Peer.run` takes (``exit`` is the main loop's).
_COMMANDS: dict[str, Callable[[_Peer, dict[str, Any]], Awaitable[dict[str, Any]]]] = {
    "acquire": _Peer.acquire,
    "save_and_release": _Peer.save_and_release,
    "release": _Peer.release,
    "increment": _Peer.increment,
    "encode": _Peer.encode,
    "decode": _Peer.decode,
}


def _send(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def _main() -> None:
    loop = asyncio.get_running_loop()
    spec = json.loads(await loop.run_in_executor(None, sys.stdin.readline))
    backend = _load_class(spec["backend"]).from_url(spec["url"], **spec["options"])
    await backend.open()
    try:
        peer = _Peer(backend)
        _send({"ready": True})
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            command = json.loads(line)
            op = command.pop("op")
            if op == "exit":
                break
            try:
                _send({"ok": True, **await peer.run(op, command)})
            except Exception as exc:
                _send({"error": type(exc).__name__, "message": str(exc)})
    finally:
        await backend.close()
    _send({"ok": True})


if __name__ == "__main__":
    asyncio.run(_main())
