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

__all__ = ["kill_group"]


def kill_group(pgid: int) -> None:
    """SIGKILL every process still in group `pgid` (none left is fine)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
