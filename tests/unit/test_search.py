"""Both search strategies through ask/tell on a synthetic capacity landscape (no server): the
study records every measured config once, seeds come first, limits stop the search, and a
stopped search resumes from its study."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from analyzer.config.modelconfig import Candidate
from analyzer.search import make_search
from analyzer.search.study import Outcome

CANDIDATES = [Candidate(i, b, d) for i in (1, 2, 3) for b in (1, 8, 32, 64) for d in (0, 500, 2000)]
BASE = Candidate(1, 32, 0)


def landscape(c: Candidate) -> Outcome:
    """Capacity peaks at 1 instance, batch 8-32, long delay; 3 instances break the budget."""
    if c.instance_count == 3:
        return Outcome(0.0, 30.0)
    cap = (
        1000
        + 800 * math.log2(c.max_batch_size + 1) / 6
        + (c.max_queue_delay_us or 0) / 4
        - 300 * (c.instance_count - 1)
    )
    if c.max_batch_size == 64:
        cap -= 400
    return Outcome(cap, 5.0)


def run(search, limit: int = 100) -> list[Candidate]:
    asked = []
    for _ in range(limit):
        cand = search.ask()
        if cand is None:
            break
        asked.append(cand)
        search.tell(cand, landscape(cand))
    return asked


def storage(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'study.db'}"


def test_grid_measures_every_valid_config_once(tmp_path: Path) -> None:
    search = make_search(
        "grid", candidates=CANDIDATES, storage=storage(tmp_path), budget_ms=10, max_trials=1000
    )
    asked = run(search)
    assert sorted(asked) == sorted(CANDIDATES)
    assert search.stop_reason == "measured every valid config"


def test_optuna_seeds_first_no_repeats_and_finds_a_good_config(tmp_path: Path) -> None:
    search = make_search(
        "optuna",
        candidates=CANDIDATES,
        storage=storage(tmp_path),
        budget_ms=10,
        max_trials=12,
        seed=1,
        base=BASE,
    )
    asked = run(search)
    assert len(asked) == 12 and len(set(asked)) == 12
    assert asked[0] == BASE  # the config in use today is the first baseline
    best = max(landscape(c).capacity_rps for c in CANDIDATES)
    found = max(landscape(c).capacity_rps for c in asked)
    assert found >= 0.9 * best
    assert search.stop_reason == "reached max_trials (12)"
    measured = [t for t in search.study.trials if t.user_attrs.get("measured")]
    assert sorted(t.user_attrs["config_id"] for t in measured) == sorted(c.config_id for c in asked)
    # Configs that never met the budget carry a violated constraint for the sampler.
    for t in measured:
        assert (t.user_attrs["constraint"] <= 0) == (t.user_attrs["capacity_rps"] > 0)


def test_patience_stops_a_search_that_no_longer_improves(tmp_path: Path) -> None:
    flat = [Candidate(i, 8, d) for i in (1, 2, 3, 4) for d in (0, 100, 200, 300, 400)]
    search = make_search(
        "optuna", candidates=flat, storage=storage(tmp_path), budget_ms=10, max_trials=100, patience=4, seed=0
    )
    asked = []
    while (cand := search.ask()) is not None:
        asked.append(cand)
        search.tell(cand, Outcome(500.0, 5.0))  # every config the same
    assert len(asked) == 5 and "no improvement in the last 4" in search.stop_reason


def test_pareto_objective_records_both_values(tmp_path: Path) -> None:
    search = make_search(
        "optuna",
        candidates=CANDIDATES,
        storage=storage(tmp_path),
        budget_ms=10,
        objective="pareto",
        max_trials=6,
        seed=0,
        base=BASE,
    )
    asked = run(search)
    assert len(asked) == 6
    done = [t for t in search.study.trials if t.user_attrs.get("measured")]
    assert all(len(t.values) == 2 for t in done)


def test_failed_and_abandoned_configs_and_resume(tmp_path: Path) -> None:
    url = storage(tmp_path)
    first = make_search("grid", candidates=CANDIDATES[:4], storage=url, budget_ms=10, max_trials=100)
    a = first.ask()
    first.tell(a, Outcome(0.0, math.nan, failed=True, error="refused"))
    b = first.ask()
    first.abandon()  # stopped while measuring b
    again = make_search("grid", candidates=CANDIDATES[:4], storage=url, budget_ms=10, max_trials=100)
    assert again.outcomes[a].failed and again.outcomes[a].error == "refused"
    assert again.ask() == b  # the abandoned config comes first
    again.tell(b, landscape(b))
    rest = run(again)
    assert sorted([b, *rest]) == sorted(set(CANDIDATES[:4]) - {a})


@pytest.mark.parametrize("strategy", ["grid", "optuna"])
def test_time_budget(tmp_path: Path, strategy: str) -> None:
    search = make_search(
        strategy,
        candidates=CANDIDATES,
        storage=storage(tmp_path),
        budget_ms=10,
        max_trials=100,
        time_budget_s=1e-9,
    )
    assert search.ask() is None and "time budget" in search.stop_reason


# -- a search that knows when it is done -------------------------------------------------------------


def test_bound_from_the_largest_gain_per_step() -> None:
    from analyzer.search.bound import MIN_STEP_GAIN, plausible, step_gain, upper_bounds

    measured = {(0, 0): 100.0, (0, 1): 200.0, (0, 3): 0.0}  # one step doubled capacity; (0, 3) never met it
    assert step_gain(measured) == pytest.approx(2.0)
    bounds = upper_bounds(measured, [(0, 2), (2, 1), (3, 3)])
    assert bounds[(0, 2)] == pytest.approx(400.0)  # one step from the 200: 200 x 2
    assert bounds[(2, 1)] == pytest.approx(800.0)  # two steps from the 200
    assert bounds[(3, 3)] == pytest.approx(200.0 * 2**5)  # infeasible configs bound nothing
    flat = {(0, 0): 100.0, (1, 0): 101.0}
    assert step_gain(flat) == pytest.approx(MIN_STEP_GAIN)  # never assume a step gains less
    # Only what can beat the best by more than the tie margin is still plausible.
    # (3, 0) is one step past a config at a fifth of the best, with at most x2.5 per step: it
    # cannot come near the best; (0, 1) is along a knob never tried, so it can.
    falling = {(0, 0): 100.0, (1, 0): 50.0, (2, 0): 20.0}
    assert set(plausible(falling, [(3, 0), (0, 1)])) == {(0, 1)}
    # A config whose bound only ties the best is still worth measuring (the best is the highest
    # of noisy numbers), unless it falls more than 5 % short of it.
    assert set(plausible({(0, 0): 100.0, (1, 0): 50.0}, [(2, 0)])) == {(2, 0)}
    assert upper_bounds(falling, [(0, 1)], floors=(1.0, 3.0))[(0, 1)] == pytest.approx(300.0)
    assert upper_bounds({(0, 0): 0.0}, [(1, 0)]) == {(1, 0): math.inf}  # nothing met the budget yet


def test_optuna_stops_when_nothing_can_plausibly_beat_the_best(tmp_path: Path) -> None:
    # The peak sits in a corner (the base config): every knob step away costs 30 %.
    peak = Candidate(1, 1, 0)
    cands = [Candidate(i, b, d) for i in (1, 2, 3) for b in (1, 8, 32) for d in (0, 500, 2000)]

    def cliff(c: Candidate) -> Outcome:
        steps = (
            (c.instance_count - 1)
            + [1, 8, 32].index(c.max_batch_size)
            + [0, 500, 2000].index(c.max_queue_delay_us or 0)
        )
        return Outcome(1000.0 * 0.7**steps, 5.0)

    search = make_search(
        "optuna", candidates=cands, storage=storage(tmp_path), budget_ms=10, seed=0, base=peak
    )
    asked = []
    while (cand := search.ask()) is not None:
        asked.append(cand)
        search.tell(cand, cliff(cand))
    assert peak in asked and len(asked) <= 8  # of 27
    # It stopped by the bound, after measuring every neighbour of the best (a local optimum).
    assert "cannot plausibly beat the best" in search.stop_reason, search.stop_reason
    assert all(n in asked for n in search.neighbours(peak))
    assert search.max_trials is None and search.patience == 9  # no max_trials needed; patience automatic


def test_optuna_keeps_going_while_the_best_has_unmeasured_neighbours(tmp_path: Path) -> None:
    search = make_search(
        "optuna",
        candidates=CANDIDATES,
        storage=storage(tmp_path),
        budget_ms=10,
        seed=0,
        base=BASE,
        patience=100,
    )
    asked = run(search)
    best = max(asked, key=lambda c: landscape(c).capacity_rps)
    assert all(n in asked for n in search.neighbours(best))
    # The landscape's true best is found without measuring everything.
    assert landscape(best).capacity_rps == max(landscape(c).capacity_rps for c in CANDIDATES)
    assert len(asked) < len(CANDIDATES)


def test_each_knob_has_its_own_gain_per_step() -> None:
    from analyzer.search.bound import MIN_STEP_GAIN, axis_gains, upper_bounds

    # Knob 0 (say batch size) doubles capacity per step; knob 1 (say queue delay) moves it 2 %.
    measured = {(0, 0): 100.0, (1, 0): 200.0, (1, 1): 204.0, (3, 3): 0.0}
    gains = axis_gains(measured)
    assert gains[0] == pytest.approx(2.0) and gains[1] == pytest.approx(MIN_STEP_GAIN)
    # One delay step from the best: bounded by the delay knob's gain, not the batch knob's.
    assert upper_bounds(measured, [(1, 2)])[(1, 2)] == pytest.approx(204.0 * MIN_STEP_GAIN)
    # A knob never varied alone takes the overall largest gain per step.
    diagonal = {(0, 0): 100.0, (1, 1): 400.0}
    assert axis_gains(diagonal) == (pytest.approx(2.0), pytest.approx(2.0))


def test_an_instance_step_may_always_scale_capacity_linearly(tmp_path: Path) -> None:
    search = make_search("optuna", candidates=CANDIDATES, storage=storage(tmp_path), budget_ms=10, base=BASE)
    # instance_count 1, 2, 3: a step can double capacity (1 to 2); other knobs have no such floor.
    assert search.gain_floors() == (2.0, 1.0, 1.0, 1.0, 1.0)
