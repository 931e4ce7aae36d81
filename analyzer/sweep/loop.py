"""The sweep loop: ask -> apply -> load -> measure -> store -> tell, one config at a time.

This is the only module that wires the stages together. Everything it learns is written to the
run directory the moment it is known (and kept in memory, analyzer.store.tables, for the answer);
progress goes out through callbacks (the CLI prints them); a StopToken ends the sweep after the
current measurement window, leaving a run that `--resume` continues. What a failure or a resume
means is decided in analyzer.sweep.policy, the confirmation round runs in analyzer.sweep.confirm, and the
server is talked to through analyzer.sweep.measurer.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from analyzer.config.modelconfig import to_pbtxt
from analyzer.config.pipeline import AnyCandidate, candidate_from_row
from analyzer.errors import (
    EXIT_NO_CONFIG,
    EXIT_OK,
    ClaimLostError,
    LoadTimeoutError,
    MeasurementError,
    ServerDiedError,
    ServerError,
)
from analyzer.judge.choose import build_summary, choice, jsonable
from analyzer.judge.confirm_stats import CONFIRM_PHASE
from analyzer.judge.levelsearch import CapacityResult
from analyzer.judge.verdict import Verdict, required_requests
from analyzer.load.shapes import LoadSpec
from analyzer.load.workers import WorkerError
from analyzer.measure.levels import MeasureSettings, StopToken, window_requests_for
from analyzer.predict import levels_from_rows
from analyzer.report import capacity_row, write_report
from analyzer.schema import percentile_field
from analyzer.search.base import Search
from analyzer.search.study import Outcome
from analyzer.server.session import ServerSession
from analyzer.spec.spec import SweepSpec
from analyzer.stats.measurement import Measurement, WindowStat
from analyzer.store.rows import config_row, level_row
from analyzer.store.rundir import RunStore
from analyzer.sweep.confirm import ConfirmationRound, ConfirmIO
from analyzer.sweep.measurer import ConfigMeasurer
from analyzer.sweep.policy import log_tail, start_level, try_config
from analyzer.workload import Workload


@dataclass
class Events:
    """Progress callbacks (all optional). The runner never prints."""

    config_start: Callable[[AnyCandidate, int, int], None] | None = None  # cand, number, upper bound of total
    window: Callable[[AnyCandidate, LoadSpec, int, WindowStat, bool], None] | None = None
    level: Callable[[AnyCandidate, Measurement, Verdict], None] | None = None
    config_done: Callable[[AnyCandidate, dict[str, Any]], None] | None = None
    message: Callable[[str], None] | None = None
    # What the user must see even with --quiet: the warning that a running server is
    # reconfigured, what was put back on it, a resumed run's findings.
    notice: Callable[[str], None] | None = None
    confirm_start: Callable[[list[AnyCandidate], int], None] | None = None  # the configs, rounds
    confirm: Callable[[AnyCandidate, int, Measurement, Verdict], None] | None = None  # cand, round, ...
    # A schedule being played: cand, load, seconds played, its length, requests finished.
    playing: Callable[[AnyCandidate, LoadSpec, float, float, int], None] | None = None


@dataclass
class SweepResult:
    """How a sweep ended."""

    summary: dict[str, Any]
    exit_code: int
    interrupted: bool
    stop_reason: str
    best_pbtxt: Path | None = None
    timings: dict[str, float] = field(default_factory=dict)
    # Models of a running server whose original config could not be put back ("model: why").
    restore_failures: list[str] = field(default_factory=list)


def measure_settings(spec: SweepSpec) -> MeasureSettings:
    """Measurement settings of a sweep: the spec's windows, plus enough requests for a
    trustworthy percentile claim against its budget."""
    plan = spec.load
    return MeasureSettings(
        window_s=plan.window_s,
        warmup_s=plan.warmup_s,
        max_windows=plan.max_windows,
        tolerance=plan.stability_pct / 100.0,
        request_timeout_s=plan.request_timeout_s,
        drain_s=min(plan.request_timeout_s, 30.0),
        min_requests=required_requests(0, spec.percentile, spec.confidence),
        budget_ms=spec.budget_ms,
        claim_percentile=spec.percentile,
        claim_confidence=spec.confidence,
        min_window_s=plan.min_window_s,
        max_window_s=plan.max_window_s,
        window_requests=window_requests_for(spec.percentile, spec.confidence),
    )


class Measuring(Protocol):
    """What the loop needs of the server side (analyzer.sweep.measurer.ConfigMeasurer; a unit
    test gives its own, measuring a model of a server)."""

    local: bool  # the server is tritune's own (it can be restarted; its log is read)

    def open(self) -> None:
        """Start the load generators."""

    async def close(self) -> None:
        """Stop them."""

    def apply(self, cand: AnyCandidate) -> str:
        """Load a candidate's config(s); '' on success, else the server's reason."""
        ...

    async def measure_config(
        self,
        cand: AnyCandidate,
        start: float,
        best_capacity: float,
        on_level: Callable[[Measurement, Verdict], None],
    ) -> CapacityResult:
        """One config's level search."""
        ...

    async def confirm_level(self, cand: AnyCandidate, level: float, round_: int) -> Measurement | None:
        """One confirmation round of a config at one level; None when stopped."""
        ...

    def decide(self, m: Measurement) -> Verdict:
        """The budget verdict of a measurement."""
        ...

    async def recover(self, reason: str) -> None:
        """Restart the local server after a failure."""

    def log_tail(self, lines: int = 12) -> str:
        """The local server's last log lines ('' for a remote one)."""
        ...

    def longest_level_s(self) -> float:
        """An upper bound on one level's measurement, in seconds."""
        ...


