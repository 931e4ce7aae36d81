"""Several independent models on one server (`targets:`), measured together.

Pure: a total load level is split into each model's share; each model's measurement is judged
against its own budget; the level's combined measurement and verdict say whether every model
met its budget under the others' load. The runner runs the per-model measurements at once.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from analyzer.judge.verdict import Status, Verdict
from analyzer.stats.measurement import Measurement

# How a level's verdicts rank when they are combined: the first failing one in this order is
# the level's (a client-bound model's figures say nothing; errors are worse than latency).
_ORDER = (
    Status.CLIENT_BOUND,
    Status.ERRORS,
    Status.OVER_BUDGET,
    Status.UNSTABLE,
    Status.TOO_FEW_REQUESTS,
    Status.MEETS,
)


@dataclass(frozen=True)
class Target:
    """One model of a multi-model sweep: its share of each level and its own budget."""

    name: str
    share: float
    budget_ms: float


def split_level(level: float, mode: str, targets: list[Target]) -> dict[str, float]:
    """Each model's part of a total level, by share. Concurrency is whole requests, at least
    one per model (so the parts may add up to a little more than the level)."""
    total = sum(t.share for t in targets)
    parts = {t.name: level * t.share / total for t in targets}
    if mode == "concurrency":
        return {name: float(max(1, round(v))) for name, v in parts.items()}
    return parts


def combine(
    level: float,
    parts: Mapping[str, tuple[Measurement, Verdict]],
    targets: list[Target],
    ref_budget_ms: float,
    latency_field: str,
) -> tuple[Measurement, Verdict]:
    """The level's measurement and verdict from each model's.

    Throughput, requests and errors add up. The latency fields are those of the model nearest
    to (or furthest over) its own budget at `latency_field` (the budget percentile's column),
    scaled to `ref_budget_ms` (the sweep's), so the level search aims with one latency as for one
    model; every model's own figures are kept as 'target.<model>.<field>' columns. The level
    meets only if every model met its budget; it is decided once every model's verdict is (or one
    failed, decided)."""
    budgets = {t.name: t.budget_ms for t in targets}
    ref = ref_budget_ms

    def ratio(name: str) -> float:
        value = getattr(parts[name][0], latency_field)
        return value / budgets[name] if math.isfinite(value) else math.inf

    worst = max(parts, key=lambda n: (ratio(n), n))
    m0 = parts[worst][0]
    scale = ref / budgets[worst]
    latency = {
        f: getattr(m0, f) * scale
        for f in (
            "p50_ms",
            "p90_ms",
            "p95_ms",
            "p99_ms",
            "max_ms",
            "mean_ms",
            "p99_ci_low_ms",
            "p99_ci_high_ms",
            "budget_bound_ms",
            "over_bound_ms",
        )
    }
    ms = [m for m, _ in parts.values()]
    combined = dataclasses.replace(
        m0,
        load_level=level,
        throughput_rps=sum(m.throughput_rps for m in ms),
        offered_rps=sum(m.offered_rps for m in ms),
        requests=sum(m.requests for m in ms),
        errors=sum(m.errors for m in ms),
        error_kinds="; ".join(f"{n}: {parts[n][0].error_kinds}" for n in parts if parts[n][0].error_kinds),
        windows=max(m.windows for m in ms),
        stable=all(m.stable for m in ms),
        client_bound=any(m.client_bound for m in ms),
        client_bound_reason="; ".join(
            f"{n}: {parts[n][0].client_bound_reason}" for n in parts if parts[n][0].client_bound_reason
        ),
        server_requests=sum(m.server_requests for m in ms),
        extra={},
        **latency,
    )
    for name, (m, verdict) in parts.items():
        prefix = f"target.{name}."
        combined.extra.update(
            {
                prefix + "load_level": m.load_level,
                prefix + "throughput_rps": m.throughput_rps,
                prefix + "p50_ms": m.p50_ms,
                prefix + "p99_ms": m.p99_ms,
                prefix + "latency_ms": getattr(m, latency_field),  # the budget percentile's
                prefix + "budget_ms": budgets[name],
                prefix + "errors": float(m.errors),
                prefix + "meets": float(verdict.meets),
            }
        )
    verdicts = {name: v for name, (_, v) in parts.items()}
    failing = [(n, v) for n, v in verdicts.items() if not v.meets]
    if not failing:
        reason = "; ".join(f"{n}: {v.reason}" for n, v in verdicts.items())
        return combined, Verdict(
            True,
            Status.MEETS,
            f"every model met its budget ({reason})",
            all(v.decided for v in verdicts.values()),
        )
    failing.sort(key=lambda nv: _ORDER.index(nv[1].status) if nv[1].status in _ORDER else len(_ORDER))
    name, first = failing[0]
    decided = any(v.decided for _, v in failing)  # one proven failure decides the level
    return combined, Verdict(False, first.status, f"{name}: {first.reason}", decided)


class Coordinator:
    """Keeps the models of one level measuring until the level is decided: one model's proven
    failure decides it for all; a model that has proven it meets goes on (under load for the
    others) until every model has."""

    def __init__(self, names: list[str]) -> None:
        self.names = list(names)
        self.decided: dict[str, Verdict] = {}

    def wrap(self, name: str, verdict: Verdict) -> Verdict:
        """The verdict model `name`'s measurement stops on (decided) or goes on with."""
        if verdict.decided:
            self.decided[name] = verdict
        if any(not v.meets for v in self.decided.values()):
            return dataclasses.replace(verdict, decided=True)
        if verdict.decided and len(self.decided) < len(self.names):
            return dataclasses.replace(verdict, decided=False)
        return verdict


def target_figures(row: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """A measurement row's 'target.<model>.<field>' columns as {model: {field: value}}."""
    out: dict[str, dict[str, float]] = {}
    for key, value in row.items():
        key = str(key)
        if key.startswith("target.") and key.count(".") >= 2:
            name, field = key[7:].rsplit(".", 1)
            try:
                out.setdefault(name, {})[field] = float(value)
            except (TypeError, ValueError):
                out.setdefault(name, {})[field] = math.nan
    return out


def target_outcome(row: Mapping[str, object] | None) -> dict[str, dict[str, object]]:
    """summary.json's best.targets: each model's figures at the chosen config's capacity level
    (its measurement row there; None: no row, {}), against its own budget."""
    if row is None:
        return {}
    figures = target_figures(row)
    return {
        name: {
            "load_level": f.get("load_level"),
            "throughput_rps": f.get("throughput_rps"),
            "p50_ms": f.get("p50_ms"),
            "p99_ms": f.get("p99_ms"),
            "latency_ms": f.get("latency_ms"),
            "budget_ms": f.get("budget_ms"),
            "meets": bool(f.get("meets")),
        }
        for name, f in figures.items()
    }
