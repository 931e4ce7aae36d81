"""The answer, from plain tables: the best config under the budget, the Pareto frontier, and
the closest miss when nothing meets the budget. Pure functions over pandas DataFrames."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

# benchmarks/search_efficiency.py and tests/unit/test_dashboard.py import search_rows and
# confirmation_stats from here as well.
from analyzer.judge.confirm_stats import MIN_CONFIRM_ROUNDS, confirmation_stats, search_rows
from analyzer.schema import csv_true, percentile_field

# Capacities this close count as a tie: throughput measurements on a shared machine move by a
# few percent run to run, so "2 % more" is not a reason to pay for more instances.
TIE_TOLERANCE = 0.02


def with_budget_latency(configs: pd.DataFrame, measurements: pd.DataFrame, percentile: float) -> pd.DataFrame:
    """configs plus the budget percentile's latency from the search measurements: `latency_ms` at
    each config's capacity level (NaN where no level met the budget) and `closest_latency_ms`, the
    lowest at any level. configs.csv keeps only p50 and p99; measurements.csv has every percentile."""
    col = percentile_field(percentile)
    out = configs.copy()
    m = search_rows(measurements)
    if out.empty or m.empty or col not in m:
        out["latency_ms"] = math.nan
        out["closest_latency_ms"] = math.nan
        return out
    ids = m["config_id"].astype(str)
    latency = pd.to_numeric(m[col], errors="coerce")
    at_level = (
        pd.DataFrame({"id": ids, "level": pd.to_numeric(m["load_level"], errors="coerce"), "lat": latency})
        .drop_duplicates(["id", "level"], keep="last")
        .set_index(["id", "level"])["lat"]
    )
    levels = pd.to_numeric(out["capacity_level"], errors="coerce")
    out["latency_ms"] = [
        float(at_level.get((str(c), lv), math.nan)) for c, lv in zip(out["config_id"], levels)
    ]
    out["closest_latency_ms"] = out["config_id"].astype(str).map(latency.groupby(ids).min()).astype(float)
    return out


def outcome_latency(row: Any) -> float:
    """A `with_budget_latency` row's latency for the search: at the capacity level, else the
    lowest seen (what `search.study.Outcome.latency_ms` holds)."""
    at = float(row.get("latency_ms", math.nan))
    return at if math.isfinite(at) else float(row.get("closest_latency_ms", math.nan))


def best_config(configs: pd.DataFrame, tie_tolerance: float = TIE_TOLERANCE) -> pd.Series | None:
    """The config with the highest capacity under the budget; ties (within `tie_tolerance`)
    go to fewer instances, then lower budget-percentile latency (`latency_ms`, see
    `with_budget_latency`). None when no config has any capacity."""
    if configs.empty:
        return None
    ok = configs[
        configs["status"].isin(["ok", "pruned"])
        & (pd.to_numeric(configs["capacity_rps"], errors="coerce") > 0)
    ]
    if ok.empty:
        return None
    top = float(ok["capacity_rps"].max())
    tied = ok[ok["capacity_rps"] >= top * (1.0 - tie_tolerance)]
    ordered = tied.sort_values(
        ["instance_count", "latency_ms", "capacity_rps"], ascending=[True, True, False]
    )
    return ordered.iloc[0]


def cheapest_order(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows ordered cheapest first: fewest instances, then smallest max batch, then smallest
    queue delay (no dynamic batching counts as the smallest)."""
    key = frame.assign(
        _i=pd.to_numeric(frame["instance_count"], errors="coerce"),
        _b=pd.to_numeric(frame["max_batch_size"], errors="coerce"),
        _d=pd.to_numeric(frame["max_queue_delay_us"], errors="coerce").fillna(-1),
    )
    return key.sort_values(["_i", "_b", "_d", "config_id"]).drop(columns=["_i", "_b", "_d"])


