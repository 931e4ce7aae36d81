"""Optuna search: TPE over the knobs, throughput as the objective, the budget as a constraint.

The first trials are seeded: the model's current config (what you run today is the baseline to
beat) and spread points of the space; TPE takes over from there. A proposal that was already
measured is answered from the study, not measured again; when TPE keeps proposing measured
points, an unmeasured one is taken at random so the trial budget is spent on new configs.
"""

from __future__ import annotations

import random
import warnings

import optuna

from analyzer.search.base import TRIAL_CONSTRAINTS, Search, constraint_of, set_budget_constraint
from analyzer.space import Candidate

MAX_REPEATS = 25  # proposals of measured or invalid points before falling back to a random one


def spread_points(candidates: list[Candidate], base: Candidate | None) -> list[Candidate]:
    """Seeds: the base config (or its nearest candidate), then the space's extremes and middle."""
    seeds: list[Candidate] = []

    def nearest(target: Candidate) -> Candidate:
        def distance(c: Candidate) -> tuple[float, ...]:
            return (
                abs(c.instance_count - target.instance_count),
                abs(c.max_batch_size - target.max_batch_size) / max(1, target.max_batch_size),
                abs((c.max_queue_delay_us or 0) - (target.max_queue_delay_us or 0)) / 1000.0,
            )

        return min(candidates, key=distance)

    if base is not None:
        seeds.append(base if base in candidates else nearest(base))
    by = sorted(candidates, key=lambda c: (c.instance_count, c.max_batch_size, c.max_queue_delay_us or 0))
    middle = by[len(by) // 2]
    hi_batch = max(candidates, key=lambda c: (c.max_batch_size, c.max_queue_delay_us or 0, -c.instance_count))
    hi_inst = max(candidates, key=lambda c: (c.instance_count, c.max_batch_size, -(c.max_queue_delay_us or 0)))
    for cand in (middle, hi_batch, hi_inst):
        if cand not in seeds:
            seeds.append(cand)
    return seeds


class OptunaSearch(Search):
    """TPE (multivariate, constrained) with seeded starting points."""

    strategy = "optuna"

    def __init__(self, **kwargs: object) -> None:
        self._seed_list: list[Candidate] = []
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._rng = random.Random(self.seed)
        self._seed_list = [c for c in spread_points(self.candidates, self.base) if c not in self.outcomes]

    def _sampler(self) -> optuna.samplers.BaseSampler:
        n_seeds = len(spread_points(self.candidates, self.base))
        extra = {} if TRIAL_CONSTRAINTS else {"constraints_func": constraint_of}
        with warnings.catch_warnings():
            # multivariate TPE is marked experimental; it is what lets the knobs interact.
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(seed=self.seed, n_startup_trials=n_seeds, multivariate=True, **extra)

    def _propose(self) -> tuple[Candidate, optuna.trial.Trial | None] | None:
        while self._seed_list:
            cand = self._seed_list.pop(0)
            if cand not in self.outcomes:
                return cand, None
        for _ in range(MAX_REPEATS):
            trial = self.study.ask(self.dists)
            cand = Candidate.from_params(trial.params)
            if cand in self.valid and cand not in self.outcomes:
                return cand, trial
            if cand in self.outcomes:
                self._answer_from_history(trial, cand)
            else:
                self.study.tell(trial, state=optuna.trial.TrialState.FAIL)  # invalid combination
        unmeasured = [c for c in self.candidates if c not in self.outcomes]
        return (self._rng.choice(unmeasured), None) if unmeasured else None

    def _answer_from_history(self, trial: optuna.trial.Trial, cand: Candidate) -> None:
        outcome = self.outcomes[cand]
        trial.set_user_attr("duplicate_of", cand.config_id)
        set_budget_constraint(trial, -1.0 if outcome.feasible else 1.0)
        if outcome.failed:
            self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
        elif len(self.directions) == 1:
            self.study.tell(trial, outcome.capacity_rps)
        else:
            self.study.tell(trial, [outcome.capacity_rps, outcome.p99_ms])
