"""Both search strategies through ask/tell on a synthetic capacity landscape (no server): the
study records every measured config once, seeds come first, limits stop the search, and a
stopped search resumes from its study."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from analyzer.search import make_search
from analyzer.search.base import Outcome
from analyzer.space import Candidate

CANDIDATES = [Candidate(i, b, d) for i in (1, 2, 3) for b in (1, 8, 32, 64) for d in (0, 500, 2000)]
BASE = Candidate(1, 32, 0)


def landscape(c: Candidate) -> Outcome:
    """Capacity peaks at 1 instance, batch 8-32, long delay; 3 instances break the budget."""
    if c.instance_count == 3:
        return Outcome(0.0, 30.0)
    cap = 1000 + 800 * math.log2(c.max_batch_size + 1) / 6 + (c.max_queue_delay_us or 0) / 4 - 300 * (c.instance_count - 1)
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
    search = make_search("grid", candidates=CANDIDATES, storage_url=storage(tmp_path), budget_ms=10, max_trials=1000)
    asked = run(search)
    assert sorted(asked) == sorted(CANDIDATES)
    assert search.stop_reason == "measured every valid config"


def test_optuna_seeds_first_no_repeats_and_finds_a_good_config(tmp_path: Path) -> None:
    search = make_search("optuna", candidates=CANDIDATES, storage_url=storage(tmp_path), budget_ms=10,
                         max_trials=12, seed=1, base=BASE)
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
    search = make_search("optuna", candidates=flat, storage_url=storage(tmp_path), budget_ms=10,
                         max_trials=100, patience=4, seed=0)
    asked = []
    while (cand := search.ask()) is not None:
        asked.append(cand)
        search.tell(cand, Outcome(500.0, 5.0))  # every config the same
    assert len(asked) == 5 and "no improvement in the last 4" in search.stop_reason


def test_pareto_objective_records_both_values(tmp_path: Path) -> None:
    search = make_search("optuna", candidates=CANDIDATES, storage_url=storage(tmp_path), budget_ms=10,
                         objective="pareto", max_trials=6, seed=0, base=BASE)
    asked = run(search)
    assert len(asked) == 6
    done = [t for t in search.study.trials if t.user_attrs.get("measured")]
    assert all(len(t.values) == 2 for t in done)


def test_failed_and_abandoned_configs_and_resume(tmp_path: Path) -> None:
    url = storage(tmp_path)
    first = make_search("grid", candidates=CANDIDATES[:4], storage_url=url, budget_ms=10, max_trials=100)
    a = first.ask()
    first.tell(a, Outcome(0.0, math.nan, failed=True, error="refused"))
    b = first.ask()
    first.abandon()  # stopped while measuring b
    again = make_search("grid", candidates=CANDIDATES[:4], storage_url=url, budget_ms=10, max_trials=100)
    assert again.outcomes[a].failed and again.outcomes[a].error == "refused"
    assert again.ask() == b  # the abandoned config comes first
    again.tell(b, landscape(b))
    rest = run(again)
    assert sorted([b, *rest]) == sorted(set(CANDIDATES[:4]) - {a})


@pytest.mark.parametrize("strategy", ["grid", "optuna"])
def test_time_budget(tmp_path: Path, strategy: str) -> None:
    search = make_search(strategy, candidates=CANDIDATES, storage_url=storage(tmp_path), budget_ms=10,
                         max_trials=100, time_budget_s=1e-9)
    assert search.ask() is None and "time budget" in search.stop_reason
