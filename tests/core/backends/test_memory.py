"""The in-memory backend against the conformance suite, plus its own behaviour."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest
from ports import free_port
from processes import kill_group

from sanic_cookies import Backend, ConfigurationError, LockTimeout, Session, backend_from_url
from sanic_cookies.backends.memory import DEFAULT_MAX_ENTRIES, MemoryBackend
from sanic_cookies.clock import ManualClock
from sanic_cookies.testing import BackendConformance, encode_value, wait_until

#: A bound for background work (a sweep, a subprocess) to happen, on a busy machine.
WITHIN = 30.0


async def _let_other_tasks_run() -> None:
    """Yield to the event loop a few times: tasks just started reach their first wait.

    Loop turns, not time: a busy machine runs them just the same.
    """
    for _ in range(10):
        await asyncio.sleep(0)


class TestMemoryConformance(BackendConformance):
    lock_has_lease: ClassVar[bool] = False

    async def make_backend(self) -> Backend:
        return MemoryBackend(sweep_interval=0.1)


async def test_sweeper_drops_expired_entries(manual_clock: ManualClock) -> None:
    backend = MemoryBackend(sweep_interval=0.01)
    await backend.open()
    try:
        await backend.save("ab" * 32, encode_value(1), 0.1)
        await backend.save("cd" * 32, encode_value(1), 60)
        manual_clock.advance(0.1)

        async def swept() -> bool:
            return len(backend) == 1

        assert await wait_until(swept, WITHIN)
    finally:
        await backend.close()


async def test_max_entries_drops_the_entry_closest_to_expiry() -> None:
    backend = MemoryBackend(max_entries=2)
    soon, late, new = (f"{i:064x}" for i in range(3))
    await backend.save(late, encode_value(1), 600)
    await backend.save(soon, encode_value(1), 60)  # written last, but ends first
    await backend.save(new, encode_value(1), 300)
    assert len(backend) == 2
    assert await backend.load(soon) is None
    assert await backend.load(late) is not None and await backend.load(new) is not None


async def test_the_cap_is_on_by_default_and_none_turns_it_off() -> None:
    assert MemoryBackend().max_entries == DEFAULT_MAX_ENTRIES == 100_000
    assert backend_from_url("memory://").max_entries == 100_000  # type: ignore[attr-defined]
    for off in (MemoryBackend(max_entries=None), backend_from_url("memory://?max_entries=none")):
        assert isinstance(off, MemoryBackend) and off.max_entries is None
        for i in range(50):
            await off.save(f"{i:064x}", encode_value(1), 60)
        assert len(off) == 50
    with pytest.raises(ConfigurationError, match="or None for no cap"):
        MemoryBackend(max_entries=2.5)  # type: ignore[arg-type]


async def test_eviction_logs_one_warning_and_drops_expired_entries_first(
    caplog: pytest.LogCaptureFixture,
) -> None:
    backend = MemoryBackend(max_entries=3)
    first = [f"{i:064x}" for i in range(3)]
    await backend.save(first[0], encode_value(1), 600)
    await backend.save(first[1], encode_value(1), 0.000001)  # expired by the next save
    await backend.save(first[2], encode_value(1), 300)
    with caplog.at_level(logging.WARNING, logger="sanic_cookies"):
        for i in range(3, 40):
            await backend.save(f"{i:064x}", encode_value(1), 900)
    assert len(backend) == 3
    assert await backend.load(first[0]) is None  # the two with the least time left went first
    warnings_logged = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings_logged) == 1, [r.getMessage() for r in warnings_logged]
    assert "max_entries=3" in warnings_logged[0].getMessage()


async def test_eviction_walks_the_store_once_then_never() -> None:
    # The first eviction builds a heap of expiry times in one pass; later ones use it.
    backend = MemoryBackend(max_entries=1000)
    backend._data = _IterationCountingDict()
    for i in range(1000):
        await backend.save(f"{i:064x}", encode_value(1), 60 + i % 7)
    _IterationCountingDict.yielded = 0
    await backend.save(f"{5000:064x}", encode_value(1), 60)
    assert _IterationCountingDict.yielded == 1001  # one pass, the new entry included
    _IterationCountingDict.yielded = 0
    for i in range(300):
        await backend.save(f"{6000 + i:064x}", encode_value(1), 60 + i % 5)
        await backend.touch(f"{6000 + i:064x}", 90)
    assert len(backend) == 1000
    assert _IterationCountingDict.yielded == 0


async def test_a_sweep_that_empties_half_the_store_stops_the_heap() -> None:
    backend = MemoryBackend(max_entries=4)
    for i in range(5):
        await backend.save(f"{i:064x}", encode_value(1), 0.000001 if i < 3 else 60)
    assert backend._heap is not None
    backend.sweep()
    assert len(backend) <= 2 and backend._heap is None


async def test_max_entries_from_the_url_and_rewrites_push_the_expiry_out() -> None:
    backend = backend_from_url("memory://?max_entries=2")
    assert isinstance(backend, MemoryBackend) and backend.max_entries == 2
    a, b, c = (f"{i:064x}" for i in range(3))
    await backend.save(a, encode_value(1), 60)
    await backend.save(b, encode_value(1), 60)
    await backend.save(a, encode_value(2), 60)  # a now ends after b
    await backend.save(c, encode_value(1), 60)
    assert await backend.load(b) is None
    assert await backend.load(a) is not None and await backend.load(c) is not None


# -- through a Sanic app ----------------------------------------------------------------------


async def test_sweeper_starts_and_stops_with_the_server_on_its_own(
    manual_clock: ManualClock,
) -> None:
    from core_support import cookie_header, get, session_app
    from sanic import Request, text
    from sanic.response import HTTPResponse

    app, session = session_app(backend="memory://?sweep_interval=0.05", expiry=0.2)
    seen: dict[str, Any] = {}

    @app.get("/wait")
    async def wait(request: Request) -> HTTPResponse:
        backend = request.app.ctx.exts.session.backend
        seen["running"] = backend._sweeper is not None and not backend._sweeper.done()
        manual_clock.advance(0.2)  # every session expires; the sweeper runs meanwhile

        async def swept() -> bool:
            return len(backend) == 0

        await wait_until(swept, WITHIN)
        seen["left"] = len(backend)
        return text("ok")

    for _ in range(3):
        cookie_header(await get(app, "/set?a=1"))
    backend = session.backend
    assert isinstance(backend, MemoryBackend)
    assert len(backend) == 3
    assert backend._sweeper is None  # the server stopped after that request: so did it
    await get(app, "/wait")
    assert seen == {"running": True, "left": 0}
    assert backend._sweeper is None


def _app_state(workers: int, server_names: list[str] | None = None) -> Any:
    state = SimpleNamespace(workers=workers)
    if server_names is None:
        return SimpleNamespace(state=state)
    return SimpleNamespace(state=state, m=SimpleNamespace(workers=dict.fromkeys(server_names)))


@pytest.mark.parametrize(
    ("app", "warns"),
    [
        (_app_state(1), None),
        (_app_state(2), 2),
        (_app_state(0), None),  # no multiplexer: a plain process
        # Inside a worker process Sanic reports 0 workers; the multiplexer knows them all.
        (_app_state(0, ["Sanic-Main", "Sanic-Server-0-0"]), None),
        (_app_state(0, ["Sanic-Main", "Sanic-Server-0-0", "Sanic-Server-1-0"]), 2),
        (_app_state(0, ["Sanic-Main", "Sanic-Reloader-0", "Sanic-Server-0-0"]), None),
    ],
)
async def test_per_process_backend_warns_when_several_workers_run(
    app: Any, warns: int | None
) -> None:
    session = Session(backend=MemoryBackend(), session_name="s")
    app.config = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        await session._start(app)
    await session._stop(app)
    runtime = [w for w in caught if issubclass(w.category, RuntimeWarning)]
    if warns is None:
        assert runtime == []
    else:
        (warning,) = runtime
        message = str(warning.message)
        assert f"runs {warns} workers" in message
        assert "redis://" in message and "memory" in message


async def test_shared_backend_does_not_warn_with_several_workers() -> None:
    from core_support import CountingBackend

    session = Session(backend=CountingBackend(), session_name="s")
    app = _app_state(4)
    app.config = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        await session._start(app)
    assert [w for w in caught if issubclass(w.category, RuntimeWarning)] == []


TWO_WORKER_APP = """
import sys
from sanic import Sanic, text
from sanic_cookies import Session

