"""The server side of a sweep: load a candidate's config(s) on the server and measure them.

`ConfigMeasurer` owns the load generators and probes, one of each per lane of the workload
(analyzer.workload: one model or pipeline has one lane, several models one each). It applies a
config (the workload's configs, dependencies first, checking that the server really serves what
was asked), runs one config's level search (analyzer.judge.levelsearch) with a measuring function
that sends each lane its part of a level at once and lets the workload combine their verdicts, or
plays a whole schedule per level, and re-measures one level for the confirmation round. The
runner decides what to measure and what a result means; this module only talks to the server.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from typing import Any

from analyzer.config.modelconfig import knobs_of, to_dict
from analyzer.config.pipeline import AnyCandidate
from analyzer.errors import ModelLoadError, ServerDiedError
from analyzer.judge.levelsearch import CapacityResult, LevelSearch, search_capacity
from analyzer.judge.targets import Coordinator
from analyzer.judge.verdict import Verdict, budget_verdict
from analyzer.load.shapes import LoadSpec
from analyzer.load.workers import LoadGenerator
from analyzer.measure.levels import MeasureSettings, StopToken, measure_level
from analyzer.measure.probe import Probe
from analyzer.measure.schedule import play_schedule
from analyzer.schema import percentile_field
from analyzer.server.session import ServerSession
from analyzer.spec.spec import DEFAULT_MIN_SCALE, SweepSpec
from analyzer.stats.measurement import Measurement, WindowStat
from analyzer.stats.timeline import timeline as build_timeline
from analyzer.store.rundir import RunStore
from analyzer.workload import Lane, Workload


def level_search(spec: SweepSpec, cand: AnyCandidate, start: float, best_capacity: float) -> LevelSearch:
    """A config's level search under the spec's load plan, from level `start`; `best_capacity`
    (the best so far) lets it skip refining a config that cannot beat it."""
    plan = spec.load
    return LevelSearch(
        mode=plan.mode,
        min_level=plan.min_level,
        max_level=plan.cap,
        start=start,
        refine_steps=plan.refine_steps,
        best_capacity=best_capacity,
        budget_ms=spec.budget_ms,
        resolution=plan.resolution_pct / 100.0,
        batching=cand.batching,
    )


class ConfigMeasurer:
    """Applies and measures configs of one sweep on one server session."""

    def __init__(
        self,
        spec: SweepSpec,
        store: RunStore,
        session: ServerSession,
        workload: Workload,
        settings: MeasureSettings,
        stop: StopToken,
        events: Any,
        *,
        say: Callable[[str], None] = lambda text: None,
    ) -> None:
        self.spec, self.store, self.session, self.workload = spec, store, session, workload
        self.settings = settings
        self.stop = stop
        self.events = events  # analyzer.sweep.loop.Events: window and playing progress
        self.say = say
        self._schedule = spec.load.parsed_schedule()  # levels are its scale factors (None: steady levels)
        self._verdicts: dict[int, Verdict] = {}  # each combined measurement's verdict, for _judge
        self.local = session.local is not None  # tritune's own server: restartable, its log readable
        self.log_tail = session.log_tail
        self._clients: list[LoadGenerator] = []
        self._probes: list[Probe] = []

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

    def apply(self, cand: AnyCandidate) -> str:
        """Load the candidate's config(s) on the server, dependencies first; '' on success,
        else the server's reason (naming the model, for a pipeline)."""
        self.check_server("before loading the config")
        loads = self.workload.configs(cand)
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
        instances = self.workload.step_instances(loads)
        for probe in self._probes:
            probe.instances = instances
        return ""

    # -- load clients ---------------------------------------------------------------------------
    def open(self) -> None:
        """Start the load generators and probes (one of each per lane)."""
        lanes = self.workload.lanes
        self._clients = [
            LoadGenerator(
                self.session.protocol,
                self.session.url,
                lane.name,
                lane.info.requests,
                timeout_s=self.settings.request_timeout_s,
                workers=self.spec.load.workers,
                local_server=self.session.local is not None,
                connections=lane.connections,
            )
            for lane in lanes
        ]
        self._probes = [
            Probe(self.session.endpoint, self.session.protocol, lane.name, self.session.pid, steps=lane.steps)
            for lane in lanes
        ]

    async def close(self) -> None:
        """Stop the load generators and probes."""
        loop = asyncio.get_running_loop()
        for client in self._clients:
            await client.close()
        for probe in self._probes:
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
        """A level's verdict: the workload's combined one (kept when it was measured)."""
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

    def _lane_verdict(self, m: Measurement, lane: Lane) -> Verdict:
        """A lane's measurement against its own budget."""
        return budget_verdict(m, lane.budget_ms, self.spec.percentile, self.spec.confidence)

    async def _measure_lanes(
        self, cand: AnyCandidate, level: float, seed: int, *, progress: bool
    ) -> tuple[Measurement, Verdict] | None:
        """One total level: each lane its part at once (the first lane's windows as progress),
        combined by the workload into the level's measurement and verdict; None when stopped."""
        lanes = self.workload.lanes
        parts = self.workload.split(level, self.spec.load.mode)
        # One lane's proven failure decides the level for all; one that proved it meets goes on
        # (under load for the others) until every lane has. A single lane stops on its own verdict.
        coordinator = Coordinator([lane.name for lane in lanes])

        async def one(i: int, lane: Lane) -> Measurement | None:
            load = self._load(parts[lane.name], seed + i)
            settings = dataclasses.replace(self.settings, budget_ms=lane.budget_ms)
            where = f" of {lane.name}" if len(lanes) > 1 else ""

            def on_window(load: LoadSpec, index: int, stat: WindowStat, stable: bool) -> None:
                if self.session.local is not None or stat.requests == 0:
                    # Local: a process check is free. Remote: ask only when nothing came back.
                    self.check_server(f"while measuring {cand.config_id} at {load.describe()}{where}")
                if progress and i == 0 and self.events.window:
                    self.events.window(cand, load, index, stat, stable)

            return await measure_level(
                self._clients[i],
                self._probes[i],
                load,
                settings,
                on_window=on_window,
                stop=self.stop,
                decide=lambda m: coordinator.wrap(lane.name, self._lane_verdict(m, lane)),
            )

        results = await asyncio.gather(*(one(i, lane) for i, lane in enumerate(lanes)))
        measured = {
            lane.name: (m, self._lane_verdict(m, lane)) for lane, m in zip(lanes, results) if m is not None
        }
        if len(measured) < len(lanes):
            return None  # stopped
        return self.workload.combine(level, measured, percentile_field(self.spec.percentile))

    async def measure_config(
        self,
        cand: AnyCandidate,
        start: float,
        best_capacity: float,
        on_level: Callable[[Measurement, Verdict], None],
    ) -> CapacityResult:
        """One config's level search from level `start`; `best_capacity` (the best so far) lets
        it skip refining a config that cannot beat it."""

        async def measure(level: float) -> Measurement | None:
            if self._schedule is not None:
                return await self._play(cand, self._load(level, self.spec.seed), "search")
            out = await self._measure_lanes(cand, level, self.spec.seed, progress=True)
            if out is None:
                return None
            self._verdicts[id(out[0])] = out[1]  # judged as combined, not by the sweep's budget alone
            return out[0]

        return await search_capacity(
            measure,
            level_search(self.spec, cand, start, best_capacity),
            self.spec.budget_ms,
            self.spec.percentile,
            self.spec.confidence,
            on_level=on_level,
            judge=self._judge,
        )

    async def _play(self, cand: AnyCandidate, load: LoadSpec, phase: str) -> Measurement | None:
        """Play the schedule once at `load.level` and write its per-second timeline; None when
        stopped (a half-played schedule is no verdict: a resume plays it again)."""

        def on_second(elapsed: float, length: float, finished: int) -> None:
            if self.session.local is not None:
                self.check_server(f"while playing {load.describe()} on {cand.config_id}")
            if self.events.playing:
                self.events.playing(cand, load, elapsed, length, finished)

        # A schedule is one model's (or pipeline's) load: the spec refuses one with targets.
        played = await play_schedule(
            self._clients[0], self._probes[0], load, self.settings, on_second=on_second, stop=self.stop
        )
        if played is None or self.stop.requested:
            return None
        self.store.write_timeline(
            cand.config_id, load.level, build_timeline(played.records, played.start, played.duration_s), phase
        )
        return played.measurement

    async def confirm_level(self, cand: AnyCandidate, level: float, round_: int) -> Measurement | None:
        """One confirmation round of a config at its capacity level (its own seed per round);
        None when stopped."""
        if self._schedule is not None:
            return await self._play(cand, self._load(level, self.spec.seed + round_), f"confirm{round_}")
        out = await self._measure_lanes(cand, level, self.spec.seed + round_, progress=False)
        return None if out is None else out[0]

    def longest_level_s(self) -> float:
        """An upper bound on one level's measurement: warm-up, every window, the drain, and a
        whole schedule at the slowest scale."""
        s = self.settings
        level_s = s.warmup_s + s.max_windows * (s.window_s or s.max_window_s) + s.drain_s
        if self._schedule is not None:
            level_s += self._schedule.duration_s / DEFAULT_MIN_SCALE
        return level_s
