"""`tritune profile` as a library: measure a model as it is configured now, at load levels or
over one load schedule, on a server session (analyzer.server.session.open_server).

The CLI and the benchmarks call `profile_model`; it prints nothing (progress goes to the callbacks)
and returns the measurements with the model's knobs, from which `ProfileRun.rows` gives the
`measurements.csv` rows (`config_id` is `current`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from analyzer.config.modelconfig import knobs_of
from analyzer.judge.verdict import budget_verdict, required_requests
from analyzer.load.input_plan import InputPlan
from analyzer.load.shapes import DEFAULT_WARMUP_S, LoadSpec
from analyzer.load.workers import WorkerError
from analyzer.measure.levels import (
    MeasureSettings,
    StopToken,
    WindowCallback,
    measure_levels,
    window_requests_for,
)
from analyzer.measure.probe import Probe
from analyzer.measure.schedule import ScheduledRun, run_schedule
from analyzer.server.session import ModelInfo, ServerSession, prepare_model
from analyzer.stats.measurement import Measurement
from analyzer.stats.timeline import timeline
from analyzer.store.rows import measurement_row

if TYPE_CHECKING:  # annotations only: what knobs_of returns
    from analyzer.config.modelconfig import Candidate


def profile_settings(
    *,
    window_s: float | None = None,
    warmup_s: float = DEFAULT_WARMUP_S,
    max_windows: int = 10,
    stability_pct: float = 10.0,
    request_timeout_s: float = 30.0,
    budget_ms: float | None = None,
) -> MeasureSettings:
    """`tritune profile`'s measurement settings: windows sized for a p99 claim at 99 %
    confidence (the sweep's own budget rule), over-budget requests counted when a budget is given."""
    return MeasureSettings(
        window_s=window_s,
        warmup_s=warmup_s,
        max_windows=max_windows,
        tolerance=stability_pct / 100.0,
        request_timeout_s=request_timeout_s,
        drain_s=request_timeout_s,
        min_requests=required_requests(0, 99.0, 0.99),
        window_requests=window_requests_for(99.0, 0.99),
        budget_ms=budget_ms,
    )


@dataclass
class ProfileRun:
    """What a profile measured: one Measurement per level (or the schedule's one), in order."""

    model: ModelInfo
    knobs: Candidate
    loads: list[LoadSpec]
    measurements: list[Measurement] = field(default_factory=list)
    played: ScheduledRun | None = None  # a schedule's whole run (None for levels, or none sent)
    stopped: bool = False  # a stop was asked for before the end
    failed: WorkerError | None = None  # a load worker died: the levels before it are kept

    def rows(self, budget_ms: float | None = None) -> list[dict[str, Any]]:
        """measurements.csv rows; with a budget, `meets_budget` by the sweep's own rule (p99
        proven under the budget with 99 % confidence)."""
        return [
            measurement_row(
                "current", self.knobs, m, None if budget_ms is None else budget_verdict(m, budget_ms).meets
            )
            for m in self.measurements
        ]

    @property
    def client_bound(self) -> list[Measurement]:
        """The levels the load generator could not offer (their figures describe it, not the model)."""
        return [m for m in self.measurements if m.client_bound]

    def timeline(self) -> pd.DataFrame | None:
        """A played schedule second by second (analyzer.stats.timeline); None without one."""
        if self.played is None:
            return None
        return timeline(self.played.records, self.played.start, self.played.duration_s)


def profile_model(
    session: ServerSession,
    model: str,
    loads: Sequence[LoadSpec],
    settings: MeasureSettings,
    *,
    shapes: dict[str, list[int]] | None = None,
    input_plan: InputPlan | None = None,
    load_model: bool | None = None,
    workers: int | None = None,
    on_ready: Callable[[ProfileRun], None] | None = None,
    on_window: WindowCallback | None = None,
    on_level: Callable[[Measurement], None] | None = None,
    on_second: Callable[[float, float, int], None] | None = None,
    stop: StopToken | None = None,
) -> ProfileRun:
    """Measure `model` on `session` as it is configured now: each load level in turn, or the one
    schedule in `loads` played once. The model is loaded first when `load_model` (default: on a
    local server); bad request data fails before any load. `on_ready` sees the run before
    anything is measured (the model's knobs are known by then); the other callbacks report
    progress (`on_second(elapsed, length, finished)` for a schedule). Stops early on `stop`.
    A load worker process that dies ends the run in `failed`, with what was measured before."""
    loads = list(loads)
    if not loads:
        raise ValueError("profile needs at least one load")
    schedule = loads[0] if loads[0].schedule is not None else None
    if schedule is not None and len(loads) > 1:
        raise ValueError("a schedule is played on its own")
    local = session.local is not None
    info = prepare_model(
        session, model, shapes, load=local if load_model is None else load_model, plan=input_plan
    )
    run = ProfileRun(info, knobs_of(info.config), loads)
    if on_ready is not None:
        on_ready(run)

    def level_done(m: Measurement) -> None:
        run.measurements.append(m)
        if on_level is not None:
            on_level(m)

    with Probe(session.endpoint, session.protocol, model, session.pid) as probe:
        try:
            if schedule is not None:
                run.played = asyncio.run(
                    run_schedule(
                        session.protocol,
                        session.url,
                        model,
                        info.requests,
                        probe,
                        schedule,
                        settings,
                        on_second=on_second,
                        stop=stop,
                        workers=workers,
                        local_server=local,
                    )
                )
                if run.played is not None:
                    run.measurements.append(run.played.measurement)
            else:
                asyncio.run(
                    measure_levels(
                        session.protocol,
                        session.url,
                        model,
                        info.requests,
                        probe,
                        loads,
                        settings,
                        on_window=on_window,
                        on_level=level_done,
                        stop=stop,
                        workers=workers,
                        local_server=local,
                    )
                )
        except WorkerError as exc:  # what was measured before it is kept, in `run`
            run.failed = exc
    run.stopped = stop is not None and stop.requested
    return run
