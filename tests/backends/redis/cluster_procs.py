"""Redis Clusters the cluster tests own (with replicas, short timeouts), and the load they drive.

Every node is a real redis-server on a spare loopback port, killed by the
fixture that started it. Waits are bounded loops on a condition, never a
sleep that lets time pass.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from redis.crc import key_slot
from redis_procs import HOST, AppServer, RedisServer, cli, free_port, session_cookie

from sanic_cookies._ids import store_key

# Milliseconds without an answer after which the cluster counts a node as failed:
# small, so a failover takes a couple of seconds.
NODE_TIMEOUT_MS = 1000


class OwnCluster:
    """A Redis Cluster of `masters` primaries with `replicas` replicas each, in `directory`.

    ``cluster-require-full-coverage no``, as docs/production.md recommends: a
    failed shard makes only its own slots unavailable, not the whole cluster.
    """

    def __init__(self, directory: Path, masters: int = 3, replicas: int = 0) -> None:
        self.masters = masters
        self.replicas = replicas
        self.nodes: list[RedisServer] = []
        for i in range(masters * (1 + replicas)):
            home = directory / f"node{i}"
            extra = [
                "--cluster-enabled", "yes",
                "--cluster-config-file", str(home / "nodes.conf"),
                "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
                "--cluster-require-full-coverage", "no",
                "--cluster-replica-validity-factor", "0",
                "--save", "",
                "--appendonly", "no",
            ]  # fmt: skip
            self.nodes.append(RedisServer(home, free_port(with_bus=True), extra))

    @property
    def url(self) -> str:
        return f"redis+cluster://{HOST}:{self.nodes[0].port}"

    def start(self, timeout: float = 60.0) -> None:
        try:
            for node in self.nodes:
                node.start()
            addresses = [f"{HOST}:{node.port}" for node in self.nodes]
            cli(
                self.nodes[0].port,
                "--cluster", "create", *addresses,
                "--cluster-replicas", str(self.replicas),
                "--cluster-yes",
            )  # fmt: skip
            wait_until(self._ready, timeout, "the test Redis Cluster did not get ready")
        except BaseException:
            self.stop()
            raise

    def _ready(self) -> bool:
        for node in self.alive():
            if "cluster_state:ok" not in cli(node.port, "cluster", "info"):
                return False
            info = cli(node.port, "info", "replication")
            if "role:slave" in info and "master_link_status:up" not in info:
                return False
        return True

    def alive(self) -> list[RedisServer]:
        return [n for n in self.nodes if n.process is not None and n.process.poll() is None]

    def stop(self) -> None:
        for node in self.nodes:
            node.stop(signal.SIGKILL)

    def kill(self, node: RedisServer) -> None:
        """SIGKILL `node`: no clean shutdown, no last write to its replica."""
        node.stop(signal.SIGKILL)

    def node_id(self, node: RedisServer) -> str:
        return cli(node.port, "cluster", "myid").strip()

    def owner_port(self, slot: int, via: RedisServer | None = None) -> int:
        """The port of the primary serving `slot`, as `via` (a live node) sees it."""
        via = via or self.alive()[0]
        for line in cli(via.port, "cluster", "nodes").splitlines():
            parts = line.split()
            if "master" not in parts[2] or "fail" in parts[2]:
                continue
            for spec in parts[8:]:
                if spec.startswith("["):  # a migration in progress, not an owned range
                    continue
                first, _, last = spec.partition("-")
                if int(first) <= slot <= int(last or first):
                    return int(parts[1].split("@")[0].rsplit(":", 1)[1])
        raise LookupError(f"no live primary serves slot {slot}")

    def by_port(self, port: int) -> RedisServer:
        return next(n for n in self.nodes if n.port == port)

    def replicas_caught_up(self) -> bool:
        """True when every live primary's replicas acknowledged all it wrote."""
        for node in self.alive():
            info = dict(
                line.split(":", 1)
                for line in cli(node.port, "info", "replication").splitlines()
                if ":" in line
            )
            if info.get("role") != "master":
                continue
            offset = int(info["master_repl_offset"])
            for name, value in info.items():
                if name.startswith("slave") and name[5:].isdigit():
                    fields = dict(item.split("=", 1) for item in value.split(","))
                    if int(fields["offset"]) < offset:
                        return False
        return True


