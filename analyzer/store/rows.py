"""The rows of a run's two tables, built from plain values: a measurements.csv row per measured
level (`measurement_row`, `level_row`) and a configs.csv row per finished config (`config_row`).

Pure: no file is touched here. RunStore (analyzer.store.rundir) appends the rows and owns the column
lists; `tritune profile` prints measurement rows in the same shape.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from typing import Any

from analyzer.config.modelconfig import Candidate
from analyzer.config.pipeline import STEP_FIELDS, AnyCandidate
from analyzer.judge.levelsearch import CapacityResult
from analyzer.judge.verdict import Verdict
from analyzer.stats.measurement import Measurement
from analyzer.store.rundir import MEASUREMENT_COLUMNS


def measurement_row(
    config_id: str, knobs: Candidate, m: Measurement, meets_budget: bool | None
) -> dict[str, Any]:
    """One measurements.csv row: the config's knobs, the measurement and the budget verdict."""
    row: dict[str, Any] = {
        "config_id": config_id,
        "instance_count": knobs.instance_count,
        "max_batch_size": knobs.max_batch_size,
        "max_queue_delay_us": knobs.max_queue_delay_us if knobs.max_queue_delay_us is not None else math.nan,
        "meets_budget": meets_budget,
    }
    row.update(m.row())
    return {col: row.get(col) for col in MEASUREMENT_COLUMNS} | {
        k: v for k, v in row.items() if k not in MEASUREMENT_COLUMNS
    }


def level_row(
    config_id: str,
    knobs: Candidate,
    m: Measurement,
    verdict: Verdict,
    phase: str,
    round_: int | None = None,
    steps: Iterable[str] = (),
) -> dict[str, Any]:
    """A sweep's measurements.csv row for one level: the measurement, its verdict, the phase
    (search | confirm) and the confirmation round. A pipeline's `steps` each get their columns
    (NaN where the level has no figure), so that the first row's header holds them all; they are
    added to `m.extra`, as the progress callbacks see the measurement after it is stored."""
    for name in steps:
        for column in STEP_FIELDS:
            m.extra.setdefault(f"step.{name}.{column}", math.nan)
    row = measurement_row(config_id, knobs, m, verdict.meets)
    row["verdict"] = verdict.status
    row["verdict_reason"] = verdict.reason
    row["verdict_proven"] = verdict.decided
    row["phase"] = phase
    row["confirm_round"] = round_ if round_ is not None else math.nan
    return row


def knob_columns(cand: AnyCandidate) -> dict[str, Any]:
    """A config's knob columns (a pipeline's are per model, see JointCandidate.columns)."""
    return cand.columns()


def config_row(
    cand: AnyCandidate,
    result: CapacityResult | None,
    *,
    status: str,
    error: str,
    mode: str,
    trial: int,
    wall_s: float,
    percentile: float,
    predicted: tuple[float, float, float] | None = None,
) -> dict[str, Any]:
    """One configs.csv row; `predicted`: the server model's (capacity, low, high) for it."""
    at = result.at_capacity() if result else None
    closest = result.closest(percentile) if result else None
    knobs = knob_columns(cand)
    per_model = {k: v for k, v in knobs.items() if "." in k}
    return {
        "config_id": cand.config_id,
        **{k: v for k, v in knobs.items() if "." not in k},
        "status": status,
        "error": error,
        "capacity_rps": result.capacity_rps if result else 0.0,
        "capacity_level": result.level if result and result.level is not None else math.nan,
        "capacity_lower_bound": bool(result and result.lower_bound),
        "p99_ms": at.p99_ms if at else math.nan,
        "p50_ms": at.p50_ms if at else math.nan,
        "meets_budget": bool(result and result.capacity_rps > 0),
        "closest_p99_ms": closest.p99_ms if closest else math.nan,
        "levels_measured": len(result.measurements) if result else 0,
        "load_mode": mode,
        "trial": trial,
        "wall_s": round(wall_s, 2),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "bottleneck_step": at.bottleneck_step if at else "",
        "predicted_capacity_rps": predicted[0] if predicted else math.nan,
        "predicted_low_rps": predicted[1] if predicted else math.nan,
        "predicted_high_rps": predicted[2] if predicted else math.nan,
        **per_model,
    }
