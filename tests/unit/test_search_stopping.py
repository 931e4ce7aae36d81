"""The stopping rules one at a time, on a made-up view of a search (no study, no server): each
says stop with its exact reason (summary.json's stopped_reason) when its limit is reached and
'' before, and bounds the configs left where it can; `rules` orders them as the reasons have
always been given, and a search asks them through its own state."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from analyzer.config.modelconfig import Candidate
from analyzer.search.grid import GridSearch
from analyzer.search.registry import make_search
from analyzer.search.stopping import Implausible, MaxTrials, Patience, SpaceMeasured, TimeBudget, rules
from analyzer.search.study import Outcome


@dataclass
class View:
    """What a rule reads of a search, set by hand."""

    measured: int = 0
    unmeasured: int = 10
    best: float = 0.0
    bounds: dict[Any, float] = field(default_factory=dict)
    local_optimum: bool = False
    min_trials_: int = 1
    elapsed: float = 0.0
    since: int = 0

    def unmeasured_count(self) -> int:
        return self.unmeasured

    def best_capacity(self) -> float:
        return self.best

    def plausible(self) -> dict[Any, float]:
        return self.bounds

    def best_is_local_optimum(self) -> bool:
        return self.local_optimum

    def min_trials(self) -> int:
        return self.min_trials_

    def elapsed_s(self) -> float:
        return self.elapsed

    def since_improvement(self) -> int:
        return self.since


def test_max_trials_stops_at_its_limit_and_bounds_what_is_left() -> None:
    rule = MaxTrials(4)
    assert rule.check(View(measured=3)) == "" and rule.left(View(measured=3)) == 1
    assert rule.check(View(measured=4)) == "reached max_trials (4)"
    assert rule.left(View(measured=5)) == -1  # the search clamps at 0


def test_space_measured_stops_once_nothing_is_left() -> None:
    rule = SpaceMeasured()
    assert rule.check(View(unmeasured=1)) == "" and rule.left(View(unmeasured=1)) == 1
    assert rule.check(View(unmeasured=0)) == "measured every valid config"


def test_implausible_needs_the_seeds_the_best_s_neighbours_and_no_plausible_config() -> None:
    rule = Implausible()
    done = View(measured=3, unmeasured=7, best=1234.56, local_optimum=True, min_trials_=3)
    assert rule.check(done) == (
        "the 7 unmeasured configs cannot plausibly beat the best (1234.6 req/s): every neighbour "
        "of the best was measured, and the rest are out of reach by the largest gain per knob step seen"
    )
    assert rule.left(done) == 0
    assert rule.check(View(measured=2, local_optimum=True, min_trials_=3)) == ""  # seeds first
    assert rule.check(View(measured=3, local_optimum=False)) == ""  # a neighbour unmeasured
    hopeful = View(measured=3, local_optimum=True, bounds={"a": 2000.0, "b": 1500.0})
    assert rule.check(hopeful) == "" and rule.left(hopeful) == 2


def test_time_budget_stops_once_spent() -> None:
    rule = TimeBudget(90.0)
    assert rule.check(View(elapsed=89.9)) == "" and rule.left(View()) is None
    assert rule.check(View(elapsed=90.0)) == "reached the time budget (90 s)"
    assert TimeBudget(1e-9).check(View(elapsed=1.0)) == "reached the time budget (1e-09 s)"


def test_patience_stops_after_that_many_configs_without_improvement() -> None:
    rule = Patience(4)
    assert rule.check(View(since=3)) == "" and rule.left(View()) is None
    assert rule.check(View(since=4)) == "no improvement in the last 4 configs"


def test_rules_are_ordered_max_trials_space_time_patience() -> None:
    made = rules("throughput", max_trials=5, time_budget_s=10.0, patience=3, space=[SpaceMeasured()])
    assert [type(r) for r in made] == [MaxTrials, SpaceMeasured, TimeBudget, Patience]
    # Every limit reached at once: max_trials' reason wins, as before the rules were objects.
    view = View(measured=5, unmeasured=0, elapsed=11.0, since=3)
    assert next(r.check(view) for r in made if r.check(view)) == "reached max_trials (5)"


def test_rules_leave_out_unset_limits_and_patience_for_pareto() -> None:
    assert [type(r) for r in rules("throughput", space=[SpaceMeasured()])] == [SpaceMeasured]
    assert [type(r) for r in rules("throughput", patience=0)] == []  # 0: no patience
    assert [type(r) for r in rules("pareto", patience=4)] == []


def test_each_strategy_is_built_with_its_rules() -> None:
    space = [Candidate(i, b, 0) for i in (1, 2) for b in (1, 8)]
    grid = make_search("grid", candidates=space, storage="sqlite://", budget_ms=10, max_trials=3)
    assert [type(r) for r in grid.rules] == [MaxTrials, SpaceMeasured]
    tpe = make_search("optuna", candidates=space, storage="sqlite://", budget_ms=10, time_budget_s=60)
    assert [type(r) for r in tpe.rules] == [SpaceMeasured, Implausible, TimeBudget, Patience]
    assert tpe.patience == 6 and tpe.max_trials is None  # automatic patience: two knobs vary
    assert grid.remaining() == 3 and grid.stop_check() == ""


def test_a_new_rule_is_one_class() -> None:
    class Enough:
        """Stop once one config met the budget at 100 req/s."""

        def check(self, view: Any) -> str:
            return "good enough" if view.best_capacity() >= 100 else ""

        def left(self, view: Any) -> int | None:
            return None

    space = [Candidate(1, b, 0) for b in (1, 8, 32)]
    search = GridSearch(
        candidates=space, storage="sqlite://", budget_ms=10, stop_rules=[Enough(), SpaceMeasured()]
    )
    first = search.ask()
    assert first is not None
    search.tell(first, Outcome(150.0, 1.0))
    assert search.ask() is None and search.stop_reason == "good enough"
