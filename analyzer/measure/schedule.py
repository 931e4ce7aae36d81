"""Play a load schedule once against a model: no warm-up and no windows, the whole run is the
measurement (a load level's windows are analyzer.measure.levels's job).

Like the profiler, this is the measuring stage's I/O: it drives the load generator, takes the
server's snapshots (analyzer.measure.probe) before and after, and hands plain data to
`analyzer.stats.measurement` and `analyzer.stats.timeline` for the numbers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from analyzer.load.clients import RequestSet
from analyzer.load.generator import Records, now
from analyzer.load.shapes import LoadSpec
from analyzer.load.workers import LoadGenerator, WorkerError
from analyzer.measure.levels import MeasureSettings, StopToken
from analyzer.measure.probe import Probe, Snapshot, attach_server_view
from analyzer.stats.measurement import Measurement, summarize
from analyzer.stats.timeline import worst_window_percentile


@dataclass
class ScheduledRun:
    """A load schedule played once: every request's record, and the span it covered."""

    records: Records
    start: float
    duration_s: float
    measurement: Measurement
    first: Snapshot
    last: Snapshot


async def run_schedule(
    protocol: str,
    url: str,
    model: str,
    requests: RequestSet,
    probe: Probe,
    load: LoadSpec,
    settings: MeasureSettings,
    *,
    on_second: Callable[[float, float, int], None] | None = None,
    stop: StopToken | None = None,
    workers: int | None = None,
    local_server: bool = False,
) -> ScheduledRun | None:
    """Play a schedule once with a load generator of its own (see play_schedule)."""
    client = LoadGenerator(
        protocol,
        url,
        model,
        requests,
        timeout_s=settings.request_timeout_s,
        workers=workers,
        local_server=local_server,
    )
    try:
        return await play_schedule(client, probe, load, settings, on_second=on_second, stop=stop)
    finally:
        await client.close()


async def play_schedule(
    client: LoadGenerator,
    probe: Probe,
    load: LoadSpec,
    settings: MeasureSettings,
    *,
    on_second: Callable[[float, float, int], None] | None = None,
    stop: StopToken | None = None,
) -> ScheduledRun | None:
    """Play a schedule (`load.schedule`, scaled by `load.level`) once from start to end: no
    warm-up and no windows, the whole run is the measurement (see analyzer.stats.timeline for its
    per-second view; `worst_minute_ms` is the budget percentile over its worst minute).
    `on_second(elapsed, length, finished)` reports progress; None when stopped before anything
    was sent. A load worker process that dies raises WorkerError, naming the schedule."""
    try:
        return await _play(client, probe, load, settings, on_second, stop)
    except WorkerError as exc:
        raise WorkerError(f"{exc.message} while playing {load.describe()}") from None


async def _play(
    client: LoadGenerator,
    probe: Probe,
    load: LoadSpec,
    settings: MeasureSettings,
    on_second: Callable[[float, float, int], None] | None,
    stop: StopToken | None,
) -> ScheduledRun | None:
    """play_schedule's body."""
    assert load.schedule is not None and load.duration_s is not None
    duration = load.duration_s
    run = client.run(load, max_duration_s=duration, max_inflight=settings.max_inflight)
    first = await probe.snapshot()
    run.start()
    while now() < run.started_at + duration and not (stop is not None and stop.requested):
        await asyncio.sleep(min(1.0, max(0.0, run.started_at + duration - now())))
        if on_second is not None:
            on_second(min(now() - run.started_at, duration), duration, run.finished)
    records = await run.stop(settings.drain_s)
    last = await probe.snapshot()
    if len(records) == 0:
        return None
    m = summarize(
        records,
        run.started_at,
        run.started_at + duration,
        load_mode="schedule",
        load_level=load.level,
        windows=1,
        stable=True,
        confidence=settings.confidence,
        budget_ms=settings.budget_ms,
        claim_percentile=settings.claim_percentile,
        claim_confidence=settings.claim_confidence,
    )
    m.worst_minute_ms = worst_window_percentile(records, run.started_at, duration, settings.claim_percentile)
    attach_server_view(m, first, last)
    return ScheduledRun(records, run.started_at, duration, m, first, last)
