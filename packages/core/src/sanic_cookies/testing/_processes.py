"""A second OS process that opens the same backend, for the cross-process tests.

`Peer` starts ``python -m sanic_cookies.testing._peer``, hands it the backend's
class, URL and options, and sends it commands. Every wait is bounded; the
process is always reaped (killed if it is still running) when the block ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import tempfile
from types import TracebackType
from typing import Any, Self

import pytest

from sanic_cookies._backend import Backend

__all__ = ["CROSS_PROCESS_RULE", "Peer", "PeerError"]

#: Named in every failure of a cross-process test.
CROSS_PROCESS_RULE = (
    "the cross-process rule: a backend that does not declare per_process = True shares its "
    "store between processes, so its lock must exclude, expire and fence across processes"
)

# A reply takes milliseconds, but the first one waits for a Python start-up and
# the backend's imports and connection on a machine that may be busy.
_REPLY_TIMEOUT = 60.0


class PeerError(Exception):
    """A command failed in the peer; `name` is the exception class it raised there."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name


def class_path(cls: type[Backend]) -> str:
    """``module:QualName`` of `cls` (a test failure if another process cannot import it)."""
    if cls.__module__ == "__main__" or "<locals>" in cls.__qualname__:
        pytest.fail(
            f"{cls.__qualname__} cannot be imported by a second process (defined in "
            f"{cls.__module__}, {cls.__qualname__}): define it at the top level of a module"
        )
    return f"{cls.__module__}:{cls.__qualname__}"


class Peer:
    """A second process holding its own instance of the backend (``async with Peer(...)``)."""

    def __init__(self, cls: type[Backend], url: str, options: dict[str, Any]) -> None:
        try:
            self._spec = json.dumps({"backend": class_path(cls), "url": url, "options": options})
        except TypeError as exc:
            pytest.fail(f"backend_options() must be JSON values to reach a second process: {exc}")
        self._proc: asyncio.subprocess.Process | None = None
        # Closed by __aexit__ (or __aenter__'s failure): it outlives this method.
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115

    async def __aenter__(self) -> Self:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "sanic_cookies.testing._peer",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=self._stderr,
            env=env,
        )
        try:
            await self._send(json.loads(self._spec))
            await self._reply("start-up")
        except BaseException:
            await self._reap()
            self._stderr.close()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if exc_type is None and self.running:
                await self.call("exit")
        finally:
            await self._reap()
            self._stderr.close()

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    async def call(self, op: str, **args: Any) -> dict[str, Any]:
        """Run one command in the peer; raise `PeerError` if it raised there."""
        await self.send(op, **args)
        return await self.reply(op)

    async def send(self, op: str, **args: Any) -> None:
        """Start a command without waiting for its answer (see `reply`)."""
        await self._send({"op": op, **args})

    async def reply(self, op: str) -> dict[str, Any]:
        """The answer of the command sent last."""
        answer = await self._reply(op)
        if "error" in answer:
            raise PeerError(answer["error"], answer.get("message", ""))
        return answer

    async def kill(self) -> None:
        """SIGKILL the peer mid-whatever, and reap it."""
        await self._reap()

    def pause(self) -> None:
        """SIGSTOP: the peer stops dead, holding whatever it holds, until `resume`."""
        assert self._proc is not None
        os.kill(self._proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT a paused peer."""
        assert self._proc is not None
        os.kill(self._proc.pid, signal.SIGCONT)

    async def _send(self, message: dict[str, Any]) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        self._proc.stdin.write(json.dumps(message).encode() + b"\n")
        await self._proc.stdin.drain()

    async def _reply(self, what: str) -> dict[str, Any]:
        assert self._proc is not None and self._proc.stdout is not None
        try:
            line = await asyncio.wait_for(self._proc.stdout.readline(), _REPLY_TIMEOUT)
        except TimeoutError:
            pytest.fail(f"the second process did not answer {what} within {_REPLY_TIMEOUT:g}s")
        if not line:
            await self._reap()
            pytest.fail(f"the second process died during {what}:\n{self._errors()}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def _errors(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")[-4000:]

    async def _reap(self) -> None:
        proc = self._proc
        if proc is not None:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()  # SIGKILL ends a stopped (SIGSTOP) process too
            await proc.wait()
            if proc.stdin is not None:
                proc.stdin.close()