def confirmed_choice(
    configs: pd.DataFrame, measurements: pd.DataFrame
) -> tuple[pd.Series, list[str], str] | None:
    """The pick of the confirmation round: (config row, tie set, why), or None without one.

    Only configs re-measured in at least MIN_CONFIRM_ROUNDS rounds whose level did not break the
    budget again in at least half of them count. The
    one with the highest mean capacity is the reference; every counted config whose 95 % interval
    overlaps the reference's is in the tie set (within noise of it); the cheapest of the tie set
    is chosen. Its row carries its confirmed capacity and interval.
    """
    stats = confirmation_stats(measurements)
    if stats.empty or configs.empty:
        return None
    counted = stats[
        (stats["rounds"] >= MIN_CONFIRM_ROUNDS)
        & (stats["met_rounds"] * 2 >= stats["rounds"])
        & (stats["capacity_rps"] > 0)
    ]
    if counted.empty:
        return None
    ref = counted.loc[counted["capacity_rps"].idxmax()]
    overlap = counted[
        (counted["ci_high_rps"] >= ref["ci_low_rps"]) & (counted["ci_low_rps"] <= ref["ci_high_rps"])
    ]
    known = configs.drop_duplicates("config_id", keep="last").set_index("config_id")
    tied = [c for c in overlap["config_id"] if c in known.index]
    if not tied:
        return None
    ordered = cheapest_order(known.loc[tied].reset_index())
    pick = ordered.iloc[0].copy()
    mine = counted.set_index("config_id").loc[pick["config_id"]]
    pick["confirmed_rps"] = float(mine["capacity_rps"])
    pick["capacity_ci_rps"] = [float(mine["ci_low_rps"]), float(mine["ci_high_rps"])]
    pick["confirm_rounds"] = int(mine["rounds"])
    tie_ids = ordered["config_id"].astype(str).tolist()
    if len(tie_ids) == 1:
        why = (
            f"{pick['config_id']} has the highest confirmed capacity "
            f"({mine['capacity_rps']:.1f} req/s, 95 % CI "
            f"{mine['ci_low_rps']:.1f}..{mine['ci_high_rps']:.1f}); no other config is within its noise"
        )
    elif pick["config_id"] == ref["config_id"]:
        why = (
            f"{pick['config_id']} has the highest confirmed capacity and is also the cheapest of the "
            f"{len(tie_ids)} configs within noise of each other ({', '.join(tie_ids)})"
        )
    else:
        why = (
            f"{len(tie_ids)} configs are within noise of the highest confirmed capacity ({ref['config_id']}, "
            f"{ref['capacity_rps']:.1f} req/s, 95 % CI {ref['ci_low_rps']:.1f}..{ref['ci_high_rps']:.1f}): "
            f"{', '.join(tie_ids)}; {pick['config_id']} is the cheapest of them (fewest instances, then "
            f"smallest max batch, then smallest queue delay)"
        )
    return pick, tie_ids, why


def closest_config(configs: pd.DataFrame) -> pd.Series | None:
    """The config whose lowest budget-percentile latency (`closest_latency_ms`, see
    `with_budget_latency`) came nearest the budget (for exit 3)."""
    if configs.empty:
        return None
    measured = configs[pd.to_numeric(configs["closest_latency_ms"], errors="coerce").notna()]
    if measured.empty:
        return None
    return measured.sort_values("closest_latency_ms").iloc[0]


def pareto_mask(
    throughput: npt.NDArray[np.float64], latency: npt.NDArray[np.float64]
) -> npt.NDArray[np.bool_]:
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


def pareto_frontier(measurements: pd.DataFrame, latency_col: str) -> pd.DataFrame:
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
    if key.endswith("max_queue_delay_us") and (
        value is None or (isinstance(value, float) and math.isnan(value))
    ):
        return None
    return jsonable(value)


