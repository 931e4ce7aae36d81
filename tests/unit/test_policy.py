"""Restart and resume policy (analyzer.sweep.policy), driven through a made-up measuring function: what
a failed config, a dead server and a stopped measurement lead to, and what a resumed run adopts."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from analyzer.config.modelconfig import Candidate
from analyzer.errors import LoadTimeoutError, ServerDiedError
from analyzer.judge.levelsearch import CapacityResult, LevelSearch, MeasureFn, search_capacity
from analyzer.judge.verdict import budget_verdict
from analyzer.search.grid import GridSearch
from analyzer.stats.measurement import Measurement
from analyzer.store.rows import config_row, level_row
from analyzer.store.rundir import RunStore
from analyzer.sweep.policy import ConfigOutcome, adopt_finished, start_level, try_config
from tests.helpers import measurement

BUDGET_MS = 10.0


def _m(
    level: float, *, p99_ms: float = 5.0, errors: int = 0, kinds: str = "", stalled: bool = False
) -> Measurement:
    """A measurement of 1000 requests at `level` (enough to prove a p99 claim with none over)."""
    return measurement(
        p99_ms,
        load_level=level,
        throughput_rps=100.0 * level,
        p50_ms=p99_ms / 2,
        p90_ms=p99_ms,
        p95_ms=p99_ms,
        max_ms=p99_ms,
        mean_ms=p99_ms / 2,
        p99_ci_low_ms=p99_ms,
        p99_ci_high_ms=p99_ms,
        requests=1000,
        errors=errors,
        error_kinds=kinds,
        over_budget=0 if p99_ms <= BUDGET_MS else 1000,
        stalled=stalled,
    )


def _knee(knee: float) -> MeasureFn:
    """A config whose p99 meets the budget up to level `knee` and breaks it above."""

    async def measure(level: float) -> Measurement | None:
        return _m(level, p99_ms=5.0 if level <= knee else 50.0)

    return measure


def _search(measure: MeasureFn) -> Any:
    search = LevelSearch(
        mode="concurrency", min_level=1, max_level=64, start=1, refine_steps=2, budget_ms=BUDGET_MS
    )
    return lambda: search_capacity(measure, search, BUDGET_MS)


def _try(apply: Any, measure: Any, log: str = "") -> ConfigOutcome:
    return asyncio.run(try_config(apply, measure, lambda n: log))


def test_a_healthy_config_is_measured_and_needs_no_restart() -> None:
    out = _try(lambda: "", _search(_knee(8)))
    assert out.status == "ok" and out.error == "" and not out.restart and not out.server_lost
    assert out.result is not None and out.result.level == 8 and out.result.capacity_rps == 800.0


def test_a_config_the_server_refuses_fails_without_being_measured_or_a_restart() -> None:
    measured: list[float] = []

    async def measure(level: float) -> Measurement | None:
        measured.append(level)
        return _m(level)

    out = _try(lambda: "model 'x' refused the config", _search(measure))
    assert (out.status, out.error, out.restart, out.result) == (
        "failed",
        "model 'x' refused the config",
        False,
        None,
    )
    assert measured == []


@pytest.mark.parametrize(
    "kinds, restart", [("timeout=1000", True), ("unavailable=1000", True), ("server_internal=1000", False)]
)
def test_a_level_without_one_success_fails_the_config(kinds: str, restart: bool) -> None:
    async def measure(level: float) -> Measurement | None:
        return _m(level, errors=1000 if level >= 2 else 0, kinds=kinds if level >= 2 else "")

    out = _try(lambda: "", _search(measure), log="started\nmodel crashed\n")
    assert out.status == "failed" and out.result is None
    assert out.error.startswith(f"no request succeeded at concurrency 2 (1000 requests: {kinds})")
    assert out.error.endswith(" | server log: started / model crashed")
    # A timeout or an unavailable model may have left an instance stuck: a local server restarts.
    assert out.restart is restart and not out.ends_sweep(local=False)


def test_a_stalled_server_fails_the_config_and_restarts_it() -> None:
    async def measure(level: float) -> Measurement | None:
        return _m(level, stalled=True)

    out = _try(lambda: "", _search(measure))
    assert out.status == "failed" and out.restart
    assert out.error.startswith("the server stopped answering at concurrency 1")


@pytest.mark.parametrize(
    "error",
    [
        ServerDiedError("tritonserver exited (code -9)", log_tail="one\ntwo"),
        LoadTimeoutError("loading the config took over 120 s"),
    ],
)
def test_a_dead_server_costs_the_config_and_ends_only_a_remote_sweep(error: Exception) -> None:
    async def measure(level: float) -> Measurement | None:
        if level > 2:
            raise error
        return _m(level)

    out = _try(lambda: "", _search(measure))
    assert out.status == "failed" and out.result is None and out.restart
    assert out.server_lost == error.message  # type: ignore[attr-defined]
    assert out.error.startswith(error.message)  # type: ignore[attr-defined]
    assert out.ends_sweep(local=False) and not out.ends_sweep(local=True)
    if isinstance(error, ServerDiedError):
        assert out.error.endswith(" | server log: one / two")


def test_a_server_that_dies_while_loading_fails_the_config_too() -> None:
    def apply() -> str:
        raise ServerDiedError("tritonserver exited (code 1) before loading the config")

    out = _try(apply, _search(_knee(8)))
    assert out.status == "failed" and out.restart and out.ends_sweep(local=False)


def test_a_stopped_measurement_is_interrupted_not_failed() -> None:
    async def measure(level: float) -> Measurement | None:
        return None if level > 2 else _m(level)

    out = _try(lambda: "", _search(measure))
    assert out.status == "interrupted" and not out.restart and out.result is not None
    assert out.result.interrupted


def test_a_pruned_search_is_recorded_as_pruned() -> None:
    async def measure(level: float) -> Measurement | None:
        return _m(level, p99_ms=5.0 if level <= 2 else 50.0)

    search = LevelSearch(
        mode="concurrency",
        min_level=1,
        max_level=64,
        start=1,
        refine_steps=2,
        best_capacity=10_000.0,
        budget_ms=BUDGET_MS,
    )
    out = _try(lambda: "", lambda: search_capacity(measure, search, BUDGET_MS))
    assert out.status == "pruned" and out.result is not None and out.result.pruned


def test_each_search_starts_at_half_the_best_capacity_level() -> None:
    assert start_level(None, 1.0) == 1.0
    assert start_level(32.0, 1.0) == 16.0
    assert start_level(1.0, 2.0) == 2.0  # never below the spec's lowest level


def _result(level: float) -> CapacityResult:
    m = _m(level)
    return CapacityResult(m.throughput_rps, level, [(m, budget_verdict(m, BUDGET_MS))], pruned=False)


def test_a_resumed_run_adopts_its_finished_configs_and_measures_the_one_in_flight_again(
    tmp_path: Path,
) -> None:
    done, failed, in_flight = Candidate(1, 8, 0), Candidate(2, 8, 0), Candidate(1, 32, 0)
    store = RunStore.create(None, "m", run_dir=tmp_path / "run")
    for cand in (done, failed, in_flight):  # every config measured a level before the run died
        m = _m(4.0)
        store.append_measurement(level_row(cand.config_id, cand, m, budget_verdict(m, BUDGET_MS), "search"))
    common: dict[str, Any] = dict(mode="concurrency", wall_s=1.0, percentile=99.0)
    store.append_config(config_row(done, _result(4.0), status="ok", error="", trial=1, **common))
    store.append_config(config_row(failed, None, status="failed", error="boom", trial=2, **common))

    search = GridSearch(candidates=[in_flight, done, failed], storage=store.storage_url, budget_ms=BUDGET_MS)
    finished = adopt_finished(store.configs(), store.measurements(), 99, search)
    assert finished == {done.config_id, failed.config_id}
    assert search.outcomes[done].capacity_rps == 400.0 and search.outcomes[done].latency_ms == 5.0
    assert search.outcomes[failed].failed and search.outcomes[failed].error == "boom"
    # The failed config's one level is its closest: its latency is that level's.
    assert search.outcomes[failed].latency_ms == 5.0
    # A p50 sweep's search learns the p50 (2.5 ms), not the p99 that configs.csv keeps.
    median = GridSearch(candidates=[in_flight, done, failed], storage="sqlite://", budget_ms=BUDGET_MS)
    adopt_finished(store.configs(), store.measurements(), 50, median)
    assert median.outcomes[done].latency_ms == 2.5

    store.keep_only_configs(finished)
    assert set(store.measurements()["config_id"]) == {done.config_id, failed.config_id}
    assert search.ask() == in_flight  # the one config left is measured again
