"""Loopback ports for the servers the tests start (redis-server, PostgreSQL, Sanic apps).

A port asked of the kernel (bind to port 0) comes from its ephemeral range, the range
every outgoing connection takes its local port from too: between the moment a test
finds such a port free and the moment its server binds it, a client socket, or the
same search in another pytest-xdist worker, can take it. So the ports here come from
below that range (10000-19999; a cluster's bus port, port + 10000, stays below it
too), a block of 1000 per xdist worker, each handed out once per run, and are checked
free by binding them.
"""

from __future__ import annotations

import itertools
import os
import random
import socket

__all__ = ["free_port"]

HOST = "127.0.0.1"
_FIRST = 10000
_PER_WORKER = 1000
# A random start, so that two test runs at once (a developer's and CI) rarely meet.
_next = itertools.count(random.randrange(_PER_WORKER))


def _worker() -> int:
    """This process's xdist worker number (gw0, gw1, ...) modulo 10; 0 without xdist."""
    digits = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    return int(digits) % 10 if digits.isdigit() else 0


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


# Ports of the range that browsers refuse to open (Chromium: net::ERR_UNSAFE_PORT, seen
# in CI for a demo app on 10080).
_UNSAFE_FOR_BROWSERS = {10080}


def free_port(*, with_bus: bool = False) -> int:
    """A loopback TCP port nothing uses now (and port + 10000 too, for a cluster bus)."""
    first = _FIRST + _worker() * _PER_WORKER
    for _ in range(_PER_WORKER):
        port = first + next(_next) % _PER_WORKER
        if port in _UNSAFE_FOR_BROWSERS:
            continue
        if _bindable(port) and (not with_bus or _bindable(port + 10000)):
            return port
    raise RuntimeError(f"no free loopback port in {first}-{first + _PER_WORKER - 1}")
