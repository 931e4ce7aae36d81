"""Optuna search: TPE over the knobs, throughput as the objective, the budget as a constraint.

The first trials are seeded: the model's current config (what you run today is the baseline to
beat) and spread points of the space; TPE takes over from there, and the last third of the
trial budget tries the unmeasured neighbours of the best config found. A proposal that was already
measured is answered from the study, not measured again; when TPE keeps proposing measured
points, an unmeasured one is taken at random so the trial budget is spent on new configs.
"""

from __future__ import annotations

import functools
import random
import warnings
from collections.abc import Sequence
from typing import Any

import optuna

from analyzer.config.modelconfig import Candidate
from analyzer.config.pipeline import AnyCandidate, JointCandidate
from analyzer.search.base import Search
from analyzer.search.stopping import Implausible, SpaceMeasured, StopRule, rules
from analyzer.search.study import TRIAL_CONSTRAINTS, constraint_of, set_budget_constraint

MAX_REPEATS = 25  # proposals of measured or invalid points before falling back to a random one


def spread_points(candidates: list[Any], base: Any) -> list[Any]:
    """Seeds of a search: one model's spread points, or a pipeline's (see joint_seeds), chosen
    by the type of point the space holds."""
    if not candidates:
        return single_seeds(candidates, base)
    return _seeds(candidates[0], candidates, base)


# The seeding rule is the point type's: dispatch on it, so a new kind of point registers its own.
@functools.singledispatch
def _seeds(first: object, candidates: list[Any], base: Any) -> list[Any]:
    return single_seeds(candidates, base)


@_seeds.register
def _(first: JointCandidate, candidates: list[Any], base: Any) -> list[Any]:
    return joint_seeds(candidates, base)


def joint_seeds(candidates: list[JointCandidate], base: JointCandidate | None) -> list[JointCandidate]:
    """A pipeline's seeds: the models as they are configured today (or the nearest point), then
    the space's middle. Far corners are not seeded: in a joint space of many knobs they are
    many, and the bottleneck step says where to go from a measured point (see
    OptunaSearch._bottleneck_move)."""
    axes = tuple(candidates[0].params())
    values = {
        key: sorted({c.params()[key] for c in candidates}, key=lambda v: (str(type(v)), v)) for key in axes
    }

    def position(c: JointCandidate) -> list[float]:
        p = c.params()
        return [values[k].index(p[k]) / max(1, len(values[k]) - 1) for k in axes]

    def closest(target: list[float]) -> JointCandidate:
        return min(
            candidates, key=lambda c: (sum((a - b) ** 2 for a, b in zip(position(c), target)), c.config_id)
        )

    if base is not None and base in candidates:
        start = base
    elif base is not None:
        want = base.params()
        start = closest(
            [
                values[k].index(want[k]) / max(1, len(values[k]) - 1) if want.get(k) in values[k] else 0.0
                for k in axes
            ]
        )
    else:
        start = closest([0.0] * len(axes))
    middle = closest([0.5] * len(axes))
    return [start] + ([middle] if middle != start else [])


