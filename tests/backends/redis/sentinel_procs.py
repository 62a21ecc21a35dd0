"""A Redis Sentinel deployment the tests own: 1 master, 1 replica, 3 sentinels on loopback.

Real ``redis-server`` processes (the sentinels run ``redis-server --sentinel``)
on spare ports, configured in a temporary directory, without persistence
(``--save "" --appendonly no``), with short Sentinel timeouts so a failover
takes a couple of seconds. Every process is killed and reaped by
`SentinelGroup.stop`.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from redis_procs import HOST, RedisServer, _die_with_parent, cli, free_port, require_binary

SERVICE = "sctmaster"
#: Sentinel timings: the master is "down" after this many ms without a reply...
DOWN_AFTER_MS = 500
#: ...and a failover that stalls is retried after this many.
FAILOVER_TIMEOUT_MS = 2000

_NO_DISK = ["--save", "", "--appendonly", "no"]
# Full syncs without the default 5 s wait for more replicas.
_FAST_SYNC = ["--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0"]


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Poll `condition` until it holds; RuntimeError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def info(port: int, section: str) -> dict[str, str]:
    """``INFO section`` of the server on `port` as a dict ({} if it does not answer)."""
    try:
        text = cli(port, "info", section, timeout=5)
    except (subprocess.SubprocessError, OSError):
        return {}
    pairs = (line.split(":", 1) for line in text.splitlines() if ":" in line)
    return {k.strip(): v.strip() for k, v in pairs}


class Sentinel:
    """One redis-sentinel process watching `master_port`."""

    def __init__(self, directory: Path, master_port: int) -> None:
        # redis-server runs as a sentinel with --sentinel (the redis-sentinel binary is
        # only a link to it, in a Debian package of its own).
        self.binary = require_binary("redis-server")
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        directory.mkdir(parents=True, exist_ok=True)
        self.config = directory / "sentinel.conf"
        # Sentinel rewrites its config file as it learns: it must be its own, writable.
        self.config.write_text(
            f"port {self.port}\n"
            f"bind {HOST}\n"
            f"dir {directory}\n"
            f"logfile {directory / 'sentinel.log'}\n"
            f"sentinel monitor {SERVICE} {HOST} {master_port} 2\n"
            f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}\n"
            f"sentinel failover-timeout {SERVICE} {FAILOVER_TIMEOUT_MS}\n"
            f"sentinel parallel-syncs {SERVICE} 1\n"
        )

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, str(self.config), "--sentinel"],
            preexec_fn=_die_with_parent,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def master(self) -> dict[str, str]:
        """``SENTINEL MASTER <service>`` as a dict ({} if no answer)."""
        try:
            out = cli(self.port, "sentinel", "master", SERVICE, timeout=5).split()
        except (subprocess.SubprocessError, OSError):
            return {}
        return dict(zip(out[::2], out[1::2], strict=False))

    def master_port(self) -> int | None:
        """The port of the master this sentinel names now, or None."""
        try:
            out = cli(self.port, "sentinel", "get-master-addr-by-name", SERVICE, timeout=5).split()
        except (subprocess.SubprocessError, OSError):
            return None
        return int(out[1]) if len(out) == 2 else None

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        process.wait()

    def log(self) -> str:
        path = self.directory / "sentinel.log"
        return path.read_text(errors="replace") if path.exists() else ""


class SentinelGroup:
    """1 master, 1 replica and 3 sentinels on spare loopback ports, in `directory`."""

    def __init__(self, directory: Path) -> None:
        self.master = RedisServer(directory / "master", free_port(), [*_NO_DISK, *_FAST_SYNC])
        self.replica = RedisServer(
            directory / "replica",
            free_port(),
            [*_NO_DISK, *_FAST_SYNC, "--replicaof", f"{HOST} {self.master.port}"],
        )
        self.sentinels = [Sentinel(directory / f"sentinel{i}", self.master.port) for i in range(3)]

    def url(self, db: int = 0, scheme: str = "redis+sentinel") -> str:
        """The Sentinel URL of the deployment."""
        hosts = ",".join(f"{HOST}:{s.port}" for s in self.sentinels)
        return f"{scheme}://{hosts}/{SERVICE}/{db}"

    def start(self) -> None:
        """Start everything and wait until the replica is in sync and the sentinels agree."""
        try:
            self.master.start()
            self.replica.start()
            wait_for(
                lambda: info(self.replica.port, "replication").get("master_link_status") == "up",
                "the replica to sync",
            )
            for sentinel in self.sentinels:
                sentinel.start()
            wait_for(self._sentinels_ready, "the sentinels to see each other and the replica")
        except BaseException:
            self.stop()
            raise

    def _sentinels_ready(self) -> bool:
        for sentinel in self.sentinels:
            state = sentinel.master()
            if state.get("num-other-sentinels") != "2" or state.get("num-slaves") != "1":
                return False
            if state.get("flags") != "master":
                return False
        return True

    def master_port(self) -> int | None:
        """The port the first answering sentinel names as master."""
        for sentinel in self.sentinels:
            port = sentinel.master_port()
            if port is not None:
                return port
        return None

    def kill_master(self) -> None:
        """SIGKILL the current master process (no clean shutdown, nothing flushed)."""
        self.master.stop(signal.SIGKILL)

    def rejoin_old_master(self) -> None:
        """Start the killed master again, empty, as a replica of the new master.

        As an operator re-adds a node (Sentinel would also convert it when it
        came back as a master, but only on its next INFO, up to 10 s later).
        """
        new_master = self.master_port()
        assert new_master is not None and new_master != self.master.port
        self.master.extra = [*_NO_DISK, *_FAST_SYNC, "--replicaof", f"{HOST} {new_master}"]
        self.master.start()

    def failed_over(self) -> bool:
        """True once a majority of sentinels names the replica as master and it is one."""
        agree = sum(s.master_port() == self.replica.port for s in self.sentinels)
        return agree >= 2 and info(self.replica.port, "replication").get("role") == "master"

    def stop(self) -> None:
        for sentinel in self.sentinels:
            sentinel.stop()
        self.replica.stop(signal.SIGKILL)
        self.master.stop(signal.SIGKILL)

    def logs(self) -> str:
        return "\n".join(f"--- sentinel {s.port}\n{s.log()[-1500:]}" for s in self.sentinels)
