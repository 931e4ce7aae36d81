"""The answer, from plain tables: the best config under the budget, the Pareto frontier, and
the closest miss when nothing meets the budget. Pure functions over pandas DataFrames."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

# Capacities this close count as a tie: throughput measurements on a shared machine move by a
# few percent run to run, so "2 % more" is not a reason to pay for more instances.
TIE_TOLERANCE = 0.02


def best_config(configs: pd.DataFrame, tie_tolerance: float = TIE_TOLERANCE) -> pd.Series | None:
    """The config with the highest capacity under the budget; ties (within `tie_tolerance`)
    go to fewer instances, then lower p99. None when no config has any capacity."""
    if configs.empty:
        return None
    ok = configs[configs["status"].isin(["ok", "pruned"]) & (pd.to_numeric(configs["capacity_rps"], errors="coerce") > 0)]
    if ok.empty:
        return None
    top = float(ok["capacity_rps"].max())
    tied = ok[ok["capacity_rps"] >= top * (1.0 - tie_tolerance)]
    ordered = tied.sort_values(["instance_count", "p99_ms", "capacity_rps"], ascending=[True, True, False])
    return ordered.iloc[0]


def closest_config(configs: pd.DataFrame) -> pd.Series | None:
    """The config whose lowest measured tail latency came nearest the budget (for exit 3)."""
    if configs.empty or "closest_p99_ms" not in configs:
        return None
    measured = configs[pd.to_numeric(configs["closest_p99_ms"], errors="coerce").notna()]
    if measured.empty:
        return None
    return measured.sort_values("closest_p99_ms").iloc[0]


def pareto_mask(throughput: np.ndarray, latency: np.ndarray) -> np.ndarray:
    """Points not dominated by another (more throughput and no more latency, or less latency
    and no less throughput)."""
    n = len(throughput)
    keep = np.ones(n, dtype=bool)
    order = np.lexsort((latency, -throughput))  # by throughput desc, then latency asc
    best_latency = math.inf
    for i in order:
        if not (np.isfinite(throughput[i]) and np.isfinite(latency[i])):
            keep[i] = False
            continue
        if latency[i] < best_latency:
            best_latency = latency[i]
        else:
            keep[i] = False
    return keep


def pareto_frontier(measurements: pd.DataFrame, latency_col: str = "p99_ms") -> pd.DataFrame:
    """Measurements on the throughput / latency frontier (error-free ones), by throughput."""
    if measurements.empty:
        return measurements.copy()
    clean = measurements[pd.to_numeric(measurements["errors"], errors="coerce").fillna(1) == 0]
    if clean.empty:
        return clean.copy()
    mask = pareto_mask(clean["throughput_rps"].to_numpy(float), clean[latency_col].to_numpy(float))
    return clean[mask].sort_values("throughput_rps")


def jsonable(value: Any) -> Any:
    """Plain JSON values: NaN -> None, numpy scalars -> Python numbers, recursively."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _knob(row: pd.Series, key: str) -> Any:
    value = row.get(key)
    if key == "max_queue_delay_us" and (value is None or (isinstance(value, float) and math.isnan(value))):
        return None
    return jsonable(value)


def build_summary(
    *,
    model: str,
    budget_ms: float,
    percentile: float,
    strategy: str,
    load_mode: str,
    wall_s: float,
    configs: pd.DataFrame,
    measurements: pd.DataFrame,
    best_pbtxt: str | None,
    finished: bool,
    stopped_reason: str = "",
) -> dict[str, Any]:
    """summary.json: the answer and how it was reached (see DESIGN.md)."""
    best = best_config(configs)
    frontier = pareto_frontier(measurements)
    summary: dict[str, Any] = {
        "model": model,
        "budget_ms": budget_ms,
        "percentile": percentile,
        "strategy": strategy,
        "load_mode": load_mode,
        "wall_s": round(wall_s, 2),
        "finished": finished,
        "stopped_reason": stopped_reason,
        "configs_tried": int(len(configs)),
        "configs_failed": int((configs["status"] == "failed").sum()) if not configs.empty else 0,
        "configs_pruned": int((configs["status"] == "pruned").sum()) if not configs.empty else 0,
        "measurements": int(len(measurements)),
        "best": None,
        "closest": None,
        "pareto": [
            {
                "config_id": r["config_id"],
                "throughput_rps": r["throughput_rps"],
                "p99_ms": r["p99_ms"],
                "load_mode": r["load_mode"],
                "load_level": r["load_level"],
            }
            for _, r in frontier.iterrows()
        ],
    }
    if best is not None:
        summary["best"] = {
            "config_id": best["config_id"],
            "instance_count": _knob(best, "instance_count"),
            "max_batch_size": _knob(best, "max_batch_size"),
            "max_queue_delay_us": _knob(best, "max_queue_delay_us"),
            "preferred_batch_size": _knob(best, "preferred_batch_size"),
            "instance_kind": _knob(best, "instance_kind"),
            "throughput_rps": best["capacity_rps"],
            "p99_ms": best["p99_ms"],
            "p50_ms": best["p50_ms"],
            "load_mode": best["load_mode"],
            "load_level": best["capacity_level"],
            "config_pbtxt": best_pbtxt,
        }
    else:
        close = closest_config(configs)
        if close is not None:
            summary["closest"] = {
                "config_id": close["config_id"],
                "best_p99_ms": close["closest_p99_ms"],
                "budget_ms": budget_ms,
            }
    return jsonable(summary)
