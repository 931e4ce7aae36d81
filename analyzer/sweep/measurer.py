"""The server side of a sweep: load a candidate's config(s) on the server and measure them.

`ConfigMeasurer` owns the load generators and probes. It applies a config (a pipeline's models
dependencies first, checking that the server really serves what was asked), runs one config's
level search (analyzer.judge.levelsearch) with a measuring function that sends load, several models'
levels at once (each its share and budget, analyzer.judge.targets), or a whole schedule played per
level, and re-measures one level for the confirmation round. The runner decides what to measure
and what a result means; this module only talks to the server.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from typing import Any

from analyzer.config.modelconfig import Candidate, ModelConfig, apply_candidate, knobs_of, to_dict
from analyzer.config.pipeline import JointCandidate, PipelineTarget
from analyzer.errors import ModelLoadError, ServerDiedError
from analyzer.judge.levelsearch import CapacityResult, LevelSearch, search_capacity
from analyzer.judge.targets import Coordinator, Target, combine, split_level
from analyzer.judge.verdict import Verdict, budget_verdict
from analyzer.limits import connection_budget
from analyzer.load.shapes import LoadSpec
from analyzer.load.workers import LoadGenerator
from analyzer.measure.levels import MeasureSettings, StopToken, measure_level
from analyzer.measure.probe import Probe
from analyzer.measure.schedule import play_schedule
from analyzer.schema import percentile_field
from analyzer.server.session import ModelInfo, ServerSession
from analyzer.spec.spec import DEFAULT_MIN_SCALE, SweepSpec
from analyzer.stats.measurement import Measurement, WindowStat
from analyzer.stats.timeline import timeline as build_timeline
from analyzer.store.rundir import RunStore


class ConfigMeasurer:
    """Applies and measures configs of one sweep on one server session."""

    def __init__(
        self,
        spec: SweepSpec,
        store: RunStore,
        session: ServerSession,
        model: ModelInfo,
        base_config: ModelConfig,
        settings: MeasureSettings,
        stop: StopToken,
        events: Any,
        *,
        pipeline: PipelineTarget | None = None,
        targets: list[tuple[Target, ModelInfo]] | None = None,
        say: Callable[[str], None] = lambda text: None,
    ) -> None:
        self.spec, self.store, self.session, self.model = spec, store, session, model
        self.base_config = base_config
        self.settings = settings
        self.stop = stop
        self.events = events  # analyzer.sweep.loop.Events: window and playing progress
        self.pipeline = pipeline
        self.targets = targets  # several models measured together (each its share and budget)
        self.say = say
        self._schedule = spec.load.parsed_schedule()  # levels are its scale factors (None: steady levels)
        self._verdicts: dict[int, Verdict] = {}  # targets: each combined measurement's verdict
        self._client: LoadGenerator | None = None
        self._probe: Probe | None = None

    # -- the server -----------------------------------------------------------------------------
    def check_server(self, during: str) -> None:
        """Raise ServerDiedError when the server is gone (local: its process; remote: liveness)."""
        local = self.session.local
        if local is not None:
            if not local.alive():
                raise ServerDiedError(
                    f"tritonserver exited (code {local.exit_code()}) {during}", log_tail=local.log_tail(12)
                )
        elif not self.session.control.is_live():
            raise ServerDiedError(f"the server at {self.session.url} stopped answering {during}")

    def configs(self, cand: Candidate | JointCandidate) -> list[tuple[str, ModelConfig | None]]:
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

    def knobs(self, cand: Candidate | JointCandidate) -> Candidate:
        """The knobs a measurement row names: the applied config's (a pipeline's instances of all
        tuned models; its per-model knobs live in configs.csv)."""
        if isinstance(cand, JointCandidate):
            return Candidate(cand.instance_count, 0, None)
        return knobs_of(apply_candidate(self.base_config, cand))

    def apply(self, cand: Candidate | JointCandidate) -> str:
        """Load the candidate's config(s) on the server, dependencies first; '' on success,
        else the server's reason (naming the model, for a pipeline)."""
        self.check_server("before loading the config")
        loads = self.configs(cand)
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
                return (
                    f"{prefix}the server kept another config after loading (instances, max batch, delay) = "
                    f"{have}, wanted {want}"
                )
        if self.pipeline is not None and self._probe is not None:
            self._probe.instances = {
                n: knobs_of(self.pipeline.bases[n]).instance_count for n in self.pipeline.steps
            } | {name: knobs_of(config).instance_count for name, config in loads if config is not None}
        return ""

    # -- load clients ---------------------------------------------------------------------------
    def open(self) -> None:
        """Start the load generators and probes (one of each per model under load)."""
        if self.targets is not None:
            # The models are loaded at once from this process: they share its connections.
            share = max(1, connection_budget() // len(self.targets))
            self._clients = {
                t.name: LoadGenerator(
                    self.session.protocol,
                    self.session.url,
                    t.name,
                    info.requests,
                    timeout_s=self.settings.request_timeout_s,
                    workers=self.spec.load.workers,
                    local_server=self.session.local is not None,
                    connections=share,
                )
                for t, info in self.targets
            }
            self._probes = {
                t.name: Probe(self.session.endpoint, self.session.protocol, t.name, self.session.pid)
                for t, _ in self.targets
            }
            self._client, self._probe = None, None
            return
        self._client = LoadGenerator(
            self.session.protocol,
            self.session.url,
            self.model.name,
            self.model.requests,
            timeout_s=self.settings.request_timeout_s,
            workers=self.spec.load.workers,
            local_server=self.session.local is not None,
        )
        self._probe = Probe(
            self.session.endpoint,
            self.session.protocol,
            self.model.name,
            self.session.pid,
            steps=self.pipeline.steps if self.pipeline is not None else (),
        )

    def _single(self) -> tuple[LoadGenerator, Probe]:
        """The one model's load generator and probe (open() makes them; several targets have theirs
        in _clients and _probes)."""
        assert self._client is not None and self._probe is not None, "open() first"
        return self._client, self._probe

    async def close(self) -> None:
        """Stop the load generators and probes."""
        loop = asyncio.get_running_loop()
        if self.targets is not None:
            for client in self._clients.values():
                await client.close()
            for probe in self._probes.values():
                await loop.run_in_executor(None, probe.close)
            return
        client, probe = self._single()
        await client.close()
        await loop.run_in_executor(None, probe.close)

    async def recover(self, reason: str) -> None:
        """Local server: restart it (and reconnect) so the next config starts clean."""
        await self.close()
        self.say(f"restarting tritonserver after: {reason.splitlines()[0]}")
        self.session.restart()
        self.open()

    # -- measuring ------------------------------------------------------------------------------
    def decide(self, m: Measurement) -> Verdict:
        """The budget verdict the measurement stops on (the same rule as every other verdict)."""
        return budget_verdict(m, self.spec.budget_ms, self.spec.percentile, self.spec.confidence)

    def _judge(self, m: Measurement) -> Verdict:
        """A level's verdict: several models' combined one, else the budget verdict."""
        if id(m) in self._verdicts:
            return self._verdicts.pop(id(m))
        return self.decide(m)

    def _load(self, level: float, seed: int) -> LoadSpec:
        """One level of the spec's load: a steady level, or the schedule scaled by `level`."""
        plan = self.spec.load
        return LoadSpec(
            plan.mode,
            level,
            arrival=plan.arrival,
            seed=seed,
            schedule=self._schedule,
            max_inflight=plan.max_inflight,
        )

    async def measure_config(
        self,
        cand: Candidate | JointCandidate,
        start: float,
        best_capacity: float,
        on_level: Callable[[Measurement, Verdict], None],
    ) -> CapacityResult:
        """One config's level search from level `start`; `best_capacity` (the best so far) lets
        it skip refining a config that cannot beat it."""
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
                    self.check_server(f"while measuring {cand.config_id} at {load.describe()}")
                if self.events.window:
                    self.events.window(cand, load, index, stat, stable)

            return await measure_level(
                *self._single(), load, self.settings, on_window=on_window, stop=self.stop, decide=self.decide
            )

        search = LevelSearch(
            mode=plan.mode,
            min_level=plan.min_level,
            max_level=plan.cap,
            start=start,
            refine_steps=plan.refine_steps,
            best_capacity=best_capacity,
            budget_ms=self.spec.budget_ms,
            resolution=plan.resolution_pct / 100.0,
            batching=cand.batching
            if isinstance(cand, JointCandidate)
            else cand.max_batch_size > 1 and cand.max_queue_delay_us is not None,
        )
        return await search_capacity(
            measure,
            search,
            self.spec.budget_ms,
            self.spec.percentile,
            self.spec.confidence,
            on_level=on_level,
            judge=self._judge,
        )

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
                return coordinator.wrap(
                    target.name,
                    budget_verdict(m, target.budget_ms, self.spec.percentile, self.spec.confidence),
                )

            def on_window(load: LoadSpec, index: int, stat: WindowStat, stable: bool) -> None:
                if self.session.local is not None:
                    self.check_server(
                        f"while measuring {cand.config_id} at {load.describe()} of {target.name}"
                    )

            return await measure_level(
                self._clients[target.name],
                self._probes[target.name],
                load,
                settings,
                on_window=on_window,
                stop=self.stop,
                decide=decide,
            )

        results = await asyncio.gather(*(one(i, t) for i, t in enumerate(targets)))
        if any(m is None for m in results):
            return None
        measured = {
            t.name: (m, budget_verdict(m, t.budget_ms, self.spec.percentile, self.spec.confidence))
            for t, m in zip(targets, results)
            if m is not None
        }
        combined, verdict = combine(
            level, measured, targets, self.spec.budget_ms, percentile_field(self.spec.percentile)
        )
        self._verdicts[id(combined)] = verdict
        return combined

    async def _play(self, cand: Candidate | JointCandidate, load: LoadSpec, phase: str) -> Measurement | None:
        """Play the schedule once at `load.level` and write its per-second timeline; None when
        stopped (a half-played schedule is no verdict: a resume plays it again)."""

        def on_second(elapsed: float, length: float, finished: int) -> None:
            if self.session.local is not None:
                self.check_server(f"while playing {load.describe()} on {cand.config_id}")
            if self.events.playing:
                self.events.playing(cand, load, elapsed, length, finished)

        played = await play_schedule(
            *self._single(), load, self.settings, on_second=on_second, stop=self.stop
        )
        if played is None or self.stop.requested:
            return None
        self.store.write_timeline(
            cand.config_id, load.level, build_timeline(played.records, played.start, played.duration_s), phase
        )
        return played.measurement

    async def confirm_level(
        self, cand: Candidate | JointCandidate, level: float, round_: int
    ) -> Measurement | None:
        """One confirmation round of a config at its capacity level (its own seed per round);
        None when stopped."""
        load = self._load(level, self.spec.seed + round_)
        if load.schedule is not None:
            return await self._play(cand, load, f"confirm{round_}")
        return await measure_level(*self._single(), load, self.settings, stop=self.stop, decide=self.decide)

    def longest_level_s(self) -> float:
        """An upper bound on one level's measurement: warm-up, every window, the drain, and a
        whole schedule at the slowest scale."""
        s = self.settings
        level_s = s.warmup_s + s.max_windows * (s.window_s or s.max_window_s) + s.drain_s
        if self._schedule is not None:
            level_s += self._schedule.duration_s / DEFAULT_MIN_SCALE
        return level_s
