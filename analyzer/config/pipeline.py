"""Pipelines: an ensemble, a BLS model or a plain model, tuned together with the models it uses.

Pure: model configs and per-model spaces in; the load order, the joint candidates (one config
per tuned model) and, from server statistics, the per-step breakdown and the bottleneck step
out. The runner does the I/O (loading configs, taking statistics).

The knobs of an ensemble belong to its composing models (the server refuses an instance group
on an ensemble), so an ensemble is never tuned itself: its steps are found from
`ensemble_scheduling`, nested ensembles included. A BLS model's callees cannot be discovered
from its config; the spec names them under `models:`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from analyzer.config.modelconfig import Candidate, ModelConfig
from analyzer.errors import UsageError

KNOB_AXES = (
    "instance_count",
    "max_batch_size",
    "max_queue_delay_us",
    "preferred_batch_size",
    "instance_kind",
)


@dataclass(frozen=True, order=True)
class JointCandidate:
    """One point of a pipeline's joint space: a config for each tuned model, in load order."""

    parts: tuple[tuple[str, Candidate], ...]

    @property
    def config_id(self) -> str:
        """A readable id, e.g. 'pre.i1_b8_d0+cls.i2_b32_d1000'."""
        return "+".join(f"{name}.{cand.config_id}" for name, cand in self.parts)

    @property
    def names(self) -> tuple[str, ...]:
        """The tuned models, in load order."""
        return tuple(name for name, _ in self.parts)

    def model(self, name: str) -> Candidate:
        """The candidate config of one tuned model."""
        return dict(self.parts)[name]

    @property
    def instance_count(self) -> int:
        """Instances of all tuned models together (what the pipeline costs)."""
        return sum(c.instance_count for _, c in self.parts)

    @property
    def batching(self) -> bool:
        """Whether any tuned model batches dynamically."""
        return any(c.max_batch_size > 1 and c.max_queue_delay_us is not None for _, c in self.parts)

    def params(self) -> dict[str, Any]:
        """Flat parameters, '<model>.<knob>' (Optuna's trial params; JSON-friendly)."""
        return {f"{name}.{key}": value for name, cand in self.parts for key, value in cand.params().items()}

    @staticmethod
    def from_params(params: Mapping[str, Any]) -> JointCandidate:
        """Inverse of params() (models in the order their keys first appear)."""
        grouped: dict[str, dict[str, Any]] = {}
        for key, value in params.items():
            name, knob = key.rsplit(".", 1)
            grouped.setdefault(name, {})[knob] = value
        return JointCandidate(tuple((name, Candidate.from_params(p)) for name, p in grouped.items()))

    def columns(self) -> dict[str, Any]:
        """The knob columns of a configs.csv row, as Candidate.columns(): instance_count is all
        tuned models' instances (what the pipeline costs), the other shared knobs blank, then
        the per-model columns ('<model>.<knob>', from_row reads them back)."""
        return {
            "instance_count": self.instance_count,
            "max_batch_size": math.nan,
            "max_queue_delay_us": math.nan,
            "preferred_batch_size": "",
            "instance_kind": "",
        } | self.row()

    def row(self) -> dict[str, Any]:
        """The per-model knob columns of a configs.csv row ('<model>.<knob>')."""
        return {f"{name}.{key}": value for name, cand in self.parts for key, value in cand.columns().items()}

    @staticmethod
    def from_row(row: Mapping[str, Any]) -> JointCandidate:
        """The candidate of a configs.csv row (inverse of row())."""
        names = [str(k)[: -len(".instance_count")] for k in row.keys() if str(k).endswith(".instance_count")]
        return JointCandidate(
            tuple(
                (name, Candidate.from_row({knob: row.get(f"{name}.{knob}") for knob in KNOB_AXES}))
                for name in names
            )
        )

    def summary(self) -> dict[str, dict[str, Any]]:
        """{model: {instance_count, max_batch_size, max_queue_delay_us}} (summary.json's best.models)."""
        return {
            name: {
                "instance_count": c.instance_count,
                "max_batch_size": c.max_batch_size,
                "max_queue_delay_us": c.max_queue_delay_us,
            }
            for name, c in self.parts
        }


# Either kind of search point: both have config_id, parts, instance_count, batching, params()
# and columns(), so code that handles candidates need not ask which kind it holds.
AnyCandidate = Candidate | JointCandidate


def candidate_from_row(row: Mapping[str, Any]) -> AnyCandidate:
    """The candidate of a configs.csv row: a pipeline's when it has per-model knob columns."""
    if any(str(k).endswith(".instance_count") for k in row.keys()):
        return JointCandidate.from_row(row)
    return Candidate.from_row(row)


@dataclass(frozen=True)
class PipelineTarget:
    """What a pipeline sweep works on: the model under load, every model it needs in load
    order (top last), their configs as they were, the tuned ones, and the steps whose
    statistics each level records (all but the top)."""

    top: str
    order: list[str]
    bases: dict[str, ModelConfig]
    tuned: list[str]
    steps: list[str]


def is_ensemble(config: ModelConfig) -> bool:
    """Whether a config is an ensemble's."""
    return bool(config.platform == "ensemble" or config.HasField("ensemble_scheduling"))


def ensemble_steps(config: ModelConfig) -> list[str]:
    """The models an ensemble's steps call, in step order, each once."""
    return list(dict.fromkeys(step.model_name for step in config.ensemble_scheduling.step))


