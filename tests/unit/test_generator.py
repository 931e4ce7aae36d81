"""The load generator's bookkeeping, driven by an in-process coroutine standing in for the
network call (the real server is exercised in tests/integration)."""

from __future__ import annotations

import asyncio
import math

import numpy as np

from analyzer.load.generator import LoadRun, classify_error
from analyzer.load.shapes import LoadSpec


class SerialService:
    """A single-server queue: each call holds a lock for `service_s`."""

    def __init__(self, service_s: float) -> None:
        self.service_s = service_s
        self.lock: asyncio.Lock | None = None
        self.calls = 0

    async def __call__(self) -> None:
        if self.lock is None:
            self.lock = asyncio.Lock()
        async with self.lock:
            self.calls += 1
            await asyncio.sleep(self.service_s)


async def _run(infer, load: LoadSpec, seconds: float, drain: float = 5.0, **kw):
    run = LoadRun(infer, load, max_duration_s=seconds, **kw)
    run.start()
    await asyncio.sleep(seconds)
    return await run.stop(drain)


def test_closed_loop_keeps_n_in_flight_and_records_every_request() -> None:
    service = SerialService(0.005)
    rec = asyncio.run(_run(service, LoadSpec("concurrency", 4), 0.5))
    assert len(rec) == service.calls
    assert np.all(rec.ok)
    # With 4 waiting on one server, each request waits for about 3 others: ~20 ms.
    assert np.median(rec.latency_s) > 0.012


def test_open_loop_latency_counts_from_the_schedule_when_overloaded() -> None:
    # Capacity 100/s (10 ms each); offer 300/s for 0.6 s: a queue must build up, and the
    # latencies measured from each request's scheduled time must show it.
    service = SerialService(0.010)
    rec = asyncio.run(_run(service, LoadSpec("rate", 300, arrival="constant"), 0.6, drain=10.0))
    assert len(rec) == 180
    assert np.all(rec.ok)
    lat = np.sort(rec.latency_s)
    assert lat[-1] > 0.8  # the last request waited for ~120 earlier ones
    assert np.median(rec.sent - rec.scheduled) < 0.05  # sending itself was not held back


def test_errors_are_recorded_by_kind() -> None:
    count = 0

    async def flaky() -> None:
        nonlocal count
        count += 1
        await asyncio.sleep(0.001)
        if count % 3 == 0:
            raise ConnectionError("refused")

    rec = asyncio.run(_run(flaky, LoadSpec("concurrency", 2), 0.3))
    errors = rec.error != 0
    assert errors.sum() > 0 and (~errors).sum() > 0
    assert {rec.kinds[c] for c in rec.error[errors]} == {"unavailable"}


def test_stop_marks_pending_requests_unfinished_and_backlog_is_counted() -> None:
    async def hang() -> None:
        await asyncio.sleep(30)

    rec = asyncio.run(_run(hang, LoadSpec("rate", 200, arrival="constant"), 0.2, drain=0.05, max_inflight=10))
    kinds = [rec.kinds[c] for c in rec.error]
    assert kinds.count("unfinished") == 10
    assert kinds.count("client_backlog") == len(rec) - 10 > 0
    assert all(math.isnan(d) for d in rec.done)


def test_classify_error_names() -> None:
    assert classify_error(asyncio.TimeoutError()) == "timeout"
    assert classify_error(ConnectionRefusedError()) == "unavailable"
    assert classify_error(ValueError("x")) == "ValueError"
