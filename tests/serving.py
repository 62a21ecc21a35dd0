"""A Sanic app served for real in the test's own event loop.

Unlike the ASGI test client, which starts and stops the app around every request, the
app starts once and answers over a real socket: connections and prepared statements
persist across requests (as in production), websockets can be opened, and the
library's clock (the ``manual_clock`` fixture) is the server's clock too.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

__all__ = ["serving"]


@contextlib.asynccontextmanager
async def serving(app: Any) -> AsyncIterator[str]:
    """Serve `app` on a spare port of this event loop; yields ``127.0.0.1:<port>``."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    address = f"127.0.0.1:{sock.getsockname()[1]}"
    server = await app.create_server(sock=sock, return_asyncio_server=True, access_log=False)
    assert server is not None
    await server.startup()
    await server.before_start()
    await server.after_start()
    try:
        yield address
    finally:
        await server.before_stop()
        closing = server.close()
        if closing is not None:
            await closing
        await server.after_stop()
        sock.close()
