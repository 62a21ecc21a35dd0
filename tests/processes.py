"""Stopping the servers tests start, with everything they started.

A multi-worker Sanic server is a process group: the main process, its workers and
multiprocessing's resource tracker. Stopping the main process alone can leave the others
running (orphans that outlive the test run); so a server is started in a session of its
own (``start_new_session=True``) and, once its main process has exited, whatever is left
of its group is killed.
"""

from __future__ import annotations

import contextlib
import os
import signal

__all__ = ["fixture_owned", "kill_group", "owned_by_fixture"]

_OWNED: set[int] = set()


def kill_group(pgid: int) -> None:
    """SIGKILL every process still in group `pgid` (none left is fine)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def owned_by_fixture(pid: int) -> None:
    """Declare `pid` part of a fixture broader than one test (a module's database server
    that a test restarts): the per-test check of tests/conftest.py leaves it to that
    fixture; the end-of-run check still fails if it is running then."""
    _OWNED.add(pid)


def fixture_owned() -> frozenset[int]:
    """The pids declared with `owned_by_fixture`."""
    return frozenset(_OWNED)
