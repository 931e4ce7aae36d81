"""The model strategy: measure where a model of the server (analyzer.predict) is unsure.

It seeds with configs that make the model identifiable (the fewest and most instances, the
smallest and largest batches, the base config), then refits the model after every config and
measures the unmeasured config with the best chance of beating the best measured capacity,
given the prediction's interval (a log-normal around the prediction, its spread the model's
error). It stops when no unmeasured config's upper bound reaches the best measured capacity:
that replaces the plausibility bound of the other strategies, and says so in `stopped_reason`.
Each config's level search starts at its predicted capacity level (`start_hint`). A measured
capacity outside its predicted interval is said (`notes`), and the measurement is what counts.

One model at a time: a pipeline's or several models' joint space is refused (it needs a model
per step, which this strategy does not have yet).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import optuna

from analyzer.config.modelconfig import Candidate
from analyzer.config.pipeline import AnyCandidate
from analyzer.errors import UsageError
from analyzer.predict import Level, ServerModel, fit
from analyzer.search.base import Search
from analyzer.search.stopping import SearchState, SpaceMeasured, StopRule, rules
from analyzer.search.study import Outcome

MAX_LOAD = 1024.0  # the highest load predicted (the level search caps at the spec's own)
SEED_SHAPES = ((0.0, 0.0), (0.0, 1.0), (1.0, 0.5), (0.5, 1.0))  # (instances, batch) positions in [0, 1]


class Unbeatable:
    """Stop once the server model's upper bound of every unmeasured config is below the best
    measured capacity (after the seeds)."""

    def check(self, view: SearchState) -> str:
        """The reason once no unmeasured config can reach the best."""
        if not isinstance(view, ModelSearch) or view.model is None or view.measured < view.min_trials():
            return ""
        best = view.best_capacity()
        if best <= 0 or view.beatable():
            return ""
        return (
            f"no unmeasured config's upper bound reaches the best measured capacity ({best:.1f} req/s): "
            f"the server model, fitted on {view.model.levels} levels, predicts the other "
            f"{view.unmeasured_count()} below it"
        )

    def left(self, view: SearchState) -> int | None:
        """The configs whose upper bound still reaches the best."""
        if not isinstance(view, ModelSearch) or view.model is None:
            return None
        return len(view.beatable())


def identifying_seeds(candidates: Sequence[Candidate], base: Candidate | None) -> list[Candidate]:
    """The base config (or its nearest candidate), then configs at the corners and edges of
    (instances, batch size) that tell the fixed cost from the per-row cost and the instances'
    slowdown apart."""
    counts = sorted({c.instance_count for c in candidates})
    sizes = sorted({c.max_batch_size for c in candidates})

    def near(pos: tuple[float, float]) -> Candidate:
        want_k = counts[round(pos[0] * (len(counts) - 1))]
        want_b = sizes[round(pos[1] * (len(sizes) - 1))]
        # Among those, the one with the least queue delay (delays add latency, not information).
        return min(
            candidates,
            key=lambda c: (
                abs(c.instance_count - want_k),
                abs(c.max_batch_size - want_b),
                c.max_queue_delay_us if c.max_queue_delay_us is not None else 0,
                c.config_id,
            ),
        )

    out: list[Candidate] = []
    if base is not None:
        # Today's config, or the candidate nearest it (a delay the space lacks, say).
        out.append(
            min(
                candidates,
                key=lambda c: (
                    c != base,
                    abs(c.instance_count - base.instance_count),
                    abs(c.max_batch_size - base.max_batch_size),
                    c.max_queue_delay_us != base.max_queue_delay_us,
                    c.config_id,
                ),
            )
        )
    for pos in SEED_SHAPES:
        cand = near(pos)
        if cand not in out:
            out.append(cand)
    return out


class ModelSearch(Search):
    """Seeds that identify the server model, then the config most likely to beat the best."""

    strategy = "model"
    starts_at_base = True

    def __init__(self, **kwargs: Any) -> None:
        self.levels: list[Level] = []
        self.model: ServerModel | None = None
        self._notes: list[str] = []
        self._predicted: dict[AnyCandidate, tuple[float, float, float, float]] = {}
        super().__init__(**kwargs)
        singles = [c for c in self.candidates if isinstance(c, Candidate)]
        if len(singles) != len(self.candidates):
            raise UsageError(
                "strategy 'model' tunes one model; a pipeline's or several models' joint space needs "
                "a model per step, which it does not have yet",
                hint="use strategy: optuna for this sweep",
            )
        self.singles: list[Candidate] = singles
        base = self.base if isinstance(self.base, Candidate) else None
        self._seeds = [c for c in identifying_seeds(singles, base) if c not in self.outcomes]

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
        """Stop once every config is measured, or none unmeasured can reach the best by the
        model's upper bound; the spec's limits as for every strategy."""
        return rules(
            objective,
            max_trials=max_trials,
            time_budget_s=time_budget_s,
            patience=patience,
            space=[SpaceMeasured(), Unbeatable()],
        )

    def min_trials(self) -> int:
        """The seeds: the model needs them before its bound may stop the search."""
        base = self.base if isinstance(self.base, Candidate) else None
        return min(len(self.candidates), len(identifying_seeds(self.singles, base)))

    # -- the model ------------------------------------------------------------------------------
    def _refit(self) -> None:
        self.model = fit(self.levels)
        self._predicted = {}
        unmeasured = [c for c in self.singles if self.unseen(c)]
        if self.model is None or not unmeasured:
            return
        mode = self.levels[0].mode if self.levels else "concurrency"
        got = self.model.capacity(
            np.array([c.instance_count for c in unmeasured]),
            np.array([c.max_batch_size for c in unmeasured]),
            np.array([c.batching for c in unmeasured]),
            np.array([(c.max_queue_delay_us or 0) / 1000.0 for c in unmeasured]),
            mode,
            self.budget_ms,
            MAX_LOAD,
        )
        for i, cand in enumerate(unmeasured):
            self._predicted[cand] = (
                float(got["capacity_rps"][i]),
                float(got["low_rps"][i]),
                float(got["high_rps"][i]),
                float(got["level"][i]),
            )

    def prediction(self, cand: AnyCandidate) -> tuple[float, float, float, float] | None:
        """(capacity, low, high, level) the model predicts for an unmeasured config, or None."""
        return self._predicted.get(cand)

    def beatable(self) -> list[AnyCandidate]:
        """Unmeasured configs whose predicted upper bound reaches the best measured capacity."""
        best = self.best_capacity()
        return [c for c, (_, _, high, _) in self._predicted.items() if self.unseen(c) and high >= best]

    def _chance(self, cand: AnyCandidate, best: float) -> float:
        """P(capacity > best) under a log-normal around the prediction (spread from its interval)."""
        cap, low, high, _ = self._predicted[cand]
        if cap <= 0:
            return 0.0
        if best <= 0:
            return 1.0
        spread = max(math.log(max(high, 1e-9) / max(low, 1e-9)) / 4.0, 1e-6)  # the interval is +-2 sigma
        return 0.5 * math.erfc((math.log(best) - math.log(cap)) / (spread * math.sqrt(2.0)))

    # -- asking and telling ---------------------------------------------------------------------
    def _propose(self) -> tuple[AnyCandidate, optuna.trial.Trial | None] | None:
        while self._seeds:
            cand = self._seeds.pop(0)
            if self.unseen(cand) and cand not in self.busy:
                return cand, None
        if not self._predicted:
            self._refit()
        free = [c for c in self._predicted if self.unseen(c) and c not in self.busy]
        if free:
            best = self.best_capacity()
            return max(free, key=lambda c: (self._chance(c, best), self._predicted[c][0], c.config_id)), None
        rest = [c for c in self.candidates if self.unseen(c) and c not in self.busy]
        return (rest[0], None) if rest else None  # no model yet: the space in order

    def start_hint(self, cand: AnyCandidate) -> float | None:
        """The predicted capacity level (None before the model, or for a config it rules out)."""
        predicted = self._predicted.get(cand)
        if predicted is None or predicted[3] <= 0:
            return None
        return predicted[3]

    def tell(self, candidate: AnyCandidate, outcome: Outcome) -> None:
        """Record the outcome, check it against the prediction, and refit on its levels."""
        predicted = self._predicted.get(candidate)
        super().tell(candidate, outcome)
        if predicted is not None and not outcome.failed:
            cap, low, high, _ = predicted
            if not low <= outcome.capacity_rps <= high:
                self._notes.append(
                    f"the server model predicted {cap:.1f} req/s ({low:.1f}..{high:.1f}) for "
                    f"{candidate.config_id}, measured {outcome.capacity_rps:.1f}: the measurement "
                    "counts, and the model is refitted on it"
                )
        self.levels.extend(outcome.levels)
        self._refit()

    def model_summary(self) -> dict[str, Any] | None:
        """The fitted parameters, and the top unmeasured configs by prediction with intervals."""
        if self.model is None:
            return None
        top = sorted(self._predicted.items(), key=lambda kv: (-kv[1][0], kv[0].config_id))[:5]
        return {
            "parameters": self.model.params(),
            "top_unmeasured": [
                {
                    "config_id": cand.config_id,
                    "predicted_capacity_rps": cap,
                    "predicted_low_rps": low,
                    "predicted_high_rps": high,
                    "predicted_level": level,
                }
                for cand, (cap, low, high, level) in top
            ],
        }

    def notes(self) -> list[str]:
        """The configs the model got wrong since the last call."""
        out, self._notes = self._notes, []
        return out
