"""A TCP proxy that counts round trips and commands between an app and its store.

A round trip is a turn of the conversation: client bytes that follow server
bytes (or open the connection). Pipelined commands sent together count as one
round trip, which is the cost that matters. The proxy also parses the client's
stream to count commands: RESP arrays for Redis, Query/Execute messages for
PostgreSQL (``ssl`` must be off so the stream is readable).

Counts are only meaningful while requests run one at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class Counts:
    """What the proxy saw since the last `reset`.

    Attributes:
        round_trips: Client turns, summed over connections.
        commands: Commands (Redis) or statements executed (PostgreSQL).
        names: Commands by name (Redis command, or first SQL word).
    """

    round_trips: int = 0
    commands: int = 0
    names: Counter[str] = field(default_factory=Counter)

    def reset(self) -> None:
        """Start counting from zero."""
        self.round_trips = self.commands = 0
        self.names.clear()


class _StreamParser:
    """Buffers a client stream and hands each complete message to `_one`."""

    def __init__(self, counts: Counts) -> None:
        self.counts = counts
        self.buf = b""

    def feed(self, data: bytes) -> None:
        self.buf += data
        while True:
            used = self._one()
            if used == 0:
                return
            self.buf = self.buf[used:]

    def _one(self) -> int:
        """Count the message at the start of `buf`; return its length, or 0 if incomplete."""
        raise NotImplementedError


class _RespParser(_StreamParser):
    """Counts complete RESP commands (arrays of bulk strings) in a client stream."""

    def _one(self) -> int:
        buf = self.buf
        if not buf:
            return 0
        if buf[:1] != b"*":  # inline command
            end = buf.find(b"\r\n")
            if end < 0:
                return 0
            self._count(buf[:end].split(b" ", 1)[0])
            return end + 2
        end = buf.find(b"\r\n")
        if end < 0:
            return 0
        items = int(buf[1:end])
        pos = end + 2
        name = b""
        for k in range(items):
            end = buf.find(b"\r\n", pos)
            if end < 0:
                return 0
            length = int(buf[pos + 1 : end])
            start = end + 2
            if len(buf) < start + length + 2:
                return 0
            if k == 0:
                name = buf[start : start + length]
            pos = start + length + 2
        self._count(name)
        return pos

    def _count(self, name: bytes) -> None:
        self.counts.commands += 1
        self.counts.names[name.decode(errors="replace").upper()] += 1


_SSL_REQUEST, _GSS_REQUEST, _PROTOCOL_3 = 80877103, 80877104, 196608


class _PgParser(_StreamParser):
    """Counts statements (Query and Execute messages) in a PostgreSQL client stream."""

    def __init__(self, counts: Counts) -> None:
        super().__init__(counts)
        self.started = False
        self.statements: dict[bytes, str] = {}  # prepared statement name -> SQL
        self.portals: dict[bytes, str] = {}  # portal name -> SQL of its statement

    def _one(self) -> int:
        buf = self.buf
        if not self.started:
            if len(buf) < 8:
                return 0
            length: int = struct.unpack("!i", buf[:4])[0]
            if len(buf) < length:
                return 0
            (code,) = struct.unpack("!i", buf[4:8])
            if code not in (_SSL_REQUEST, _GSS_REQUEST):
                self.started = code == _PROTOCOL_3 or self.started
            return length
        if len(buf) < 5:
            return 0
        kind = buf[:1]
        length = struct.unpack("!i", buf[1:5])[0]
        if len(buf) < 1 + length:
            return 0
        body = buf[5 : 1 + length]
        if kind == b"P":  # Parse: statement\0 query\0 ...
            name, _, rest = body.partition(b"\0")
            self.statements[name] = rest.partition(b"\0")[0].decode(errors="replace")
        elif kind == b"B":  # Bind: portal\0 statement\0 ...
            portal, _, rest = body.partition(b"\0")
            self.portals[portal] = self.statements.get(rest.partition(b"\0")[0], "?")
        elif kind == b"Q":
            self._count(body[:-1].decode(errors="replace"))
        elif kind == b"E":  # Execute: portal\0 ...
            self._count(self.portals.get(body.partition(b"\0")[0], "?"))
        return 1 + length

    def _count(self, sql: str) -> None:
        self.counts.commands += 1
        self.counts.names[(sql.split(None, 1) or ["?"])[0].upper()] += 1


class CountingProxy:
    """Listen on a free loopback port and forward every connection to `target`.

    Args:
        target_host: Store host.
        target_port: Store port.
        protocol: ``"redis"`` or ``"postgres"`` (how to count commands).
    """

    def __init__(self, target_host: str, target_port: int, protocol: str) -> None:
        self.target = (target_host, target_port)
        self.protocol = protocol
        self.counts = Counts()
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Start listening; `port` is set afterwards."""
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening and drop the open connections."""
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        parser = _RespParser(self.counts) if self.protocol == "redis" else _PgParser(self.counts)
        turn = ["server"]  # whose bytes went last on this connection

        async def client_to_server() -> None:
            while data := await reader.read(65536):
                if turn[0] == "server":
                    self.counts.round_trips += 1
                    turn[0] = "client"
                parser.feed(data)
                up_writer.write(data)
                await up_writer.drain()
            up_writer.close()

        async def server_to_client() -> None:
            while data := await up_reader.read(65536):
                turn[0] = "server"
                writer.write(data)
                await writer.drain()
            writer.close()

        tasks = [asyncio.create_task(client_to_server()), asyncio.create_task(server_to_client())]
        self._tasks.update(tasks)
        try:
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            self._tasks.difference_update(tasks)
            writer.close()
            up_writer.close()
