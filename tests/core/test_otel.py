"""OpenTelemetry for store calls (``sanic_cookies.otel``), with the SDK's in-memory exporters.

* Off unless configured: an app that is not instrumented records nothing.
* Every store call of a real app (anonymous session, login, locked writes, the
  device list, logout everywhere, logout) is one span and one measurement of
  each instrument, with the operation, backend and outcome; no attribute anywhere
  holds a session id, a store key, a user id or session data.
* A failing call says ``error`` and its exception's class, never its message.
* A `MultiBackend`'s secondaries are observed per member.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from environment import require_module

sys.path.insert(0, str(Path(__file__).resolve().parent / "auth"))

from auth_support import Browser, build_app
from core_support import CountingBackend, get, session_app

from sanic_cookies import ConfigurationError, LockTimeout, UnsupportedOperation
from sanic_cookies._ids import store_key
from sanic_cookies.backends.memory import MemoryBackend

require_module("opentelemetry.sdk", "opentelemetry-sdk (the otel test group)")

from opentelemetry.sdk.metrics import MeterProvider  # noqa: E402
from opentelemetry.sdk.metrics.export import InMemoryMetricReader  # noqa: E402
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (  # noqa: E402
    InMemorySpanExporter,
)
from opentelemetry.trace import SpanKind, StatusCode  # noqa: E402

from sanic_cookies.otel import OpenTelemetry, instrument  # noqa: E402

ALLOWED = {"sanic_cookies.operation", "sanic_cookies.backend", "sanic_cookies.outcome"}


class Recorder:
    """An SDK tracer provider and meter provider that keep everything in memory."""

    def __init__(self) -> None:
        self.spans_out = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans_out))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def instrument(self, session: Any) -> None:
        instrument(
            session, tracer_provider=self.tracer_provider, meter_provider=self.meter_provider
        )

    def spans(self) -> list[ReadableSpan]:
        return list(self.spans_out.get_finished_spans())

    def points(self) -> dict[str, list[Any]]:
        """Data points by instrument name."""
        data = self.reader.get_metrics_data()
        found: dict[str, list[Any]] = {}
        for resource in data.resource_metrics if data else []:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    found.setdefault(metric.name, []).extend(metric.data.data_points)
        return found

    def all_attribute_values(self) -> list[str]:
        values = [str(v) for span in self.spans() for v in (span.attributes or {}).values()]
        values += [span.name for span in self.spans()]
        for points in self.points().values():
            values += [str(v) for point in points for v in point.attributes.values()]
        return values


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    rec = Recorder()
    yield rec
    rec.tracer_provider.shutdown()
    rec.meter_provider.shutdown()


async def test_off_unless_configured(recorder: Recorder) -> None:
    app, _ = session_app(backend="memory://", secure=False)
    # Another session on the same providers is instrumented; this one is not.
    other_app, other = session_app(backend="memory://", secure=False)
    recorder.instrument(other)
    response = await get(app, "/incr")
    assert response.status == 200
    assert recorder.spans() == []
    assert recorder.points() == {}
    await get(other_app, "/incr")  # a new session: nothing to lock yet, one save
    assert [s.name for s in recorder.spans()] == ["sanic_cookies save"]


async def test_spans_and_metrics_of_a_real_app_hold_no_ids_keys_users_or_data(
    recorder: Recorder,
) -> None:
    app, auth = build_app("memory://")
    recorder.instrument(auth)
    browser, phone = Browser(app), Browser(app)
    secret_item = "item-7f3a9c"  # session data: must never show up
    await browser.post("/cart", params={"item": "anonymous"})
    await browser.login("alice-4d2e")
    await phone.login("alice-4d2e")
    await browser.post("/cart", params={"item": secret_item})
    assert (await browser.get("/cart")).json == [secret_item]
    assert await browser.whoami() == {"id": "alice-4d2e", "name": "Alice-4D2E"}
    devices = await browser.get("/devices")
    assert devices.status == 200 and len(devices.json) == 2
    cookies = {browser.cookie, phone.cookie}
    assert (await browser.post("/logout-everywhere", params={"keep": "1"})).json == {"ended": 1}
    await browser.post("/logout")

    spans = recorder.spans()
    operations = {s.attributes["sanic_cookies.operation"] for s in spans if s.attributes}
    assert {"lock", "save", "load", "delete", "list_user_sessions"} <= operations
    assert "delete_user_sessions" in operations
    for span in spans:
        attributes = dict(span.attributes or {})
        assert set(attributes) == ALLOWED, attributes
        assert span.name == f"sanic_cookies {attributes['sanic_cookies.operation']}"
        assert span.kind is SpanKind.CLIENT
        assert attributes["sanic_cookies.backend"] == auth.backend.label
        assert attributes["sanic_cookies.outcome"] == "ok"
        assert span.status.status_code is StatusCode.UNSET
        assert not span.events  # no exception events (their messages may quote keys)

    points = recorder.points()
    (calls,) = [sum(p.value for p in points["sanic_cookies.store.calls"])]
    assert calls == len(spans)
    durations = points["sanic_cookies.store.duration"]
    assert sum(p.count for p in durations) == len(spans)
    assert all(set(p.attributes) == ALLOWED for p in durations)

    secrets = {"alice-4d2e", secret_item}
    for cookie in cookies:
        assert cookie
        secrets |= {cookie, store_key(cookie), cookie[:12], store_key(cookie)[:12]}
    for value in recorder.all_attribute_values():
        for secret in secrets:
            assert secret not in value, (secret, value)


async def test_a_failed_call_records_the_exception_class_not_its_message(
    recorder: Recorder,
) -> None:
    backend = CountingBackend()
    app, session = session_app(backend=backend, secure=False)
    recorder.instrument(session)
    first = await get(app, "/incr")  # new: one save
    assert first.status == 200
    cookie = first.headers["set-cookie"].split(";")[0]
    assert (await get(app, "/incr", cookie)).status == 200  # lock, save
    backend.fail.add("lock.acquire")
    assert (await get(app, "/incr", cookie)).status == 503

    failed = [s for s in recorder.spans() if s.status.status_code is StatusCode.ERROR]
    assert len(failed) == 1
    attributes = dict(failed[0].attributes or {})
    assert attributes == {
        "sanic_cookies.operation": "lock",
        "sanic_cookies.backend": "counting",
        "sanic_cookies.outcome": "error",
        "error.type": "StoreDown",
    }
    assert failed[0].status.description is None  # no message: it may quote a key
    outcomes: dict[tuple[str, str], int] = {
        (p.attributes["sanic_cookies.operation"], p.attributes["sanic_cookies.outcome"]): p.value
        for p in recorder.points()["sanic_cookies.store.calls"]
    }
    assert outcomes == {("save", "ok"): 2, ("lock", "ok"): 1, ("lock", "error"): 1}


async def test_multibackend_secondaries_are_observed_per_member(recorder: Recorder) -> None:
    primary, secondary = MemoryBackend(), CountingBackend()
    app, session = session_app(backend=[primary, secondary], secure=False)
    recorder.instrument(session)
    assert (await get(app, "/incr")).status == 200
    seen = {
        (s.attributes["sanic_cookies.operation"], s.attributes["sanic_cookies.backend"])
        for s in recorder.spans()
        if s.attributes
    }
    assert ("save", "counting") in seen  # the secondary's copy of the write
    assert secondary.store_calls() == {"save": 1}


@pytest.mark.parametrize(
    ("exc", "outcome", "error_type"),
    [
        (LockTimeout("not within 1s"), "lock_timeout", None),
        (UnsupportedOperation("no index"), "unsupported", None),
        (asyncio.CancelledError(), "cancelled", "CancelledError"),
        (ConnectionResetError("key abc123 gone"), "error", "ConnectionResetError"),
    ],
)
async def test_outcomes(
    recorder: Recorder, exc: BaseException, outcome: str, error_type: str | None
) -> None:
    telemetry = OpenTelemetry(
        tracer_provider=recorder.tracer_provider, meter_provider=recorder.meter_provider
    )

    async def failing() -> None:
        raise exc

    with pytest.raises(type(exc)):
        await telemetry.observe("lock", "redis", failing())
    (span,) = recorder.spans()
    expected = {
        "sanic_cookies.operation": "lock",
        "sanic_cookies.backend": "redis",
        "sanic_cookies.outcome": outcome,
    }
    if error_type is not None:
        expected["error.type"] = error_type
    assert dict(span.attributes or {}) == expected
    assert span.status.status_code is (StatusCode.ERROR if error_type else StatusCode.UNSET)
    assert not span.events


async def test_the_observer_is_set_before_the_server_starts(recorder: Recorder) -> None:
    app, session = session_app(backend="memory://", secure=False)
    assert (await get(app, "/incr")).status == 200  # the test client started the app
    with pytest.raises(ConfigurationError, match="before the server starts"):
        recorder.instrument(session)