class SweepRunner:
    """Runs one sweep against one server session (or the `measurer` given instead)."""

    def __init__(
        self,
        spec: SweepSpec,
        store: RunStore,
        session: ServerSession | None,
        workload: Workload,
        search: Search,
        *,
        events: Events | None = None,
        stop: StopToken | None = None,
        previous_wall_s: float = 0.0,
        measurer: Measuring | None = None,
    ) -> None:
        self.spec = spec
        self.store = store
        self.tables = store.tables.writer_view()  # what the run holds, read back cheaply
        self._trial: int | None = None  # the Optuna trial whose rows are written (None: confirmation)
        self._levels: list[dict[str, Any]] = []  # the current config's search levels
        self.workload = workload  # what is tuned: one model, a pipeline or several models
        self.search = search
        self.events = events or Events()
        self.stop = stop or StopToken()
        self.settings = measure_settings(spec)
        self.previous_wall_s = previous_wall_s
        if measurer is None:
            assert session is not None, "a runner measures on a server session or with a given measurer"
            measurer = ConfigMeasurer(
                spec, store, session, workload, self.settings, self.stop, self.events, say=self._say
            )
        self.measurer = measurer
        self.started = time.monotonic()
        # The answer so far (the best config's id, capacity level and written config.pbtxt files).
        self.best_level: float | None = None
        self.best_path: Path | None = None
        self._best_id: str | None = None
        self._best_paths: dict[str, str] = {}  # pipelines: best/<model>/config.pbtxt of each tuned model
        store.tables.report_outages(self._say)  # a database outage and its end, as progress lines

    def _say(self, text: str) -> None:
        if self.events.message:
            self.events.message(text)

    def wall_s(self) -> float:
        """Seconds spent on this sweep, earlier runs of it included."""
        return self.previous_wall_s + time.monotonic() - self.started

    # -- the answer -----------------------------------------------------------------------------
    def _update_answer(self, finished: bool, stop_reason: str = "") -> dict[str, Any]:
        """Choose the best config from the tables, write its config.pbtxt when it changed, and
        replace summary.json."""
        configs = self.tables.configs()
        measurements = self.tables.measurements()
        best, _, _ = choice(configs, measurements, self.spec.percentile)
        if best is not None and best["config_id"] != self._best_id:
            self._best_paths = {}
            for name, config in self.workload.configs(candidate_from_row(best)):
                if config is not None:
                    config.name = name
                    self._best_paths[name] = str(self.store.write_best_config(name, to_pbtxt(config)))
            self.best_path = Path(next(iter(self._best_paths.values())))
            self._best_id = str(best["config_id"])
            self.best_level = float(best["capacity_level"])
        summary = build_summary(
            model=self.workload.model,
            budget_ms=self.spec.budget_ms,
            percentile=self.spec.percentile,
            strategy=self.spec.strategy,
            load_mode=self.spec.load.level_kind,
            wall_s=self.wall_s(),
            configs=configs,
            measurements=measurements,
            best_pbtxt=str(self.best_path) if self.best_path and best is not None else None,
            # A pipeline's (or several models') summary names each tuned model's file.
            model_pbtxts=self._best_paths if best is not None else None,
            finished=finished,
            stopped_reason=stop_reason,
        )
        if self.spec.load.schedule is not None:
            summary["schedule"] = self.spec.load.schedule
        model = self.search.model_summary()
        if model is not None:
            summary["server_model"] = jsonable(model)
        if summary.get("best"):
            best_row = summary["best"]
            row = capacity_row(measurements, best_row["config_id"], best_row["load_level"])
            best_row.update(self.workload.best_extra(row.to_dict() if row is not None else None))
        self.store.write_json("summary", summary)
        return summary

    # -- rows -----------------------------------------------------------------------------------
    def _store_level(
        self, cand: AnyCandidate, m: Measurement, verdict: Verdict, phase: str, round_: int | None = None
    ) -> None:
        row = level_row(
            cand.config_id, self.workload.knobs(cand), m, verdict, phase, round_, self.workload.steps
        )
        self.tables.append_measurement(row, self._trial)
        if phase != CONFIRM_PHASE:
            self._levels.append(row)  # the config's levels, for a strategy that models the server

    def _record(
        self,
        cand: AnyCandidate,
        number: int,
        t0: float,
        result: CapacityResult | None,
        status: str,
        error: str,
    ) -> None:
        """A finished config: its configs.csv row, the search told, the answer updated."""
        row = config_row(
            cand,
            result,
            status=status,
            error=error,
            mode=self.spec.load.level_kind,
            trial=number,
            wall_s=time.monotonic() - t0,
            percentile=self.spec.percentile,
            predicted=predicted[:3] if (predicted := self.search.prediction(cand)) else None,
        )
        self.tables.append_config(row, self._trial)
        if status == "failed":
            self.search.tell(cand, Outcome(0.0, math.nan, failed=True, error=error))
        else:
            assert result is not None
            at = result.at_capacity()
            closest = result.closest(self.spec.percentile)
            ref = at or closest  # the capacity level's measurement, else the closest to the budget
            self.search.tell(
                cand,
                Outcome(
                    result.capacity_rps,
                    getattr(ref, percentile_field(self.spec.percentile)) if ref else math.nan,
                    bottleneck=ref.bottleneck_step if ref else "",
                    levels=tuple(levels_from_rows(self._levels, percentile_field(self.spec.percentile))),
                ),
            )
        for note in self.search.notes():
            self._say(note)
        if self.events.config_done:
            self.events.config_done(cand, row)
        self._update_answer(False)

    # -- the loop -------------------------------------------------------------------------------
    async def _measure(self, cand: AnyCandidate) -> CapacityResult:
        def on_level(m: Measurement, verdict: Verdict) -> None:
            self._store_level(cand, m, verdict, "search")
            if self.events.level:
                self.events.level(cand, m, verdict)

        # The strategy's predicted capacity level when it has one; else the loop's own rule.
        hint = self.search.start_hint(cand)
        start = start_level(self.best_level, self.spec.load.min_level) if hint is None else hint
        return await self.measurer.measure_config(
            cand,
            min(max(start, self.spec.load.min_level), self.spec.load.cap),
            self.search.best_capacity(),
            on_level,
        )

    async def _search(self) -> bool:
        """Measure configs until the search ends; False when stopped (or interrupted).

        A shared study's config whose claim this worker lost (its heartbeat went stale and
        another worker took the config over) is dropped here, and the search goes on. Any other
        error ends the sweep, but the config in hand is given back first (_leave): a shared
        study's other workers must not wait for it."""
        while not self.stop.requested:
            cand = self.search.ask(keep_waiting=lambda: not self.stop.requested)
            if cand is None:
                break
            try:
                if not await self._one_config(cand):
                    return False
            except ClaimLostError as lost:
                self.search.drop_lost()
                self._say(f"{lost.message}; dropped here (its new holder measures it)")
            except BaseException as exc:
                self._leave(exc)
                raise
        return not self.stop.requested

    async def _one_config(self, cand: AnyCandidate) -> bool:
        """Measure, record and tell one config; False when stopped mid-config."""
        self._trial = self.search.trial_number
        self._levels = []
        number = self.search.measured + 1
        if self.events.config_start:
            self.events.config_start(cand, number, self.search.measured + self.search.remaining())
        t0 = time.monotonic()
        # On the loop's thread: the admin client must stay on the thread that made it
        # (HTTP's is greenlet-based), and no load is running while a config loads.
        try:
            out = await try_config(
                lambda: self.measurer.apply(cand), lambda: self._measure(cand), self.measurer.log_tail
            )
        except WorkerError as exc:
            # _search gives the config back (measured again on --resume, like any in flight).
            raise WorkerError(f"{exc.message} (config {cand.config_id})") from None
        if out.status == "interrupted":
            self.search.abandon()
            return False
        if out.ends_sweep(local=self.measurer.local):
            # A remote server cannot be restarted from here: stop with a resumable run.
            self.search.abandon()
            raise ServerError(
                f"{out.server_lost}; the sweep stopped (results so far are in {self.store.dir})",
                hint=f"when the server is back: tritune sweep --resume {self.store.dir}",
            ) from None
        if out.status == "failed":
            self._say(f"config {cand.config_id} failed: {out.error}")
        self._record(cand, number, t0, out.result if out.status != "failed" else None, out.status, out.error)
        if out.restart and self.measurer.local:
            await self.measurer.recover(out.error)
        return True

    def _leave(self, exc: BaseException) -> None:
        """The sweep ends on an error mid-config: give the config back before the error goes on
        (shared: its rows dropped, its claim released, its config queued for another worker)."""
        why = self.search.leave(exc)
        if why:
            self._say(
                f"could not give the config back ({why}); it is measured again on --resume "
                "(in a shared study, by another worker once its claim is stale)"
            )

    def _confirmation(self) -> ConfirmationRound:
        measurer = self.measurer
        io = ConfirmIO(
            tables=lambda: (self.tables.configs(), self.tables.measurements()),
            apply=measurer.apply,
            measure=measurer.confirm_level,
            decide=measurer.decide,
            record=lambda cand, m, verdict, round_: self._store_level(
                cand, m, verdict, CONFIRM_PHASE, round_
            ),
            stopped=lambda: self.stop.requested,
            say=self._say,
            others_busy=self.search.others_busy,
            started=self.events.confirm_start,
            measured=self.events.confirm,
        )
        return ConfirmationRound(
            io,
            self.spec.confirm_top,
            self.spec.confirm_rounds,
            claims=self.store.tables.claims(),
            unconfirmed=self.workload.unconfirmed,
            stall_s=3 * measurer.longest_level_s() + 30.0,
        )

    async def _run(self) -> tuple[bool, str]:
        self.measurer.open()
        try:
            interrupted = not await self._search()
            if not interrupted:
                self._update_answer(False, self.search.stop_reason)
                self._trial = None  # confirmation rows belong to no trial
                try:
                    interrupted = not await self._confirmation().run()
                except (ServerDiedError, LoadTimeoutError) as exc:
                    # The search's answer stands; only its confirmation is missing.
                    self._say(f"confirmation round stopped: {exc.message}{log_tail(exc.log_tail)}")
            if self.stop.requested:
                interrupted = True
        finally:
            await self.measurer.close()
        return interrupted, self.search.stop_reason

    def run(self) -> SweepResult:
        """Run the sweep to its end (or until stopped); the run directory is complete either way."""
        try:
            interrupted, reason = asyncio.run(self._run())
        except ServerError:
            self._update_answer(finished=False, stop_reason="the server went away")
            raise
        except WorkerError as exc:
            self._update_answer(finished=False, stop_reason="a load worker process died")
            raise MeasurementError(
                f"{exc.message}; the sweep stopped (results so far are in {self.store.dir})",
                hint="a load worker is one of tritune's own processes, so something outside it ended it "
                "(a kill, or the kernel's out-of-memory killer: see dmesg); "
                f"tritune sweep --resume {self.store.dir} measures again only the config in flight",
            ) from None
        if interrupted:
            reason = "stopped by the user"
        summary = self._update_answer(finished=not interrupted, stop_reason=reason)
        self.store.tables.export()  # the run directory holds every worker's rows
        try:
            write_report(self.store.dir)
        except Exception as exc:  # noqa: BLE001 - a report problem must not cost the sweep's answer
            self._say(f"could not write report.html: {exc} (retry with `tritune report {self.store.dir}`)")
        code = EXIT_OK if summary.get("best") else EXIT_NO_CONFIG
        return SweepResult(summary, code, interrupted, reason, self.best_path)