app = Sanic("memory_two_workers")
Session(app)

@app.get("/")
async def index(request):
    return text("up")

if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(sys.argv[1]), workers=2, access_log=False)
"""


@pytest.mark.slow
async def test_two_worker_server_warns_in_each_worker(tmp_path: Path) -> None:
    import httpx

    script = tmp_path / "two_workers.py"
    script.write_text(TWO_WORKER_APP)
    port = free_port()
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(script),
            str(port),
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
            start_new_session=True,  # its workers and resource tracker: one group to stop
        )
    try:
        async with httpx.AsyncClient() as client:
            for _ in range(300):
                try:
                    if (await client.get(f"http://127.0.0.1:{port}/", timeout=2)).text == "up":
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
            else:
                pytest.fail(f"server did not start:\n{log.read_text()}")

        async def both_warned() -> bool:  # each worker runs before_server_start
            return log.read_text().count("but the app runs 2 workers") >= 2

        assert await wait_until(both_warned, WITHIN), log.read_text()
    finally:
        # Only the warnings matter here, so no graceful stop: a SIGTERM that reaches Sanic's
        # main process before it has counted its workers' acknowledgements stops the
        # workers but leaves it waiting for them (30 s, seen under load).
        kill_group(proc.pid)  # the main process, its workers and the resource tracker
        await proc.wait()
    output = log.read_text()
    assert output.count("but the app runs 2 workers") == 2, output


# -- O(1) operations ---------------------------------------------------------------------------


class _IterationCountingDict(dict[bytes, Any]):
    """A dict that counts the entries any iteration over it yields."""

    yielded = 0

    def __iter__(self) -> Iterator[bytes]:
        for key in super().__iter__():
            type(self).yielded += 1
            yield key

    def keys(self) -> Any:
        type(self).yielded += len(self)
        return super().keys()

    def items(self) -> Any:
        type(self).yielded += len(self)
        return super().items()

    def values(self) -> Any:
        type(self).yielded += len(self)
        return super().values()

    def copy(self) -> Any:
        type(self).yielded += len(self)
        return super().copy()


async def test_operations_never_walk_the_store() -> None:
    # 0.4's ExpiringDict copied the whole dict on every lookup. Count entries visited.
    backend = MemoryBackend(max_entries=20_000)
    backend._data = _IterationCountingDict()
    user_keys = [f"{i:064x}" for i in range(10_000)]
    for key in user_keys:
        await backend.save(key, encode_value(1), 60, user_id="u" + key[-3:])
    _IterationCountingDict.yielded = 0
    key = user_keys[5000]
    await backend.load(key)
    await backend.save(key, encode_value(2), 60, user_id="other")
    await backend.save(key, encode_value(3), 60, replace_only=True)
    await backend.touch(key, 60)
    lock = backend.lock(key, timeout=1, lease=1)
    await lock.acquire()
    await lock.save_and_release(encode_value(4), 60)
    await backend.delete(key)
    assert _IterationCountingDict.yielded == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"max_entries": 0}, "max_entries"), ({"sweep_interval": 0}, "sweep_interval")],
)
def test_bad_options(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        MemoryBackend(**kwargs)


# -- the lock: released on every path, forgotten when unused --------------------------------


async def test_lock_registry_is_empty_after_every_path() -> None:
    backend = MemoryBackend()
    key = f"{1:064x}"
    # acquire/release, save_and_release, delete_and_release
    for finish in ("release", "save_and_release", "delete_and_release"):
        lock = backend.lock(key, timeout=1, lease=1)
        await lock.acquire()
        if finish == "save_and_release":
            await lock.save_and_release(encode_value(1), 60)
        else:
            await getattr(lock, finish)()
        assert backend._locks == {}, finish
    # a waiter that times out
    holder = backend.lock(key, timeout=1, lease=1)
    await holder.acquire()
    with pytest.raises(LockTimeout):
        await backend.lock(key, timeout=0.05, lease=1).acquire()
    await holder.release()
    assert backend._locks == {}
    # a waiter that is cancelled
    await holder.acquire()
    waiter = asyncio.ensure_future(backend.lock(key, timeout=5, lease=1).acquire())
    await _let_other_tasks_run()
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    await holder.release()
    assert backend._locks == {}


async def test_release_wakes_the_next_waiter() -> None:
    # 0.4's D1: release deleted the lock without waking the task already waiting on it.
    backend = MemoryBackend()
    key = f"{2:064x}"
    first = backend.lock(key, timeout=1, lease=1)
    await first.acquire()
    second = backend.lock(key, timeout=2, lease=1)
    waiting = asyncio.ensure_future(second.acquire())
    await _let_other_tasks_run()
    assert not waiting.done()
    await first.release()
    await asyncio.wait_for(waiting, 1)
    third = backend.lock(key, timeout=0.05, lease=1)
    with pytest.raises(LockTimeout):  # and exclusion still holds after the hand-over
        await third.acquire()
    await second.release()
    assert backend._locks == {}


async def test_failing_save_still_releases_the_lock() -> None:
    class BrokenSave(MemoryBackend):
        async def save(self, *args: Any, **kwargs: Any) -> bool:
            raise ConnectionError("disk full")

    backend = BrokenSave()
    key = f"{3:064x}"
    lock = backend.lock(key, timeout=1, lease=1)
    await lock.acquire()
    with pytest.raises(ConnectionError):
        await lock.save_and_release(encode_value(1), 60)
    assert backend._locks == {}
    again = backend.lock(key, timeout=0.1, lease=1)
    await again.acquire()
    await again.release()


async def test_open_replaces_a_sweeper_that_ended(manual_clock: ManualClock) -> None:
    backend = MemoryBackend(sweep_interval=0.01)
    await backend.open()
    first = backend._sweeper
    assert first is not None
    first.cancel()  # as if its loop had gone away without close()
    await asyncio.sleep(0)
    await backend.open()
    assert backend._sweeper is not first and not backend._sweeper.done()
    await backend.save("ab" * 32, encode_value(1), 0.05)
    manual_clock.advance(0.05)

    async def swept() -> bool:
        return len(backend) == 0

    assert await wait_until(swept, WITHIN)  # the new sweeper sweeps
    await backend.close()


async def test_waiters_take_turns_in_arrival_order() -> None:
    # The first holder takes the key without an asyncio lock; those arriving while it
    # holds it must still queue behind it, in order, one at a time.
    backend = MemoryBackend()
    key = f"{4:064x}"
    first = backend.lock(key, timeout=1, lease=1)
    await first.acquire()
    order: list[int] = []
    inside = 0

    async def turn(n: int) -> None:
        nonlocal inside
        lock = backend.lock(key, timeout=2, lease=1)
        await lock.acquire()
        inside += 1
        assert inside == 1
        order.append(n)
        await _let_other_tasks_run()  # the others get every chance to barge in
        inside -= 1
        await lock.release()

    tasks = [asyncio.ensure_future(turn(n)) for n in range(3)]
    await _let_other_tasks_run()
    assert order == []
    await first.release()
    await asyncio.wait_for(asyncio.gather(*tasks), 2)
    assert order == [0, 1, 2]
    assert backend._locks == {}


# -- the cap, through an app ------------------------------------------------------------------


async def test_a_full_app_store_drops_the_session_closest_to_expiry_not_the_oldest(
    manual_clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    from core_support import cookie_header, get, session_app

    app, session = session_app(backend="memory://?max_entries=3", expiry=600, warn_lock=False)
    made = []
    for n in "abc":
        made.append(cookie_header(await get(app, f"/set?name={n}")))
        manual_clock.advance(1)  # each expires a second after the one before
    a, b, c = made
    manual_clock.advance(120)
    assert (await get(app, "/read", a)).json == {"name": "a"}  # refreshed: now ends last
    with caplog.at_level(logging.WARNING, logger="sanic_cookies"):
        d = cookie_header(await get(app, "/set?name=d"))  # one too many: b ends first
        assert (await get(app, "/read", b)).json == {}
        for cookie, name in ((a, "a"), (c, "c"), (d, "d")):
            assert (await get(app, "/read", cookie)).json == {"name": name}
        for n in "efg":
            assert (await get(app, f"/set?name={n}")).status == 200
    assert len(session.backend) == 3  # type: ignore[arg-type]
    full = [r for r in caplog.records if "max_entries=3" in r.getMessage()]
    assert len(full) == 1 and full[0].levelno == logging.WARNING