def wait_until(condition: Callable[[], bool], timeout: float, message: str) -> None:
    """Poll `condition` until it holds; fail with `message` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(message)
        time.sleep(0.05)


async def wait_for(condition: Callable[[], bool], within: float, message: str) -> None:
    """`wait_until` for the event loop: the load keeps running while it waits."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(message)
        await asyncio.sleep(0.02)


class ClusterAppServer(AppServer):
    """`cluster_app.py` (the Redis test app with a tagged counter) as a Sanic server."""

    APP = Path(__file__).with_name("cluster_app.py")


@dataclass
class TaggedSession:
    """One session of the load: its cookie, its tag, its slot, what the app answered."""

    tag: str
    cookie: str
    slot: int
    acked: list[int] = field(default_factory=list)  # the counter values answered with 200

    def lost(self, final: int) -> int:
        """Acknowledged increments missing from `final`.

        Each 200 reports the value its increment stored; if they all survive,
        they are distinct and at most `final`. A repeated value (an increment
        redone on an older copy) or one above `final` is an increment lost.
        """
        return len(self.acked) - len({n for n in self.acked if n <= final})


@dataclass
class LoadReport:
    """What the load saw: statuses, answers carrying another session's tag, timings."""

    statuses: Counter[int] = field(default_factory=Counter)
    wrong: list[str] = field(default_factory=list)
    events: list[tuple[float, TaggedSession, int]] = field(default_factory=list)


async def new_sessions(
    client: httpx.AsyncClient, count: int, prefix: str, run: str
) -> list[TaggedSession]:
    """`count` sessions made through the app, each holding its own tag and n=1."""
    sessions = []
    for i in range(count):
        tag = f"{run}-{i}"
        client.cookies.clear()  # a new visitor (the load sends its Cookie header itself)
        response = await client.get("/tagged", params={"tag": tag})
        assert response.status_code == 200, response.text
        assert response.json() == {"tag": tag, "n": 1}, response.json()
        cookie = session_cookie(response)
        key = store_key(cookie.split("=", 1)[1])
        session = TaggedSession(tag, cookie, key_slot(f"{prefix}{{{key}}}".encode()))
        session.acked.append(1)
        sessions.append(session)
    return sessions


async def one_increment(
    client: httpx.AsyncClient, session: TaggedSession, report: LoadReport
) -> int:
    """One locked increment of `session` through the app; its status, checked."""
    response = await client.get(
        "/tagged", params={"tag": session.tag}, headers={"Cookie": session.cookie}
    )
    status = response.status_code
    report.statuses[status] += 1
    report.events.append((time.monotonic(), session, status))
    if status == 200:
        body = response.json()
        if body["tag"] != session.tag:
            report.wrong.append(f"{session.tag} answered with {body['tag']}")
        session.acked.append(int(body["n"]))
    return status


async def run_load(
    client: httpx.AsyncClient,
    sessions: list[TaggedSession],
    report: LoadReport,
    stop: Callable[[], bool],
    concurrency: int,
) -> None:
    """Locked increments over `sessions`, `concurrency` at a time, until `stop()`."""
    counter = iter(range(10**9))

    async def worker() -> None:
        while not stop():
            await one_increment(client, sessions[next(counter) % len(sessions)], report)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def final_value(client: httpx.AsyncClient, session: TaggedSession) -> int:
    """The counter stored for `session` (a plain read: no lock, no write)."""
    response = await client.get("/tagged_read", headers={"Cookie": session.cookie})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["tag"] == session.tag, body
    return int(body["n"])
