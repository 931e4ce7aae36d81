"""The sweep loop: ask -> apply -> load -> measure -> store -> tell, one config at a time.

This is the only module that wires the stages together. Everything it learns is written to the
run directory the moment it is known; progress goes out through callbacks (the CLI prints
them); a StopToken ends the sweep after the current measurement window, leaving a run that
`--resume` continues.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from analyzer.capacity import PERCENTILE_FIELDS, Verdict, budget_verdict, required_requests
from analyzer.levelsearch import CapacityResult, LevelSearch, search_capacity
from analyzer.choose import CONFIRM_PHASE, build_summary, choice, confirm_rows
from analyzer.errors import EXIT_NO_CONFIG, EXIT_OK, LoadTimeoutError, ModelLoadError, ServerDiedError, ServerError
from analyzer.load.workers import LoadGenerator
from analyzer.load.shapes import LoadSpec
from analyzer.measure import Measurement, WindowStat
from analyzer.modelconfig import ModelConfig, apply_candidate, knobs_of, to_dict, to_pbtxt
from analyzer.pipeline import JointCandidate, PipelineTarget, candidate_from_row
from analyzer.report import capacity_row, write_report
from analyzer.profiler import MeasureSettings, Probe, StopToken, measure_level, play_schedule, window_requests_for
from analyzer.timeline import timeline as build_timeline
from analyzer.search.base import SHARED_POLL_S, Outcome, Search
from analyzer.server.session import ModelInfo, ServerSession
from analyzer.space import Candidate
from analyzer.spec import DEFAULT_MIN_SCALE, SweepSpec
from analyzer.targets import Coordinator, Target, combine, split_level, target_figures
from analyzer.rows import config_row, level_row
from analyzer.store import RunStore


@dataclass
class Events:
    """Progress callbacks (all optional). The runner never prints."""

    config_start: Callable[[Candidate, int, int], None] | None = None  # cand, number, upper bound of total
    window: Callable[[Candidate, LoadSpec, int, WindowStat, bool], None] | None = None
    level: Callable[[Candidate, Measurement, Verdict], None] | None = None
    config_done: Callable[[Candidate, dict[str, Any]], None] | None = None
    message: Callable[[str], None] | None = None
    confirm_start: Callable[[list[Candidate], int], None] | None = None  # the configs, rounds
    confirm: Callable[[Candidate, int, Measurement, Verdict], None] | None = None  # cand, round, ...
    # A schedule being played: cand, load, seconds played, its length, requests finished.
    playing: Callable[[Candidate, LoadSpec, float, float, int], None] | None = None


@dataclass
class SweepResult:
    """How a sweep ended."""

    summary: dict[str, Any]
    exit_code: int
    interrupted: bool
    stop_reason: str
    best_pbtxt: Path | None = None
    timings: dict[str, float] = field(default_factory=dict)


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


def _tail(log: str) -> str:
    """' | server log: ...' with the last few log lines on one line ('' without a log)."""
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    return (" | server log: " + " / ".join(lines[-4:])) if lines else ""


RESTART_KINDS = ("timeout", "unfinished", "unavailable", "client_backlog")
# Shared studies: the claims that say which worker runs the confirmation round, and that it ended.
CONFIRM_CLAIM, CONFIRMED_CLAIM = "__confirm__", "__confirmed__"


def failure_of(result: CapacityResult) -> tuple[str, bool] | None:
    """Why a measured config counts as failed, and whether the server needs a restart.

    A config fails when any of its load levels got not one successful response: the model
    crashed, raised on every request, or the server stopped answering. Timeouts and unanswered
    requests mean a model instance may still be stuck, so a local server is restarted.
    """
    for m, _ in result.measurements:
        if m.stalled:
            return (f"the server stopped answering at {m.load_mode} {m.load_level:g}: no request ended "
                    f"in {m.windows} windows (requests time out after the request timeout)"), True
        if m.requests > 0 and m.errors >= m.requests:
            restart = any(k in m.error_kinds for k in RESTART_KINDS)
            return f"no request succeeded at {m.load_mode} {m.load_level:g} ({m.requests} requests: {m.error_kinds})", restart
    return None


def confirm_plan(configs: pd.DataFrame, measurements: pd.DataFrame,
                 top: int) -> tuple[list[tuple[Candidate, float]], set[tuple[str, int]]]:
    """The confirmation round's work: the `top` configs by search capacity (that met the budget)
    with their capacity levels, then any config the round already measured that is no longer in
    the top (another worker's late result pushed it out; it keeps its rounds, so that the round
    compares complete samples), and the (config, round) pairs already measured (a resumed run
    measures only the rest)."""
    if configs.empty or top <= 0:
        return [], set()
    cap = pd.to_numeric(configs["capacity_rps"], errors="coerce").fillna(0.0)
    ok = configs[configs["status"].isin(["ok", "pruned"]) & (cap > 0)].assign(_cap=cap)
    ranked = ok.sort_values("_cap", ascending=False, kind="stable")
    conf = confirm_rows(measurements)
    started = set(conf["config_id"].astype(str)) if not conf.empty else set()
    rest = ranked.iloc[top:]
    chosen = pd.concat([ranked.head(top), rest[rest["config_id"].astype(str).isin(started)]])
    plan = [(candidate_from_row(r), float(r["capacity_level"])) for _, r in chosen.iterrows()]
    done: set[tuple[str, int]] = set()
    if not conf.empty:
        done = {(str(c), int(r)) for c, r in zip(conf["config_id"], conf["confirm_round"]) if not pd.isna(r)}
    return plan, done


def next_confirmation(plan: list[tuple[Candidate, float]], done: set[tuple[str, int]], dropped: set[Candidate],
                      rounds: int) -> tuple[Candidate, float, int] | None:
    """The next (config, level, round) to measure: the lowest round first, in plan order, so the
    rounds interleave (A B C A B C) and a config that joins late runs its first round next."""
    for round_ in range(1, rounds + 1):
        for cand, level in plan:
            if cand not in dropped and (cand.config_id, round_) not in done:
                return cand, level, round_
    return None


class ConfigFailed(Exception):
    """A config could not be measured; the sweep records it and goes on."""

    def __init__(self, reason: str, restart: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.restart = restart


class SweepRunner:
    """Runs one sweep against one server session."""

    def __init__(
        self,
        spec: SweepSpec,
        store: RunStore,
        session: ServerSession,
        model: ModelInfo,
        base_config: ModelConfig,
        search: Search,
        *,
        events: Events | None = None,
        stop: StopToken | None = None,
        previous_wall_s: float = 0.0,
        pipeline: PipelineTarget | None = None,
        targets: list[tuple[Target, ModelInfo]] | None = None,
    ) -> None:
        self.spec = spec
        self.store = store
        self.session = session
        self.model = model
        self.base_config = base_config
        self.search = search
        self.events = events or Events()
        self.stop = stop or StopToken()
        self.settings = measure_settings(spec)
        self._schedule = spec.load.parsed_schedule()  # levels are its scale factors (None: steady levels)
        self.previous_wall_s = previous_wall_s
        self.pipeline = pipeline
        self.targets = targets  # several models measured together (each its share and budget)
        self._verdicts: dict[int, Verdict] = {}  # targets: each combined measurement's verdict
        self.started = time.monotonic()
        self.best_level: float | None = None
        self.best_path: Path | None = None
        self._best_id: str | None = None
        self._best_paths: dict[str, str] = {}  # pipelines: best/<model>/config.pbtxt of each tuned model

    # -- helpers --------------------------------------------------------------------------------
    def _say(self, text: str) -> None:
        if self.events.message:
            self.events.message(text)

    def wall_s(self) -> float:
        """Seconds spent on this sweep, earlier runs of it included."""
        return self.previous_wall_s + time.monotonic() - self.started

    def _check_server(self, during: str) -> None:
        """Raise ServerDiedError when the server is gone (local: its process; remote: liveness)."""
        local = self.session.local
        if local is not None:
            if not local.alive():
                raise ServerDiedError(
                    f"tritonserver exited (code {local.exit_code()}) {during}", log_tail=local.log_tail(12)
                )
        elif not self.session.control.is_live():
            raise ServerDiedError(f"the server at {self.session.url} stopped answering {during}")

    def _configs(self, cand: Candidate | JointCandidate) -> list[tuple[str, ModelConfig | None]]:
        """What to load for a candidate, in load order: (model, config; None = reload as is)."""
        if not isinstance(cand, JointCandidate):
            return [(self.model.name, apply_candidate(self.base_config, cand))]
        assert self.pipeline is not None
        out: list[tuple[str, ModelConfig | None]] = []
        for name, part in cand.parts:
            config = apply_candidate(self.pipeline.bases[name], part)
            config.name = name
            out.append((name, config))
        if self.pipeline.top and self.pipeline.top not in cand.names:
            # The ensemble (or BLS model) last: it then runs on the composing models just loaded.
            out.append((self.pipeline.top, None))
        return out

    def _apply(self, cand: Candidate | JointCandidate) -> str:
        """Load the candidate's config(s) on the server, dependencies first; '' on success,
        else the server's reason (naming the model, for a pipeline)."""
        self._check_server("before loading the config")
        loads = self._configs(cand)
        for name, config in loads:
            prefix = f"{name}: " if len(loads) > 1 else ""
            try:
                self.session.control.load_model(name, to_dict(config) if config is not None else None)
            except ModelLoadError as exc:
                reason = prefix + exc.message
                if exc.log_tail:
                    reason += " | server log: " + " / ".join(exc.log_tail.splitlines()[-3:])
                return reason
            if config is None:
                continue
            # A refused reload can leave the previous config serving: check what is loaded now.
            loaded, wanted = knobs_of(self.session.control.model_config(name)), knobs_of(config)
            want = (wanted.instance_count, wanted.max_batch_size, wanted.max_queue_delay_us)
            have = (loaded.instance_count, loaded.max_batch_size, loaded.max_queue_delay_us)
            if have != want:
                return (f"{prefix}the server kept another config after loading (instances, max batch, delay) = "
                        f"{have}, wanted {want}")
        if self.pipeline is not None and self._probe is not None:
            self._probe.instances = {n: knobs_of(self.pipeline.bases[n]).instance_count for n in self.pipeline.steps} | {
                name: knobs_of(config).instance_count for name, config in loads if config is not None}
        return ""

    def _start_level(self) -> float:
        plan = self.spec.load
        if self.best_level is None:
            return plan.min_level
        # Start near where the best config so far found its capacity: most configs top out in
        # the same region, and starting there skips the low levels that cannot decide anything.
        return max(plan.min_level, self.best_level / 2)

    def _update_answer(self, finished: bool, stop_reason: str = "") -> dict[str, Any]:
        configs = self.store.configs()
        measurements = self.store.measurements()
        best, _, _ = choice(configs, measurements)
        if best is not None and best["config_id"] != self._best_id:
            self._best_paths = {}
            for name, config in self._configs(candidate_from_row(best)):
                if config is not None:
                    config.name = name
                    self._best_paths[name] = str(self.store.write_best_config(name, to_pbtxt(config)))
            self.best_path = Path(next(iter(self._best_paths.values())))
            self._best_id = str(best["config_id"])
            self.best_level = float(best["capacity_level"])
        summary = build_summary(
            model=self.model.name,
            budget_ms=self.spec.budget_ms,
            percentile=self.spec.percentile,
            strategy=self.spec.strategy,
            load_mode=self.spec.load.level_kind,
            wall_s=self.wall_s(),
            configs=configs,
            measurements=measurements,
            best_pbtxt=str(self.best_path) if self.best_path and best is not None else None,
            model_pbtxts=self._best_paths if self.pipeline is not None and best is not None else None,
            finished=finished,
            stopped_reason=stop_reason,
        )
        if self.spec.load.schedule is not None:
            summary["schedule"] = self.spec.load.schedule
        if self.targets is not None and summary.get("best"):
            summary["best"]["targets"] = self._target_outcome(summary["best"], measurements)
        self.store.write_json("summary", summary)
        return summary

    def _target_outcome(self, best: dict[str, Any], measurements: pd.DataFrame) -> dict[str, Any]:
        """Each model's figures at the chosen config's capacity level, against its own budget."""
        row = capacity_row(measurements, best["config_id"], best["load_level"])
        if row is None:
            return {}
        figures = target_figures(row.to_dict())
        return {name: {"load_level": f.get("load_level"), "throughput_rps": f.get("throughput_rps"),
                       "p50_ms": f.get("p50_ms"), "p99_ms": f.get("p99_ms"), "budget_ms": f.get("budget_ms"),
                       "meets": bool(f.get("meets"))} for name, f in figures.items()}

    # -- the loop -------------------------------------------------------------------------------
    async def _measure_config(self, cand: Candidate) -> CapacityResult:
        plan = self.spec.load

        async def measure(level: float) -> Measurement | None:
            if self.targets is not None:
                return await self._measure_targets(cand, level)
            load = self._load(level, self.spec.seed)
            if load.schedule is not None:
                return await self._play(cand, load, "search")

            def on_window(load: LoadSpec, index: int, stat: WindowStat, stable: bool) -> None:
                if self.session.local is not None or stat.requests == 0:
                    # Local: a process check is free. Remote: ask only when nothing came back.
                    self._check_server(f"while measuring {cand.config_id} at {load.describe()}")
                if self.events.window:
                    self.events.window(cand, load, index, stat, stable)

            return await measure_level(self._client, self._probe, load, self.settings, on_window=on_window,
                                       stop=self.stop, decide=self._decide)

        def on_level(m: Measurement, verdict: Verdict) -> None:
            self._store_level(cand, m, verdict, "search")
            if self.events.level:
                self.events.level(cand, m, verdict)

        search = LevelSearch(
            mode=plan.mode,
            min_level=plan.min_level,
            max_level=plan.cap,
            start=self._start_level(),
            refine_steps=plan.refine_steps,
            best_capacity=self.search.best_capacity(),
            budget_ms=self.spec.budget_ms,
            resolution=plan.resolution_pct / 100.0,
            batching=cand.batching if isinstance(cand, JointCandidate)
            else cand.max_batch_size > 1 and cand.max_queue_delay_us is not None,
        )
        return await search_capacity(measure, search, self.spec.budget_ms, self.spec.percentile,
                                     self.spec.confidence, on_level=on_level,
                                     judge=self._judge)

    def _judge(self, m: Measurement) -> Verdict:
        """A level's verdict: several models' combined one, else the budget verdict."""
        if id(m) in self._verdicts:
            return self._verdicts.pop(id(m))
        return self._decide(m)

    async def _measure_targets(self, cand: Candidate | JointCandidate, level: float) -> Measurement | None:
        """One total level over several models at once, each its share and its own budget; the
        combined measurement (its verdict kept for _judge)."""
        assert self.targets is not None
        plan = self.spec.load
        targets = [t for t, _ in self.targets]
        parts = split_level(level, plan.mode, targets)
        coordinator = Coordinator([t.name for t in targets])

        async def one(i: int, target: Target) -> Measurement | None:
            load = LoadSpec(plan.mode, parts[target.name], arrival=plan.arrival, seed=self.spec.seed + i)
            settings = dataclasses.replace(self.settings, budget_ms=target.budget_ms)

            def decide(m: Measurement) -> Verdict:
                return coordinator.wrap(target.name, budget_verdict(m, target.budget_ms, self.spec.percentile,
                                                                    self.spec.confidence))

            def on_window(load: LoadSpec, index: int, stat: WindowStat, stable: bool) -> None:
                if self.session.local is not None:
                    self._check_server(f"while measuring {cand.config_id} at {load.describe()} of {target.name}")

            return await measure_level(self._clients[target.name], self._probes[target.name], load, settings,
                                       on_window=on_window, stop=self.stop, decide=decide)

        results = await asyncio.gather(*(one(i, t) for i, t in enumerate(targets)))
        if any(m is None for m in results):
            return None
        measured = {t.name: (m, budget_verdict(m, t.budget_ms, self.spec.percentile, self.spec.confidence))
                    for t, m in zip(targets, results) if m is not None}
        combined, verdict = combine(level, measured, targets, self.spec.budget_ms,
                                    PERCENTILE_FIELDS.get(int(self.spec.percentile), "p99_ms"))
        self._verdicts[id(combined)] = verdict
        return combined

    def _load(self, level: float, seed: int) -> LoadSpec:
        """One level of the spec's load: a steady level, or the schedule scaled by `level`."""
        plan = self.spec.load
        return LoadSpec(plan.mode, level, arrival=plan.arrival, seed=seed, schedule=self._schedule,
                        max_inflight=plan.max_inflight)

    async def _play(self, cand: Candidate, load: LoadSpec, phase: str) -> Measurement | None:
        """Play the schedule once at `load.level` and write its per-second timeline; None when
        stopped (a half-played schedule is no verdict: a resume plays it again)."""
        def on_second(elapsed: float, length: float, finished: int) -> None:
            if self.session.local is not None:
                self._check_server(f"while playing {load.describe()} on {cand.config_id}")
            if self.events.playing:
                self.events.playing(cand, load, elapsed, length, finished)

        played = await play_schedule(self._client, self._probe, load, self.settings, on_second=on_second,
                                     stop=self.stop)
        if played is None or self.stop.requested:
            return None
        self.store.write_timeline(cand.config_id, load.level,
                                  build_timeline(played.records, played.start, played.duration_s), phase)
        return played.measurement

    def _decide(self, m: Measurement) -> Verdict:
        """The budget verdict the measurement stops on (the same rule as every other verdict)."""
        return budget_verdict(m, self.spec.budget_ms, self.spec.percentile, self.spec.confidence)

    def _store_level(self, cand: Candidate, m: Measurement, verdict: Verdict, phase: str, round_: int | None = None) -> None:
        if isinstance(cand, JointCandidate):
            knobs = Candidate(cand.instance_count, 0, None)  # per-model knobs live in configs.csv
        else:
            knobs = knobs_of(apply_candidate(self.base_config, cand))
        steps = self.pipeline.steps if self.pipeline is not None else ()
        self.store.append_measurement(level_row(cand.config_id, knobs, m, verdict, phase, round_, steps))

    # -- confirmation round -------------------------------------------------------------------
    async def _confirm(self) -> bool:
        """The confirmation round (see `_confirm_rounds`); False when stopped.

        A shared study confirms on one worker, against one server, so that it compares like with
        like. The others wait for it and then print its answer, so every worker prints the pick
        `tritune report --storage` gives."""
        shared = self.store.shared
        if shared is None or self.spec.confirm_top <= 0:
            return await self._confirm_rounds()
        if not shared.claim(CONFIRM_CLAIM, -1):
            return self._await_confirmation()
        try:
            return await self._confirm_rounds()
        finally:
            shared.claim(CONFIRMED_CLAIM, -1)  # also when stopped: the waiting workers print what there is

    def _await_confirmation(self) -> bool:
        """Wait for another worker's confirmation round: until it marks the round done, or until
        it writes no row for longer than three of its levels could take (it died)."""
        shared = self.store.shared
        assert shared is not None
        held = shared.holder(CONFIRM_CLAIM)
        who = held[1] if held else "another worker"
        self._say(f"confirmation round: {who} runs it against its own server; waiting for its answer")
        stall_s = 3 * self._longest_level_s() + 30.0
        rows, last_change = -1, time.monotonic()
        while shared.holder(CONFIRMED_CLAIM) is None:
            if self.stop.requested:
                return False
            count = shared.count("measurement")
            if count != rows:
                rows, last_change = count, time.monotonic()
            elif time.monotonic() - last_change > stall_s:
                self._say(f"confirmation round: {who} wrote nothing for {stall_s:.0f} s and may have died; the "
                          f"pick below is what the study holds now (tritune report --storage URL --study "
                          f"{shared.study} shows the final answer)")
                return True
            time.sleep(SHARED_POLL_S)
        return True

    def _longest_level_s(self) -> float:
        """An upper bound on one level's measurement: warm-up, every window, the drain, and a
        whole schedule at the slowest scale."""
        s = self.settings
        level_s = s.warmup_s + s.max_windows * (s.window_s or s.max_window_s) + s.drain_s
        schedule = self.spec.load.parsed_schedule()
        if schedule is not None:
            level_s += schedule.duration_s / DEFAULT_MIN_SCALE
        return level_s

    async def _confirm_rounds(self) -> bool:
        """Re-measure the top configs at their capacity levels, interleaved (A B C A B C ...),
        so slow drift of a shared machine hits every config alike; False when stopped.

        In a shared study the round starts as soon as this worker's search ends: other workers
        may still finish their last configs, and one that enters the top joins the round (its
        rounds come after, still interleaved with the rest). The round ends when nothing is left
        to measure and no other worker measures."""
        self.store.trial = None
        if self.targets is not None:
            if confirm_plan(self.store.configs(), self.store.measurements(), self.spec.confirm_top)[0]:
                self._say("no confirmation round for several models yet: the pick is the search's")
            return True
        rounds = self.spec.confirm_rounds
        dropped: set[Candidate] = set()
        announced: list[Candidate] = []
        while True:
            if self.stop.requested:
                return False
            # Others' busy state first: a config's row is written before its trial ends, so when
            # no one was busy here, the plan read next holds every config.
            others_busy = self.store.shared is not None and self.search.others_busy()
            plan, done = confirm_plan(self.store.configs(), self.store.measurements(), self.spec.confirm_top)
            step = next_confirmation(plan, done, dropped, rounds)
            if step is None:
                if not others_busy:
                    return True
                await asyncio.sleep(SHARED_POLL_S)
                continue
            new = [c for c, _ in plan if c not in dropped and c not in announced]
            if new and not announced:
                if self.events.confirm_start:
                    self.events.confirm_start(new, rounds)
            elif new:
                joined = ", ".join(c.config_id for c in new)
                self._say(f"confirmation: {joined} joins the round (measured by another worker meanwhile)")
            announced += new
            cand, level, round_ = step
            reason = self._apply(cand)
            if reason:
                self._say(f"confirmation: {cand.config_id} could not be loaded again ({reason}); left out")
                dropped.add(cand)
                continue
            load = self._load(level, self.spec.seed + round_)
            if load.schedule is not None:
                m = await self._play(cand, load, f"confirm{round_}")
            else:
                m = await measure_level(self._client, self._probe, load, self.settings, stop=self.stop,
                                        decide=self._decide)
            if m is None:
                return False
            verdict = self._decide(m)
            self._store_level(cand, m, verdict, CONFIRM_PHASE, round_)
            if self.events.confirm:
                self.events.confirm(cand, round_, m, verdict)

    def _open_clients(self) -> None:
        if self.targets is not None:
            self._clients = {t.name: LoadGenerator(
                self.session.protocol, self.session.url, t.name, info.requests,
                timeout_s=self.settings.request_timeout_s, workers=self.spec.load.workers,
                local_server=self.session.local is not None) for t, info in self.targets}
            self._probes = {t.name: Probe(self.session.endpoint, self.session.protocol, t.name, self.session.pid)
                            for t, _ in self.targets}
            self._client, self._probe = None, None  # type: ignore[assignment]
            return
        self._client = LoadGenerator(
            self.session.protocol, self.session.url, self.model.name,
            self.model.requests, timeout_s=self.settings.request_timeout_s,
            workers=self.spec.load.workers, local_server=self.session.local is not None,
        )
        self._probe = Probe(self.session.endpoint, self.session.protocol, self.model.name, self.session.pid,
                            steps=self.pipeline.steps if self.pipeline is not None else ())

    async def _close_clients(self) -> None:
        if self.targets is not None:
            for client in self._clients.values():
                await client.close()
            for probe in self._probes.values():
                await asyncio.get_running_loop().run_in_executor(None, probe.close)
            return
        await self._client.close()
        await asyncio.get_running_loop().run_in_executor(None, self._probe.close)

    async def _recover(self, reason: str) -> None:
        """Local server: restart it (and reconnect) so the next config starts clean."""
        await self._close_clients()
        self._say(f"restarting tritonserver after: {reason.splitlines()[0]}")
        self.session.restart()
        self._open_clients()

    def _record(self, cand: Candidate, number: int, t0: float, result: CapacityResult | None,
                status: str, error: str) -> None:
        row = config_row(cand, result, status=status, error=error, mode=self.spec.load.level_kind,
                         trial=number, wall_s=time.monotonic() - t0, percentile=self.spec.percentile)
        self.store.append_config(row)
        if status == "failed":
            self.search.tell(cand, Outcome(0.0, math.nan, failed=True, error=error))
        else:
            assert result is not None
            at = result.at_capacity()
            closest = result.closest(self.spec.percentile)
            ref = at or closest  # the capacity level's measurement, else the closest to the budget
            self.search.tell(cand, Outcome(result.capacity_rps, ref.p99_ms if ref else math.nan,
                                           bottleneck=ref.bottleneck_step if ref else ""))
        if self.events.config_done:
            self.events.config_done(cand, row)
        self._update_answer(False)

    async def _run(self) -> tuple[bool, str]:
        self._open_clients()
        interrupted = False
        try:
            while not self.stop.requested:
                cand = self.search.ask(keep_waiting=lambda: not self.stop.requested)
                if cand is None:
                    break
                self.store.trial = self.search.trial_number
                number = self.search.measured + 1
                if self.events.config_start:
                    self.events.config_start(cand, number, self.search.measured + self.search.remaining())
                t0 = time.monotonic()
                try:
                    # On the loop's thread: the admin client must stay on the thread that made it
                    # (HTTP's is greenlet-based), and no load is running while a config loads.
                    reason = self._apply(cand)
                    if reason:
                        raise ConfigFailed(reason)
                    result = await self._measure_config(cand)
                    if result.interrupted:
                        self.search.abandon()
                        interrupted = True
                        break
                    failure = failure_of(result)
                    if failure:
                        raise ConfigFailed(failure[0] + _tail(self.session.log_tail(6)), restart=failure[1])
                    self._record(cand, number, t0, result, "pruned" if result.pruned else "ok", "")
                except ConfigFailed as exc:
                    self._say(f"config {cand.config_id} failed: {exc.reason}")
                    self._record(cand, number, t0, None, "failed", exc.reason)
                    if exc.restart and self.session.local is not None:
                        await self._recover(exc.reason)
                except (ServerDiedError, LoadTimeoutError) as exc:
                    reason = exc.message + _tail(exc.log_tail)
                    if self.session.local is None:
                        # A remote server cannot be restarted from here: stop with a resumable run.
                        self.search.abandon()
                        raise ServerError(
                            f"{exc.message}; the sweep stopped (results so far are in {self.store.dir})",
                            hint=f"when the server is back: tritune sweep --resume {self.store.dir}",
                        ) from None
                    self._say(f"config {cand.config_id} failed: {reason}")
                    self._record(cand, number, t0, None, "failed", reason)
                    await self._recover(reason)
            if not interrupted and not self.stop.requested:
                self._update_answer(False, self.search.stop_reason)
                try:
                    interrupted = not await self._confirm()
                except (ServerDiedError, LoadTimeoutError) as exc:
                    # The search's answer stands; only its confirmation is missing.
                    self._say(f"confirmation round stopped: {exc.message}{_tail(exc.log_tail)}")
            if self.stop.requested:
                interrupted = True
        finally:
            await self._close_clients()
        return interrupted, self.search.stop_reason

    def run(self) -> SweepResult:
        """Run the sweep to its end (or until stopped); the run directory is complete either way."""
        try:
            interrupted, reason = asyncio.run(self._run())
        except ServerError:
            self._update_answer(finished=False, stop_reason="the server went away")
            raise
        finally:
            self._restore_base()
        if interrupted:
            reason = "stopped by the user"
        summary = self._update_answer(finished=not interrupted, stop_reason=reason)
        if self.store.shared is not None:
            self.store.export_shared()  # the run directory holds every worker's rows
        try:
            write_report(self.store.dir)
        except Exception as exc:  # noqa: BLE001 - a report problem must not cost the sweep's answer
            self._say(f"could not write report.html: {exc} (retry with `tritune report {self.store.dir}`)")
        code = EXIT_OK if summary.get("best") else EXIT_NO_CONFIG
        return SweepResult(summary, code, interrupted, reason, self.best_path)

    def _restore_base(self) -> None:
        # A remote server goes back to the config it had; ours is about to stop anyway.
        if self.session.local is not None:
            return
        bases = ([(n, self.pipeline.bases[n]) for n in self.pipeline.tuned] if self.pipeline is not None
                 else [(self.model.name, self.base_config)])
        for name, config in bases:
            try:
                self.session.control.load_model(name, to_dict(config))
            except ServerError as exc:
                self._say(f"could not restore {name}'s original config: {exc.message}")