def single_seeds(candidates: list[Candidate], base: Candidate | None) -> list[Candidate]:
    """Seeds: the base config (or its nearest candidate), the middle of the space, and the
    candidate farthest from the base: three corners of what the search may find."""
    counts = sorted({x.instance_count for x in candidates})
    sizes = sorted({x.max_batch_size for x in candidates})
    delays = sorted({x.max_queue_delay_us or 0 for x in candidates})

    def position(c: Candidate) -> tuple[float, float, float]:
        # Where a candidate sits along each knob, 0..1 over the values the space uses.
        def rank(values: list[int], v: int) -> float:
            return values.index(v) / max(1, len(values) - 1)

        return (
            rank(counts, c.instance_count),
            rank(sizes, c.max_batch_size),
            rank(delays, c.max_queue_delay_us or 0),
        )

    def distance(a: tuple[float, ...], b: tuple[float, ...]) -> float:
        return sum((x - y) ** 2 for x, y in zip(a, b))

    def nearest(target: Candidate) -> Candidate:
        clamp = Candidate(
            min(counts, key=lambda v: abs(v - target.instance_count)),
            target.max_batch_size,
            target.max_queue_delay_us,
            target.preferred_batch_size,
            target.instance_kind,
        )
        if clamp in candidates:
            return clamp
        size = min(sizes, key=lambda v: abs(v - target.max_batch_size))
        same = [
            c for c in candidates if c.instance_count == clamp.instance_count and c.max_batch_size == size
        ]
        pool = same or candidates
        return min(pool, key=lambda c: abs((c.max_queue_delay_us or 0) - (target.max_queue_delay_us or 0)))

    seeds: list[Candidate] = []
    start = (base if base in candidates else nearest(base)) if base is not None else None
    if start is not None:
        seeds.append(start)
    centre = (0.5, 0.5, 0.5)
    middle = min(candidates, key=lambda c: distance(position(c), centre))
    if middle not in seeds:
        seeds.append(middle)
    anchor = position(start) if start is not None else position(middle)
    far = max(candidates, key=lambda c: distance(position(c), anchor))
    if far not in seeds:
        seeds.append(far)
    return seeds


# The order in which the best config's neighbours are polished.
POLISH_ORDER = (
    "max_queue_delay_us",
    "max_batch_size",
    "instance_count",
    "preferred_batch_size",
    "instance_kind",
)


def auto_patience(candidates: list[Any]) -> int:
    """Trials without improvement before giving up, when the spec sets none: three per knob that
    varies (a knob's neighbours on both sides of the best, and one more), at least 4; a
    pipeline's knobs are every tuned model's. A backstop: the plausibility bound normally ends
    the search first."""
    varied = sum(1 for key in candidates[0].params() if len({c.params()[key] for c in candidates}) > 1)
    return max(4, 3 * varied)


def polish_order(axes: tuple[str, ...], bottleneck: str = "") -> list[str]:
    """The knobs in the order the best config's neighbours are tried: the bottleneck step's
    instances, then its batching, first (it is the step that limits the pipeline); then every
    model's knobs in POLISH_ORDER."""

    def knob(key: str) -> str:
        return key.rsplit(".", 1)[-1]

    first = (
        [f"{bottleneck}.{k}" for k in ("instance_count", "max_batch_size", "max_queue_delay_us")]
        if bottleneck
        else []
    )
    rest = sorted((k for k in axes if k not in first), key=lambda k: POLISH_ORDER.index(knob(k)))
    return [k for k in first if k in axes] + rest


