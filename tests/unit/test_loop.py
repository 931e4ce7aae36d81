"""The sweep loop (analyzer.sweep.loop) with an injected measurer: a model of a server whose best
config is known, so the loop's bookkeeping (rows, the search told, the answer, the confirmation
round, failures and stops) is checked without one. The real measurer runs in tests/integration."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from analyzer.config.modelconfig import Candidate, parse_pbtxt, read_pbtxt
from analyzer.config.pipeline import AnyCandidate
from analyzer.errors import EXIT_NO_CONFIG, EXIT_OK
from analyzer.judge.levelsearch import CapacityResult, search_capacity
from analyzer.judge.verdict import Verdict, budget_verdict
from analyzer.load.clients import RequestSet
from analyzer.measure.levels import StopToken
from analyzer.search import make_search
from analyzer.search.study import STUDY_NAME
from analyzer.server.session import ModelInfo
from analyzer.spec.spec import SweepSpec, parse_spec
from analyzer.stats.measurement import Measurement
from analyzer.store.rundir import RunStore
from analyzer.sweep.loop import Events, SweepResult, SweepRunner
from analyzer.sweep.measurer import level_search
from analyzer.workload import Lane, OneModel
from tests.builders import measured

BASE = parse_pbtxt(
    'name: "m"\nbackend: "python"\nmax_batch_size: 8\ninstance_group [{ count: 1 kind: KIND_CPU }]\n'
)
SPACE = [Candidate(i, b, 0) for i in (1, 2, 3) for b in (1, 8)]


def speed(c: Candidate) -> float:
    """The modelled server's parallelism: instances, doubled by batching."""
    return c.instance_count * (2.0 if c.max_batch_size > 1 else 1.0)


def level_of(c: Candidate, level: float) -> Measurement:
    """What the modelled server measures at a concurrency: p50 = 1 ms + 0.5 ms per request
    queued per unit of speed, p99 twice that, throughput by Little's law; its claim bounds +-2 %."""
    p50 = 1.0 + 0.5 * level / speed(c)
    p99 = 2.0 * p50
    return measured(
        level,
        level * 1000.0 / p50,
        p50=p50,
        p90=1.6 * p50,
        p95=1.8 * p50,
        p99=p99,
        requests=5000,
        budget_bound_ms=p99 * 1.02,
        over_bound_ms=p99 * 0.98,
    )


class ModelledServer:
    """The loop's Measuring protocol over the modelled server, with the real level search."""

    local = True

    def __init__(self, spec: SweepSpec, refuse: frozenset[str] = frozenset()) -> None:
        self.spec = spec
        self.refuse = refuse  # config ids whose load the server refuses
        self.loaded: list[str] = []
        self.current: Candidate | None = None
        self.confirmed: list[tuple[str, int]] = []
        self.opened = self.closed = 0

    def open(self) -> None:
        self.opened += 1

    async def close(self) -> None:
        self.closed += 1

    def apply(self, cand: AnyCandidate) -> str:
        self.loaded.append(cand.config_id)
        if cand.config_id in self.refuse:
            return "failed to load 'm': the modelled server refuses this config"
        self.current = cand.parts[0][1]
        return ""

    def decide(self, m: Measurement) -> Verdict:
        return budget_verdict(m, self.spec.budget_ms, self.spec.percentile, self.spec.confidence)

    async def measure_config(
        self,
        cand: AnyCandidate,
        start: float,
        best_capacity: float,
        on_level: Callable[[Measurement, Verdict], None],
    ) -> CapacityResult:
        loaded = self.current
        assert loaded is not None and cand == loaded, "measured what was loaded"

        async def measure(level: float) -> Measurement:
            return level_of(loaded, level)

        return await search_capacity(
            measure,
            level_search(self.spec, cand, start, best_capacity),
            self.spec.budget_ms,
            self.spec.percentile,
            self.spec.confidence,
            on_level=on_level,
        )

    async def confirm_level(self, cand: AnyCandidate, level: float, round_: int) -> Measurement | None:
        loaded = self.current
        assert loaded is not None and cand == loaded, "confirmed what was loaded"
        self.confirmed.append((cand.config_id, round_))
        return level_of(loaded, level)

    async def recover(self, reason: str) -> None:
        pass

    def log_tail(self, lines: int = 12) -> str:
        return ""

    def longest_level_s(self) -> float:
        return 1.0


def capacity_of(c: Candidate, budget_ms: float) -> float:
    """The modelled capacity: the highest whole concurrency whose p99 meets the budget."""
    level = math.floor((budget_ms / 2.0 - 1.0) / 0.5 * speed(c))
    return level_of(c, level).throughput_rps


