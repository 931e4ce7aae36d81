"""The run's Optuna study as the searches use it: the outcome of a trial, its budget constraint,
and candidates encoded as Optuna parameters. Every strategy records its trials this way, so a
stopped sweep resumes from the study, and TPE sees the knobs as ordinals."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import optuna
from optuna.distributions import BaseDistribution, IntDistribution

from analyzer.config.modelconfig import Candidate
from analyzer.config.pipeline import JointCandidate
from analyzer.predict import Level

optuna.logging.set_verbosity(optuna.logging.WARNING)
# Heartbeats (fail_stale_trials) are marked experimental; shared studies rely on them. Optuna
# also warns that they are meant for Study.optimize: tritune drives ask/tell and its own
# heartbeat thread (analyzer.search.heartbeat).
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")

STUDY_NAME = "tritune"


@dataclass(frozen=True)
class Outcome:
    """What measuring one config gave the search."""

    capacity_rps: float  # throughput at the best level meeting the budget (0 if none did)
    latency_ms: float  # the budget percentile at that level, or the lowest seen when none met the budget
    failed: bool = False  # the server refused the config, or it broke
    error: str = ""
    bottleneck: str = ""  # pipelines: the busiest step at the capacity level ('' otherwise)
    # The config's measured levels, for strategies that model the server (analyzer.predict).
    levels: tuple[Level, ...] = ()

    @property
    def feasible(self) -> bool:
        """True when some load level met the budget."""
        return not self.failed and self.capacity_rps > 0


# Optuna 5 takes constraints on the trial (set_constraint); older versions through the sampler's
# constraints_func, which reads the value we keep in a user attribute.
TRIAL_CONSTRAINTS = hasattr(optuna.trial.Trial, "set_constraint")


def constraint_of(trial: optuna.trial.FrozenTrial) -> Sequence[float]:
    """Optuna constraints_func: <= 0 means the config met the budget at some load."""
    return (float(trial.user_attrs.get("constraint", 1.0)),)


def set_budget_constraint(trial: optuna.trial.Trial, value: float) -> None:
    """Record the budget constraint of a trial (<= 0: some load level met the budget)."""
    trial.set_user_attr("constraint", value)
    if TRIAL_CONSTRAINTS:
        trial.set_constraint("budget", value)


def open_study(
    storage_url: str | optuna.storages.BaseStorage,
    directions: Sequence[Literal["minimize", "maximize"]],
    sampler: optuna.samplers.BaseSampler | None = None,
    study_name: str = STUDY_NAME,
) -> optuna.Study:
    """Create or load the run's study (the run directory's SQLite, or a shared storage)."""
    return optuna.create_study(
        study_name=study_name,
        storage=storage_url,
        directions=list(directions),
        sampler=sampler,
        load_if_exists=True,
    )


class Encoding:
    """Candidates as Optuna parameters: each knob is the index of its value in the sorted list
    of values the space uses. Ordinal integers, not categories: TPE can then learn that "more
    batching helped" and try the neighbour, which a categorical distribution cannot express.

    The knobs are the candidates' own params(): one model's five knobs, or a pipeline's
    '<model>.<knob>' for every tuned model (analyzer.config.pipeline.JointCandidate)."""

    def __init__(self, candidates: Sequence[Candidate | JointCandidate]) -> None:
        self.axes: tuple[str, ...] = tuple(candidates[0].params())
        self.factory: Callable[[dict[str, Any]], Candidate | JointCandidate] = type(candidates[0]).from_params
        self.values = {
            key: sorted({c.params()[key] for c in candidates}, key=lambda v: (str(type(v)), v))
            for key in self.axes
        }
        self.distributions: dict[str, BaseDistribution] = {
            key: IntDistribution(0, len(vals) - 1) for key, vals in self.values.items()
        }

    def encode(self, cand: Candidate | JointCandidate) -> dict[str, int]:
        """Optuna params of a candidate."""
        params = cand.params()
        return {key: self.values[key].index(params[key]) for key in self.axes}

    def decode(self, params: dict[str, int]) -> Candidate | JointCandidate:
        """The candidate of Optuna params (which may be an invalid combination)."""
        return self.factory({key: self.values[key][int(params[key])] for key in self.axes})
