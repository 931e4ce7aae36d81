"""The three workloads: one model, a pipeline (an ensemble or BLS model with the models it
uses), and several independent models on one server (`targets:`). Pure: configs and
measurements in, configs to load, level splits and combined verdicts out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from analyzer.config.modelconfig import Candidate, ModelConfig, apply_candidate, knobs_of
from analyzer.config.pipeline import AnyCandidate, PipelineTarget
from analyzer.judge.targets import Target, combine, split_level, target_outcome
from analyzer.judge.verdict import Verdict
from analyzer.stats.measurement import Measurement
from analyzer.workload.base import Lane


class _OneLane:
    """A workload whose load goes to one model: the level is that model's, and so is its verdict."""

    lanes: tuple[Lane, ...]

    def split(self, level: float, mode: str) -> dict[str, float]:
        """The whole level to the one lane."""
        return {self.lanes[0].name: level}

    def combine(
        self, level: float, measured: Mapping[str, tuple[Measurement, Verdict]], latency_field: str
    ) -> tuple[Measurement, Verdict]:
        """The one lane's measurement and verdict, as they are."""
        return measured[self.lanes[0].name]

    def best_extra(self, row: Mapping[str, Any] | None) -> dict[str, Any]:
        """Nothing beyond the common keys."""
        return {}


def _joint_configs(
    cand: AnyCandidate, bases: Mapping[str, ModelConfig], top: str
) -> list[tuple[str, ModelConfig | None]]:
    """A joint point's configs, one per tuned model in its order, then `top` reloaded as it is
    (an ensemble or BLS model then runs on the models just loaded; '' for none)."""
    out: list[tuple[str, ModelConfig | None]] = []
    names = [name for name, _ in cand.parts]
    for name, part in cand.parts:
        config = apply_candidate(bases[name], part)
        config.name = name
        out.append((name, config))
    if top and top not in names:
        out.append((top, None))
    return out


@dataclass
class OneModel(_OneLane):
    """One model, tuned on its own."""

    lane: Lane
    base: ModelConfig
    candidates: Sequence[AnyCandidate]
    start: AnyCandidate | None
    steps: tuple[str, ...] = ()
    unconfirmed: str = ""

    def __post_init__(self) -> None:
        self.model = self.lane.name
        self.lanes = (self.lane,)

    def configs(self, cand: AnyCandidate) -> list[tuple[str, ModelConfig | None]]:
        """The model's base config with the candidate's knobs."""
        return [(self.model, apply_candidate(self.base, cand.parts[0][1]))]

    def knobs(self, cand: AnyCandidate) -> Candidate:
        """The applied config's knobs (the candidate's, as the config says them)."""
        return knobs_of(apply_candidate(self.base, cand.parts[0][1]))

    def step_instances(self, loaded: Sequence[tuple[str, ModelConfig | None]]) -> dict[str, int]:
        """No steps."""
        return {}


@dataclass
class Pipeline(_OneLane):
    """An ensemble or BLS model under load, tuned through the models it uses (analyzer.config.pipeline)."""

    lane: Lane
    base: ModelConfig
    target: PipelineTarget
    candidates: Sequence[AnyCandidate]
    start: AnyCandidate | None
    unconfirmed: str = ""

    def __post_init__(self) -> None:
        self.model = self.lane.name
        self.lanes = (self.lane,)
        self.steps = tuple(self.target.steps)

    def configs(self, cand: AnyCandidate) -> list[tuple[str, ModelConfig | None]]:
        """Each tuned model's config, dependencies first, the top model last."""
        return _joint_configs(cand, self.target.bases, self.target.top)

    def knobs(self, cand: AnyCandidate) -> Candidate:
        """All tuned models' instances (what the pipeline costs); its per-model knobs are in configs.csv."""
        return Candidate(cand.instance_count, 0, None)

    def step_instances(self, loaded: Sequence[tuple[str, ModelConfig | None]]) -> dict[str, int]:
        """Each step's instances: the loaded configs', else its base config's."""
        counts = {n: knobs_of(self.target.bases[n]).instance_count for n in self.target.steps}
        return counts | {
            name: knobs_of(config).instance_count for name, config in loaded if config is not None
        }


@dataclass
class SeveralModels:
    """Several independent models on one server, measured together: each takes its share of a
    level and is judged against its own budget; a level meets when every model meets
    (analyzer.judge.targets)."""

    model: str
    base: ModelConfig  # the spec's model's (empty: no one model is under load)
    targets: list[Target]
    lanes: tuple[Lane, ...]
    bases: dict[str, ModelConfig]
    candidates: Sequence[AnyCandidate]
    start: AnyCandidate | None
    budget_ms: float  # the sweep's: the combined measurement's latency is scaled to it
    steps: tuple[str, ...] = ()
    unconfirmed: str = "no confirmation round for several models yet: the pick is the search's"

    def configs(self, cand: AnyCandidate) -> list[tuple[str, ModelConfig | None]]:
        """Each model's config."""
        return _joint_configs(cand, self.bases, "")

    def knobs(self, cand: AnyCandidate) -> Candidate:
        """All models' instances together; each model's knobs are in configs.csv."""
        return Candidate(cand.instance_count, 0, None)

    def step_instances(self, loaded: Sequence[tuple[str, ModelConfig | None]]) -> dict[str, int]:
        """No steps: each model's own statistics are its lane's."""
        return {}

    def split(self, level: float, mode: str) -> dict[str, float]:
        """Each model's share of the level."""
        return split_level(level, mode, self.targets)

    def combine(
        self, level: float, measured: Mapping[str, tuple[Measurement, Verdict]], latency_field: str
    ) -> tuple[Measurement, Verdict]:
        """The level meets only when every model met its own budget (judge.targets.combine)."""
        return combine(level, measured, self.targets, self.budget_ms, latency_field)

    def best_extra(self, row: Mapping[str, Any] | None) -> dict[str, Any]:
        """Each model's figures at the best config's capacity level, against its own budget."""
        return {"targets": target_outcome(row)}