class OptunaSearch(Search):
    """TPE (multivariate, constrained) with seeded starting points, that stops when no
    unmeasured config can plausibly beat the best (or after `patience` trials without
    improvement)."""

    strategy = "optuna"
    starts_at_base = True  # what runs today is the baseline to beat

    def __init__(self, **kwargs: object) -> None:
        self._seed_list: list[AnyCandidate] = []
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._rng = random.Random(self.seed)
        self._seed_list = [c for c in spread_points(self.candidates, self.base) if c not in self.outcomes]

    @classmethod
    def stop_rules(
        cls,
        candidates: Sequence[Any],
        objective: str = "throughput",
        *,
        max_trials: int | None = None,
        time_budget_s: float | None = None,
        patience: int | None = None,
    ) -> list[StopRule]:
        """Stop once every config is measured or none unmeasured can plausibly beat the best;
        patience, when the spec sets none, is automatic (auto_patience)."""
        return rules(
            objective,
            max_trials=max_trials,
            time_budget_s=time_budget_s,
            patience=auto_patience(list(candidates)) if patience is None else patience,
            space=[SpaceMeasured(), Implausible()],
        )

    def min_trials(self) -> int:
        """The seeds: the bound needs spread measurements before it can say anything."""
        return min(len(self.candidates), len(spread_points(self.candidates, self.base)))

    def _sampler(self) -> optuna.samplers.BaseSampler:
        n_seeds = len(spread_points(self.candidates, self.base))
        extra: dict[str, Any] = {} if TRIAL_CONSTRAINTS else {"constraints_func": constraint_of}
        with warnings.catch_warnings():
            # multivariate TPE is marked experimental; it is what lets the knobs interact.
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(
                seed=self.seed, n_startup_trials=n_seeds, multivariate=True, **extra
            )

    def _neighbour_of_best(self) -> AnyCandidate | None:
        """An unmeasured candidate one step from the best config so far along one knob, queue
        delay and batch size first: they move throughput the most without adding instances."""
        best = self.best_candidate()
        if best is None:
            return None
        order = polish_order(self.encoding.axes, self.outcomes[best].bottleneck)
        return next((c for c in self.neighbours(best, order) if self.unseen(c)), None)

    def _bottleneck_move(self) -> AnyCandidate | None:
        """Pipelines: the best config with one more step of instances (else of batching) for
        its bottleneck step, while such a step is unmeasured: bottleneck-guided moves come
        before TPE explores the joint space."""
        best = self.best_candidate()
        if best is None or not self.outcomes[best].bottleneck:
            return None
        name = self.outcomes[best].bottleneck
        here = self.encoding.encode(best)
        for knob in ("instance_count", "max_batch_size", "max_queue_delay_us"):
            key = f"{name}.{knob}"
            if key in here and here[key] + 1 < len(self.encoding.values[key]):
                other = self.encoding.decode({**here, key: here[key] + 1})
                if other in self.valid and self.unseen(other):
                    return other
        return None

    def _propose(self) -> tuple[AnyCandidate, optuna.trial.Trial | None] | None:
        while self._seed_list:
            cand = self._seed_list.pop(0)
            if self.unseen(cand):
                return cand, None
        move = self._bottleneck_move()
        if move is not None:
            return move, None
        allowed = self.plausible() if self.bounded else None
        if allowed is not None and self.busy:
            allowed = {c: b for c, b in allowed.items() if c not in self.busy}
        # Polish: after a trial that did not improve, or in the last third of a trial budget, the
        # best config's unmeasured neighbours are the likeliest improvements (and the stopping
        # rule wants them measured); right after an improvement TPE explores.
        polish = self.since_improvement() >= 1 or (
            self.max_trials is not None and self.max_trials - self.measured <= max(1, self.max_trials // 3)
        )
        if polish:
            # Any unmeasured neighbour, plausible or not: the stopping rule needs them all.
            neighbour = self._neighbour_of_best()
            if neighbour is not None:
                return neighbour, None
        for _ in range(MAX_REPEATS):
            trial = self.study.ask(self.dists)
            cand = self.encoding.decode(trial.params)
            if cand in self.valid and self.unseen(cand) and (allowed is None or cand in allowed):
                return cand, trial
            if cand in self.outcomes:
                self._answer_from_history(trial, cand)
            else:
                # An invalid combination, one that cannot plausibly beat the best, or (shared)
                # one another worker is measuring.
                self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
        if allowed:
            # TPE keeps proposing what is measured or hopeless: the most promising by the bound.
            return max(allowed.items(), key=lambda kv: (kv[1], kv[0].config_id))[0], None
        if allowed is not None:
            # Nothing far can win; the stopping rule still wants the best's neighbours measured.
            neighbour = self._neighbour_of_best()
            return (neighbour, None) if neighbour is not None else None
        unmeasured = [c for c in self.candidates if self.unseen(c)]
        return (self._rng.choice(unmeasured), None) if unmeasured else None

    def _answer_from_history(self, trial: optuna.trial.Trial, cand: AnyCandidate) -> None:
        outcome = self.outcomes[cand]
        trial.set_user_attr("duplicate_of", cand.config_id)
        set_budget_constraint(trial, -1.0 if outcome.feasible else 1.0)
        if outcome.failed:
            self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
        elif len(self.directions) == 1:
            self.study.tell(trial, outcome.capacity_rps)
        else:
            self.study.tell(trial, [outcome.capacity_rps, outcome.latency_ms])
