"""What every registered search strategy must do, run against each one (as Optuna's sampler
tests run against every sampler). Measuring is a pure function of the config: no server.

A new strategy in analyzer.search.registry is picked up here without a line of test code."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest

from analyzer.config.modelconfig import Candidate
from analyzer.search.base import Search
from analyzer.search.registry import CLASSES, make_search, strategy_class
from analyzer.search.study import Outcome
from analyzer.spec.spec import STRATEGIES

SPACE = [Candidate(i, b, d) for i in (1, 2, 3) for b in (1, 8, 32) for d in (0, 500)]
BASE = Candidate(2, 8, 500)  # the model's current config, inside SPACE
Measure = Callable[[Candidate], Outcome]


def hill(c: Candidate) -> Outcome:
    """A capacity landscape with one peak; 3 instances are refused by the server."""
    if c.instance_count == 3:
        return Outcome(0.0, math.nan, failed=True, error="refused")
    cap = 500 + 200 * math.log2(c.max_batch_size) + (c.max_queue_delay_us or 0) / 5 - 150 * c.instance_count
    return Outcome(cap, 4.0)


def never_meets(c: Candidate) -> Outcome:
    """No config meets the budget: nothing bounds the rest, so no strategy can stop early."""
    return Outcome(0.0, 25.0)


def drive(search: Search, measure: Measure, limit: int = 200) -> list[Candidate]:
    """Ask and tell until the search stops; the configs in the order asked."""
    asked = []
    for _ in range(limit):
        cand = search.ask()
        if cand is None:
            return asked
        asked.append(cand)
        search.tell(cand, measure(cand))
    raise AssertionError(f"the search did not stop within {limit} configs")


@pytest.fixture(params=STRATEGIES)
def strategy(request: pytest.FixtureRequest) -> str:
    """Each registered strategy in turn."""
    return str(request.param)


class TestEveryStrategy:
    """The contract of Search (see its docstring), for each name in the registry."""

    @staticmethod
    def new(
        strategy: str, tmp_path: Path | None, candidates: list[Candidate] = SPACE, **kwargs: object
    ) -> Search:
        """A search on the run directory's SQLite study (as a sweep's), or on a study in memory
        (tmp_path None: faster, for the tests that do not resume)."""
        storage: str | optuna.storages.BaseStorage = (
            optuna.storages.InMemoryStorage() if tmp_path is None else f"sqlite:///{tmp_path / 'study.db'}"
        )
        return make_search(strategy, candidates=candidates, storage=storage, budget_ms=10.0, seed=3, **kwargs)

    def test_is_registered_under_its_own_name(self, strategy: str) -> None:
        cls = strategy_class(strategy)
        assert issubclass(cls, Search) and cls.strategy == strategy

    def test_asks_only_configs_of_the_space_and_none_twice(self, strategy: str) -> None:
        asked = drive(self.new(strategy, None, base=BASE), hill)
        assert asked and set(asked) <= set(SPACE)
        assert len(asked) == len(set(asked))  # failed configs are not asked again either

    def test_stops_when_every_config_is_measured(self, strategy: str) -> None:
        small = SPACE[:4]  # two knobs vary: below any strategy's patience
        search = self.new(strategy, None, candidates=small)
        asked = drive(search, never_meets)
        assert sorted(asked) == sorted(small)
        assert search.stop_reason == "measured every valid config"
        assert search.ask() is None

    def test_stops_at_max_trials(self, strategy: str) -> None:
        search = self.new(strategy, None, max_trials=4, base=BASE)
        asked = drive(search, never_meets)
        assert len(asked) == 4 and len(set(asked)) == 4
        assert search.stop_reason == "reached max_trials (4)"
        assert search.remaining() == 0

    def test_starts_at_the_base_config_when_it_promises_to(self, strategy: str) -> None:
        if not strategy_class(strategy).starts_at_base:
            pytest.skip(f"{strategy} does not promise to start at the base config")
        assert self.new(strategy, None, base=BASE).ask() == BASE

    def test_resumes_from_the_configs_its_study_finished(self, strategy: str, tmp_path: Path) -> None:
        first = drive(self.new(strategy, tmp_path, max_trials=3, base=BASE), hill)
        again = self.new(strategy, tmp_path, max_trials=6, base=BASE)
        assert again.measured == 3 and {c for c in again.outcomes} == set(first)
        assert again.outcomes[first[0]] == hill(first[0])
        more = drive(again, hill)
        assert len(more) == 3 and not set(more) & set(first)

    def test_adopted_configs_are_not_measured_again(self, strategy: str) -> None:
        # A run that died between writing configs.csv and telling the study: the sweep adopts
        # the finished rows into the new search.
        search = self.new(strategy, None, candidates=SPACE[:4])
        done = SPACE[1]
        search.adopt(done, never_meets(done))
        asked = drive(search, never_meets)
        assert done not in asked and sorted([done, *asked]) == sorted(SPACE[:4])

    def test_a_config_abandoned_by_a_stopped_run_comes_first_on_resume(
        self, strategy: str, tmp_path: Path
    ) -> None:
        first = self.new(strategy, tmp_path, base=BASE)
        a = first.ask()
        first.tell(a, hill(a))
        b = first.ask()
        first.abandon()  # Ctrl-C while b was being measured
        again = self.new(strategy, tmp_path, base=BASE)
        assert again.measured == 1 and again.ask() == b

    def test_the_best_is_the_best_of_what_the_measuring_function_gave(self, strategy: str) -> None:
        search = self.new(strategy, None, base=BASE)
        asked = drive(search, hill)
        feasible = [c for c in asked if hill(c).feasible]
        best = max(feasible, key=lambda c: hill(c).capacity_rps)
        assert search.best_candidate() == best
        assert search.best_capacity() == pytest.approx(hill(best).capacity_rps)
        recorded = [t for t in search.study.trials if t.user_attrs.get("measured")]
        assert sorted(t.user_attrs["config_id"] for t in recorded) == sorted(c.config_id for c in asked)


def test_every_strategy_of_the_spec_has_a_class_and_no_other() -> None:
    assert list(CLASSES) == list(STRATEGIES)
    for name in STRATEGIES:
        assert strategy_class(name).__name__ in CLASSES[name]