def run(
    tmp_path: Path,
    *,
    budget_ms: float = 20.0,
    refuse: frozenset[str] = frozenset(),
    stop_after: int | None = None,
    confirm_top: int = 2,
) -> tuple[SweepResult, RunStore, ModelledServer]:
    spec = parse_spec(
        {
            "model": "m",
            "url": "127.0.0.1:8001",
            "budget_ms": budget_ms,
            "strategy": "grid",
            "confirm_top": confirm_top,
            "confirm_rounds": 3,
            "load": {"mode": "concurrency", "min_level": 1, "max_level": 128},
        },
        "loop-test",
    )
    store = RunStore.create(tmp_path, "m")
    server = ModelledServer(spec, refuse)
    workload = OneModel(Lane(ModelInfo("m", {}, {}, [], RequestSet(())), budget_ms), BASE, SPACE, SPACE[0])
    search = make_search(
        "grid",
        candidates=SPACE,
        storage=store.storage_url,
        study_name=STUDY_NAME,
        budget_ms=budget_ms,
        seed=0,
        base=SPACE[0],
    )
    stop = StopToken()
    done: list[str] = []

    def config_done(cand: Candidate, row: dict[str, object]) -> None:
        done.append(cand.config_id)
        if stop_after is not None and len(done) >= stop_after:
            stop.set()

    runner = SweepRunner(
        spec,
        store,
        None,
        workload,
        search,
        events=Events(config_done=config_done),
        stop=stop,
        measurer=server,
    )
    return runner.run(), store, server


def test_the_loop_measures_every_config_and_picks_the_known_best(tmp_path: Path) -> None:
    result, store, server = run(tmp_path)  # budget 20 ms
    assert result.exit_code == EXIT_OK and not result.interrupted
    configs = pd.read_csv(store.path("configs"))
    assert sorted(configs["config_id"]) == sorted(c.config_id for c in SPACE)
    assert sorted(server.loaded[: len(SPACE)]) == sorted(c.config_id for c in SPACE)  # then the round's
    best = capacity_of(SPACE[-1], 20.0)
    for c in SPACE:
        row = configs.loc[configs["config_id"] == c.config_id].iloc[0]
        truth = capacity_of(c, 20.0)
        if row["status"] == "pruned":
            # Cut short once it could not beat the best so far: a lower bound, of a config that
            # is truly below the best.
            assert float(row["capacity_rps"]) <= truth * 1.001 and truth < best, c.config_id
        else:
            # The modelled capacity, to the level search's resolution.
            assert row["status"] == "ok"
            assert float(row["capacity_rps"]) == pytest.approx(truth, rel=0.15), c.config_id
    assert (configs["status"] == "ok").sum() >= 2
    summary = json.loads(store.path("summary").read_text())
    assert summary["best"]["config_id"] == "i3_b8_d0"  # the most instances, batching
    assert summary["finished"] is True
    written = read_pbtxt(summary["best"]["config_pbtxt"])
    assert written.instance_group[0].count == 3 and written.max_batch_size == 8
    assert server.opened == 1 and server.closed == 1
    # The confirmation round: the top two, three rounds each, interleaved, in the tables.
    assert sorted(server.confirmed) == sorted((cid, r) for cid in ("i3_b8_d0", "i2_b8_d0") for r in (1, 2, 3))
    rows = pd.read_csv(store.path("measurements"))
    assert (rows["phase"] == "confirm").sum() == 6
    # Every search level is a row of the config measured.
    assert set(rows.loc[rows["phase"] == "search", "config_id"]) == {c.config_id for c in SPACE}


def test_a_refused_config_is_recorded_failed_and_the_sweep_goes_on(tmp_path: Path) -> None:
    result, store, _server = run(tmp_path, refuse=frozenset({"i3_b8_d0"}), confirm_top=0)
    configs = pd.read_csv(store.path("configs")).set_index("config_id")
    assert configs.loc["i3_b8_d0", "status"] == "failed"
    assert "refuses this config" in configs.loc["i3_b8_d0", "error"]
    assert len(configs) == len(SPACE)
    summary = json.loads(store.path("summary").read_text())
    assert summary["best"]["config_id"] == "i2_b8_d0"  # the next fastest: speed 4 (i3_b1_d0 has 3)
    assert result.exit_code == EXIT_OK


def test_a_stop_ends_the_sweep_resumable_with_what_was_measured(tmp_path: Path) -> None:
    result, store, server = run(tmp_path, stop_after=2)
    assert result.interrupted and result.stop_reason == "stopped by the user"
    configs = pd.read_csv(store.path("configs"))
    assert len(configs) == 2 and server.confirmed == []
    summary = json.loads(store.path("summary").read_text())
    assert summary["finished"] is False and summary["best"]["config_id"] in set(configs["config_id"])


def test_no_config_within_the_budget_exits_no_config_and_names_the_closest(tmp_path: Path) -> None:
    result, store, _ = run(tmp_path, budget_ms=2.0, confirm_top=0)  # p99 > 2.1 ms at concurrency 1
    assert result.exit_code == EXIT_NO_CONFIG
    summary = json.loads(store.path("summary").read_text())
    assert summary["best"] is None and summary["closest"]["config_id"] == "i3_b8_d0"