def load_order(top: str, configs: Mapping[str, ModelConfig], named: Iterable[str]) -> list[str]:
    """Every model the pipeline needs, dependencies first, `top` last.

    `configs` holds the configs known so far (the ensembles' steps are followed through them,
    nested ensembles included); `named` adds the models the spec names that no ensemble reaches
    (a BLS model's callees): they load before `top`, in the order given.
    """
    order: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in order:
            return
        if name in visiting:
            raise UsageError(f"ensemble {name!r} contains itself (a cycle in ensemble_scheduling)")
        visiting.add(name)
        config = configs.get(name)
        if config is not None and is_ensemble(config):
            for step in ensemble_steps(config):
                visit(step)
        visiting.discard(name)
        order.append(name)

    visit(top)  # the ensemble's steps in step order (ids read in pipeline order), top last
    order.remove(top)
    for name in named:  # then the rest the spec names (a BLS model's callees), before top
        if name != top:
            visit(name)
    return [*order, top]


def reachable(top: str, configs: Mapping[str, ModelConfig]) -> list[str]:
    """The models an ensemble reaches through its steps (nested ensembles followed), top excluded."""
    return [name for name in load_order(top, configs, ()) if name != top]


def batch_floors(configs: Mapping[str, ModelConfig]) -> dict[str, tuple[int, str]]:
    """The least max_batch_size each ensemble step may have, with the ensemble that asks for
    it: the server refuses an ensemble whose steps batch less than it does."""
    floors: dict[str, tuple[int, str]] = {}
    for name, config in configs.items():
        if is_ensemble(config) and config.max_batch_size > 0:
            for step in ensemble_steps(config):
                if config.max_batch_size > floors.get(step, (0, ""))[0]:
                    floors[step] = (int(config.max_batch_size), name)
    return floors


def joint_candidates(per_model: Mapping[str, list[Candidate]], order: list[str]) -> list[JointCandidate]:
    """The product of the tuned models' candidate lists, each point's parts in load order."""
    names = [n for n in order if n in per_model]
    return [
        JointCandidate(tuple(zip(names, combo)))
        for combo in itertools.product(*(per_model[n] for n in names))
    ]


STEP_FIELDS = ("queue_ms", "compute_ms", "batch", "per_request", "busy_pct", "instances")


@dataclass(frozen=True)
class StepStat:
    """What one model of a pipeline did over a measured span (from the server's statistics)."""

    name: str
    inferences: int  # requests this model served (batched requests count one each)
    executions: int
    queue_ms: float  # average wait in this model's queue, per request
    compute_ms: float  # average time of one execution (input + infer + output)
    batch: float  # achieved batch size: inferences / executions
    per_request: float  # this model's inferences per request sent to the pipeline
    busy_pct: float  # how much of the span its instances were executing, % of all of them
    instances: int

    def as_extra(self) -> dict[str, float]:
        """Flat measurement columns: 'step.<name>.<field>'."""
        prefix = f"step.{self.name}."
        return {
            prefix + "queue_ms": self.queue_ms,
            prefix + "compute_ms": self.compute_ms,
            prefix + "batch": self.batch,
            prefix + "per_request": self.per_request,
            prefix + "busy_pct": self.busy_pct,
            prefix + "instances": float(self.instances),
        }


def _count_ns(entry: Mapping[str, Any] | None) -> tuple[int, int]:
    entry = entry or {}
    return int(entry.get("count", 0) or 0), int(entry.get("ns", 0) or 0)


def _busy_ns(stats: Mapping[str, Any]) -> int:
    """Cumulative execution time: batch_stats count executions, not requests."""
    total = 0
    for batch in stats.get("batch_stats", []) or []:
        for stage in ("compute_input", "compute_infer", "compute_output"):
            total += _count_ns(batch.get(stage))[1]
    return total


def step_stat(
    name: str,
    before: Mapping[str, Any],
    after: Mapping[str, Any],
    *,
    requests: int,
    span_s: float,
    instances: int,
) -> StepStat:
    """One model's figures between two statistics snapshots. `requests`: requests the pipeline
    served in the span (its top model's), `instances`: the model's instance count."""
    inf = int(after.get("inference_count", 0) or 0) - int(before.get("inference_count", 0) or 0)
    exe = int(after.get("execution_count", 0) or 0) - int(before.get("execution_count", 0) or 0)
    qc1, qn1 = _count_ns(after.get("inference_stats", {}).get("queue"))
    qc0, qn0 = _count_ns(before.get("inference_stats", {}).get("queue"))
    busy = _busy_ns(after) - _busy_ns(before)
    return StepStat(
        name=name,
        inferences=inf,
        executions=exe,
        queue_ms=(qn1 - qn0) / (qc1 - qc0) / 1e6 if qc1 > qc0 else math.nan,
        compute_ms=busy / exe / 1e6 if exe > 0 else math.nan,
        batch=inf / exe if exe > 0 else math.nan,
        per_request=exe / requests if requests > 0 else math.nan,
        busy_pct=100.0 * busy / 1e9 / span_s / max(1, instances) if span_s > 0 else math.nan,
        instances=instances,
    )


def bottleneck(steps: Iterable[StepStat]) -> str:
    """The step whose instances were busiest ('' when none executed): the one that saturates
    first as load grows, so more instances or more batching there buys the most."""
    busy = [(s.busy_pct, s.name) for s in steps if math.isfinite(s.busy_pct) and s.executions > 0]
    return max(busy)[1] if busy else ""


def steps_from_row(row: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A measurement row's per-step columns back as [{name, queue_ms, ...}] (for reports)."""
    out: dict[str, dict[str, Any]] = {}
    for key, value in row.items():
        key = str(key)
        if key.startswith("step.") and key.count(".") >= 2:
            name, field = key[5:].rsplit(".", 1)
            out.setdefault(name, {"name": name})[field] = value
    return list(out.values())
