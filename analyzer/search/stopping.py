"""When a search is done: its stopping rules, one class each, that a strategy is built with.

A rule reads what the search knows (`SearchState`: how many configs were measured, how many are
left, the best so far, the plausibility bound, the time spent) and says why the search should
stop now, or '' to go on. The search asks its rules in order before each config, and the first
reason given is the run's `stopped_reason` (summary.json), so these strings are part of the run
directory's format. A rule may also bound how many more configs the search can measure
(`left`), which the progress line shows. Adding a rule is one class here and its place in a
strategy's `stop_rules`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol


class SearchState(Protocol):
    """What a stopping rule reads of a search (analyzer.search.base.Search is one)."""

    @property
    def measured(self) -> int:
        """Configs measured so far (this run and earlier ones)."""
        ...

    def unmeasured_count(self) -> int:
        """Valid configs not measured yet."""
        ...

    def best_capacity(self) -> float:
        """Highest capacity measured so far (0 when none met the budget)."""
        ...

    def plausible(self) -> dict[Any, float]:
        """Unmeasured configs that could still beat the best, with their optimistic bounds."""
        ...

    def best_is_local_optimum(self) -> bool:
        """Every neighbour of the best config has been measured."""
        ...

    def min_trials(self) -> int:
        """Configs to measure before the plausibility bound may stop the search."""
        ...

    def elapsed_s(self) -> float:
        """Seconds since the search started (this run)."""
        ...

    def since_improvement(self) -> int:
        """Configs measured since the best capacity last rose by more than 1 %."""
        ...


class StopRule(Protocol):
    """One reason to stop a search."""

    def check(self, view: SearchState) -> str:
        """Why the search should stop now, or '' to go on."""
        ...

    def left(self, view: SearchState) -> int | None:
        """At most how many more configs this rule lets the search measure (None: no bound)."""
        ...


class MaxTrials:
    """Stop once `limit` configs are measured (the spec's max_trials)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit

    def check(self, view: SearchState) -> str:
        """The reason once the trial budget is spent."""
        return f"reached max_trials ({self.limit})" if view.measured >= self.limit else ""

    def left(self, view: SearchState) -> int | None:
        """What the trial budget still allows."""
        return self.limit - view.measured


class SpaceMeasured:
    """Stop once every valid config is measured."""

    def check(self, view: SearchState) -> str:
        """The reason once nothing is left to measure."""
        return "measured every valid config" if view.unmeasured_count() == 0 else ""

    def left(self, view: SearchState) -> int | None:
        """The configs not measured yet."""
        return view.unmeasured_count()


class Implausible:
    """Stop once no unmeasured config can plausibly beat the best (analyzer.search.bound), after
    the search's first `min_trials` configs and once every neighbour of the best was measured:
    the bound needs spread measurements, and the best's neighbours are its likeliest betters."""

    def check(self, view: SearchState) -> str:
        """The reason once the bound rules out every unmeasured config."""
        if view.measured < view.min_trials() or not view.best_is_local_optimum() or view.plausible():
            return ""
        return (
            f"the {view.unmeasured_count()} unmeasured configs cannot plausibly beat the best "
            f"({view.best_capacity():.1f} req/s): every neighbour of the best was measured, and "
            "the rest are out of reach by the largest gain per knob step seen"
        )

    def left(self, view: SearchState) -> int | None:
        """The configs that could still beat the best."""
        return len(view.plausible())


class TimeBudget:
    """Stop once the search has run for `seconds` (the spec's time_budget_s)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def check(self, view: SearchState) -> str:
        """The reason once the time budget is spent."""
        return f"reached the time budget ({self.seconds:g} s)" if view.elapsed_s() >= self.seconds else ""

    def left(self, view: SearchState) -> int | None:
        """No bound on configs: how long each takes is not known here."""
        return None


class Patience:
    """Stop after `trials` configs in a row that did not raise the best capacity by over 1 %."""

    def __init__(self, trials: int) -> None:
        self.trials = trials

    def check(self, view: SearchState) -> str:
        """The reason once the search has stopped improving."""
        return (
            f"no improvement in the last {self.trials} configs"
            if view.since_improvement() >= self.trials
            else ""
        )

    def left(self, view: SearchState) -> int | None:
        """No bound: the next config may improve."""
        return None


def rules(
    objective: str,
    *,
    max_trials: int | None = None,
    time_budget_s: float | None = None,
    patience: int | None = None,
    space: Sequence[StopRule] = (),
) -> list[StopRule]:
    """A strategy's rules, in the order their reasons have always been given: the spec's
    max_trials, then the strategy's own rules about its space (`space`), then the time budget
    and patience (throughput objective only: a Pareto search improves along two axes)."""
    out: list[StopRule] = [MaxTrials(max_trials)] if max_trials is not None else []
    out += space
    if time_budget_s is not None:
        out.append(TimeBudget(time_budget_s))
    if patience and objective == "throughput":
        out.append(Patience(patience))
    return out