def choice(
    configs: pd.DataFrame, measurements: pd.DataFrame, percentile: float
) -> tuple[pd.Series | None, list[str], str]:
    """The answer of a run: (best config row or None, tie set, why it was chosen). The row
    carries `latency_ms`, the budget percentile at its capacity level.

    After a confirmation round, its pick (see `confirmed_choice`); before one (a sweep still
    running, or confirm_top: 0), the highest search capacity with near-ties to fewer instances.
    """
    configs = with_budget_latency(configs, measurements, percentile)
    confirmed = confirmed_choice(configs, measurements)
    if confirmed is not None:
        return confirmed
    best = best_config(configs)
    if best is None:
        return None, [], ""
    return (
        best,
        [],
        (
            f"{best['config_id']} has the highest capacity found by the search (not confirmed by "
            "re-measurement, so no tie set)"
        ),
    )


def pipeline_models(row: Any) -> dict[str, dict[str, Any]]:
    """A pipeline config's per-model knobs from its configs.csv row ({} for one model)."""
    names = [str(k)[: -len(".instance_count")] for k in row.keys() if str(k).endswith(".instance_count")]
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        if pd.isna(row.get(f"{name}.instance_count")):
            continue
        out[name] = {
            knob: _knob(row, f"{name}.{knob}")
            for knob in ("instance_count", "max_batch_size", "max_queue_delay_us")
        }
    return out


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
    model_pbtxts: dict[str, str] | None = None,
) -> dict[str, Any]:
    """summary.json: the answer and how it was reached (README, "Sweeping a model")."""
    best, tie_set, why = choice(configs, measurements, percentile)
    col = percentile_field(percentile)
    frontier = pareto_frontier(search_rows(measurements), col)
    summary: dict[str, Any] = {
        "model": model,
        "budget_ms": budget_ms,
        "percentile": percentile,
        "strategy": strategy,
        "load_mode": load_mode,
        "wall_s": round(wall_s, 2),
        "finished": finished,
        "stopped_reason": stopped_reason,
        "configs_tried": len(configs),
        "configs_failed": int((configs["status"] == "failed").sum()) if not configs.empty else 0,
        "configs_pruned": int((configs["status"] == "pruned").sum()) if not configs.empty else 0,
        "measurements": len(measurements),
        # Levels the load generator could not offer (never capacity; see analyzer.load.selfcheck).
        "client_bound_levels": int(measurements["client_bound"].map(csv_true).sum())
        if "client_bound" in measurements and not measurements.empty
        else 0,
        "best": None,
        "tie_set": tie_set,
        "choice_reason": why,
        "closest": None,
        "pareto": [
            {
                "config_id": r["config_id"],
                "throughput_rps": r["throughput_rps"],
                "latency_ms": r[col],
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
            "confirmed_rps": best.get("confirmed_rps"),
            "capacity_ci_rps": best.get("capacity_ci_rps"),
            "capacity_lower_bound": csv_true(best.get("capacity_lower_bound")),
            "latency_ms": best["latency_ms"],  # the budget percentile's, at the capacity level
            "p99_ms": best["p99_ms"],
            "p50_ms": best["p50_ms"],
            "load_mode": best["load_mode"],
            "load_level": best["capacity_level"],
            "config_pbtxt": best_pbtxt,
        }
        models = pipeline_models(best)
        if models:
            # A pipeline: every tuned model's knobs, and where its config.pbtxt was written.
            for name, knobs in models.items():
                knobs["config_pbtxt"] = (model_pbtxts or {}).get(name)
            summary["best"]["models"] = models
            summary["best"]["bottleneck_step"] = best.get("bottleneck_step") or ""
    else:
        close = closest_config(with_budget_latency(configs, measurements, percentile))
        if close is not None:
            summary["closest"] = {
                "config_id": close["config_id"],
                "best_latency_ms": close["closest_latency_ms"],  # the budget percentile's
                "best_p99_ms": close["closest_p99_ms"],
                "budget_ms": budget_ms,
            }
    plain: dict[str, Any] = jsonable(summary)
    return plain
