"""The workload protocol and its lanes (the models a load level is sent to)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from analyzer.config.modelconfig import Candidate, ModelConfig
from analyzer.config.pipeline import AnyCandidate
from analyzer.judge.verdict import Verdict
from analyzer.server.session import ModelInfo
from analyzer.stats.measurement import Measurement


@dataclass(frozen=True)
class Lane:
    """One model that load is sent to: what to send it, its part of each level (`share`), the
    budget its own measurement is judged against, the other models whose statistics its probe
    takes each level (a pipeline's steps), and the connections its load generator may open
    (None: the process's whole budget; several lanes split it)."""

    info: ModelInfo
    budget_ms: float
    share: float = 1.0
    steps: tuple[str, ...] = ()
    connections: int | None = None

    @property
    def name(self) -> str:
        """The model's name."""
        return self.info.name


class Workload(Protocol):
    """What is tuned. Everything the loop and the measurer do differently for one model, a
    pipeline or several models goes through these members."""

    model: str  # the model summary.json and the progress name
    base: ModelConfig  # the model under load's config before the sweep (a shared study records it)
    candidates: Sequence[AnyCandidate]  # the search space
    start: AnyCandidate | None  # the search's first point: today's config(s), when in the space
    lanes: tuple[Lane, ...]  # the models under load, each with its own load generator and probe
    steps: tuple[str, ...]  # models whose per-step statistics each measurement row carries
    unconfirmed: str  # why the confirmation round cannot run for this workload ('' : it can)

    def configs(self, cand: AnyCandidate) -> list[tuple[str, ModelConfig | None]]:
        """What loading a candidate means, in load order: (model, config; None = reload as is)."""
        ...

    def knobs(self, cand: AnyCandidate) -> Candidate:
        """The knobs a measurement row names for a candidate."""
        ...

    def step_instances(self, loaded: Sequence[tuple[str, ModelConfig | None]]) -> dict[str, int]:
        """Each step's instance count once `loaded` (configs(cand)) is on the server."""
        ...

    def split(self, level: float, mode: str) -> dict[str, float]:
        """Each lane's part of a total load level, by lane name."""
        ...

    def combine(
        self, level: float, measured: Mapping[str, tuple[Measurement, Verdict]], latency_field: str
    ) -> tuple[Measurement, Verdict]:
        """The level's measurement and verdict from each lane's (judged against its own budget)."""
        ...

    def best_extra(self, row: Mapping[str, Any] | None) -> dict[str, Any]:
        """What summary.json's best holds beyond the common keys, from the best config's
        measurement row at its capacity level."""
        ...
