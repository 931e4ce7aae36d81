"""Figures and the static HTML report of a run directory.

Each figure is computed first as plain figure data (dicts and DataFrames: testable without
drawing, shared with the Dash app), then drawn with Plotly. Works on a run directory that is
still being written: whatever rows exist are shown.

Every level is judged by `capacity.row_verdict` at the run's percentile and confidence, and the
latency drawn is that percentile's. Search rows feed capacities and curves; the confirmation
round's rows have a figure of their own; at the sweep's budget the answer is `choose.choice`'s.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import yaml
from plotly.subplots import make_subplots

from analyzer.capacity import PERCENTILE_FIELDS, row_verdict
from analyzer.choose import best_config, choice, confirm_rows, confirmation_stats, pareto_mask, pipeline_models, search_rows
from analyzer.errors import UsageError
from analyzer.load.selfcheck import FIX
from analyzer.measure import level_text
from analyzer.modelconfig import knobs_of, parse_pbtxt
from analyzer.pipeline import steps_from_row
from analyzer.targets import target_figures
from analyzer.space import Candidate
from analyzer.store import CONFIG_COLUMNS, MEASUREMENT_COLUMNS, RunStore, csv_true

SYMBOLS = ["circle", "square", "diamond", "triangle-up", "cross", "x", "triangle-down", "pentagon", "hexagon", "star-square"]
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]


@dataclass
class RunData:
    """What a report needs from a run directory."""

    dir: Path
    model: str
    budget_ms: float
    percentile: float
    confidence: float
    strategy: str
    measurements: pd.DataFrame
    configs: pd.DataFrame
    summary: dict[str, Any] | None
    best_pbtxt: str | None


def load_run(run_dir: str | Path) -> RunData:
    """Read a run directory (complete or still being written); UsageError when it is not one."""
    store = RunStore.open_readonly(run_dir)
    try:
        spec = yaml.safe_load(store.path("spec").read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise UsageError(f"{store.path('spec')} is unreadable: {exc}") from None
    if not isinstance(spec, dict) or "model" not in spec:
        raise UsageError(f"{store.path('spec')} is not a tritune spec (no 'model')")
    measurements = store.measurements()
    configs = store.configs()
    for frame, columns in ((measurements, MEASUREMENT_COLUMNS), (configs, CONFIG_COLUMNS)):
        for col in columns:
            if col not in frame.columns:
                frame[col] = np.nan
    pbtxt_path = store.dir / "best" / str(spec["model"]) / "config.pbtxt"
    return RunData(
        dir=store.dir,
        model=str(spec["model"]),
        budget_ms=float(spec.get("budget_ms", 100.0)),
        percentile=float(spec.get("percentile", 99.0)),
        confidence=float(spec.get("confidence", 0.99)),
        strategy=str(spec.get("strategy", "")),
        measurements=measurements,
        configs=configs,
        summary=store.read_summary(),
        best_pbtxt=pbtxt_path.read_text() if pbtxt_path.is_file() else None,
    )


# -- rows and columns ---------------------------------------------------------------------------------

def latency_column(percentile: float) -> str:
    """The measurements.csv column of the budget percentile: the one `capacity.row_verdict`
    judges (p99_ms for a percentile without a column of its own)."""
    return PERCENTILE_FIELDS.get(int(percentile), "p99_ms")


def latency_label(percentile: float) -> str:
    """How the budget percentile's latency is labelled ("p95"). Named after the column shown, so
    a label never claims a percentile whose values are not the ones drawn."""
    return latency_column(percentile).removesuffix("_ms")


def _num(value: Any) -> float:
    """A number, or NaN for blanks, text and None."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _finite(value: Any) -> bool:
    return math.isfinite(_num(value))


# -- the answer ---------------------------------------------------------------------------------------

def level_meets(measurements: pd.DataFrame, budget_ms: float, percentile: float = 99.0,
                confidence: float = 0.99) -> pd.Series:
    """Which measurements meet a (possibly new) budget: `capacity.row_verdict` on every row, the
    rule the sweep judged its levels by, at the run's percentile and confidence. At the sweep's
    budget this agrees with the stored verdicts; at another budget the rows' stored claim bounds
    decide (rows older than those columns: row_verdict's fallback)."""
    if measurements.empty:
        return pd.Series(dtype=bool)
    meets = [row_verdict(row, budget_ms, percentile, confidence).meets for row in measurements.to_dict("records")]
    return pd.Series(meets, index=measurements.index, dtype=bool)


def capacity_under_budget(measurements: pd.DataFrame, budget_ms: float, percentile: float = 99.0,
                          confidence: float = 0.99) -> pd.DataFrame:
    """Per config: the highest throughput of a search level meeting `budget_ms` (0 when none
    does), with that level, its budget-percentile latency (`latency_ms`) and its p99 (the sweep's
    tie-breaker). Lets the budget be moved after the sweep."""
    cols = ["config_id", "capacity_rps", "capacity_level", "latency_ms", "p99_ms"]
    m = search_rows(measurements)
    if m.empty:
        return pd.DataFrame(columns=cols)
    meets = level_meets(m, budget_ms, percentile, confidence)
    col = latency_column(percentile)
    rows = []
    for config_id, group in m.groupby("config_id", sort=False):
        ok = group[meets.loc[group.index]]
        if ok.empty:
            rows.append((config_id, 0.0, math.nan, math.nan, math.nan))
            continue
        top = ok.loc[pd.to_numeric(ok["throughput_rps"], errors="coerce").idxmax()]
        rows.append((config_id, float(top["throughput_rps"]), float(top["load_level"]), _num(top.get(col)),
                     _num(top.get("p99_ms"))))
    return pd.DataFrame(rows, columns=cols)


def choose_at_budget(measurements: pd.DataFrame, configs: pd.DataFrame, budget_ms: float, percentile: float = 99.0,
                     confidence: float = 0.99) -> pd.Series | None:
    """The best config if the budget were `budget_ms`: the sweep's search-only rule
    (`choose.best_config`) over the search capacities under that budget. A capacity stays a
    lower bound only where it is still at the level that met the sweep's budget at the load cap
    (a tighter budget finds a lower level, which is a measured capacity)."""
    caps = capacity_under_budget(measurements, budget_ms, percentile, confidence)
    if caps.empty:
        return None
    knobs = (configs.drop_duplicates("config_id", keep="last")
             .drop(columns=["capacity_rps", "p99_ms"], errors="ignore")
             .rename(columns={"capacity_level": "_sweep_level"}))
    merged = caps.merge(knobs, on="config_id", how="left")
    merged["status"] = merged["status"].fillna("ok").replace({"failed": "ok"})
    at_cap = merged["capacity_lower_bound"].apply(csv_true) if "capacity_lower_bound" in merged else False
    sweep_level = pd.to_numeric(merged["_sweep_level"], errors="coerce") if "_sweep_level" in merged else math.nan
    merged["capacity_lower_bound"] = at_cap & (merged["capacity_level"] == sweep_level)
    return best_config(merged.drop(columns="_sweep_level", errors="ignore"))


@dataclass
class Answer:
    """The chosen config at one budget, and why.

    At the sweep's own budget it is the sweep's choice (`choose.choice`: the confirmation round's
    pick where there was one), so the report, the dashboard and summary.json agree; at another
    budget it is the best search capacity under that budget (`choose_at_budget`).
    """

    budget_ms: float
    at_sweep_budget: bool
    best: pd.Series | None  # a configs row plus latency_ms (+ confirmed_rps, capacity_ci_rps, confirm_rounds)
    tie_set: list[str]  # the confirmation round's tie set: it is always the one at the sweep's budget
    reason: str

    @property
    def confirmed(self) -> bool:
        """True when the chosen capacity is the confirmation round's mean."""
        return self.best is not None and _finite(self.best.get("confirmed_rps"))


def is_sweep_budget(run: RunData, budget_ms: float) -> bool:
    """True when `budget_ms` is the sweep's own budget (a slider value equal up to rounding)."""
    return math.isclose(float(budget_ms), run.budget_ms, rel_tol=1e-9, abs_tol=1e-6)


def _with_latency(row: pd.Series, measurements: pd.DataFrame, percentile: float) -> pd.Series:
    """`row` plus `latency_ms`, the budget percentile at its capacity level (configs.csv only
    keeps p50 and p99 there)."""
    out = row.copy()
    col = latency_column(percentile)
    m = search_rows(measurements)
    at = m.iloc[0:0]
    if not m.empty:
        at = m[(m["config_id"].astype(str) == str(row["config_id"]))
               & (pd.to_numeric(m["load_level"], errors="coerce") == _num(row.get("capacity_level")))]
    out["latency_ms"] = _num(at[col].iloc[-1]) if not at.empty and col in at else _num(row.get(col))
    return out


def answer_at(run: RunData, budget_ms: float | None = None, measurements: pd.DataFrame | None = None,
              configs: pd.DataFrame | None = None) -> Answer:
    """The answer at `budget_ms` (default: the sweep's) over the run's tables, or over the given
    (filtered) ones."""
    m = run.measurements if measurements is None else measurements
    c = run.configs if configs is None else configs
    budget = run.budget_ms if budget_ms is None else float(budget_ms)
    best, tie_set, reason = choice(c, m)
    if is_sweep_budget(run, budget):
        return Answer(budget, True, None if best is None else _with_latency(best, m, run.percentile), tie_set, reason)
    pick = choose_at_budget(m, c, budget, run.percentile, run.confidence)
    reason = "" if pick is None else (
        f"{pick['config_id']} has the highest capacity among the search's levels whose "
        f"{latency_label(run.percentile)} meets {budget:g} ms (the confirmation round ran at the sweep's budget only)")
    return Answer(budget, False, pick, tie_set, reason)


def fmt_rps(value: float) -> str:
    """A throughput for people: thousands separated, decimals only where they matter."""
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.1f}"


def capacity_text(row: pd.Series) -> str:
    """A config's capacity: "3,120 req/s (95 % CI 2,980..3,260, 3 rounds)" when confirmed, with
    "≥ " when it met the budget at the load cap (so it is only a lower bound)."""
    sign = "≥ " if csv_true(row.get("capacity_lower_bound")) else ""
    confirmed = _num(row.get("confirmed_rps"))
    if not math.isfinite(confirmed):
        return f"{sign}{fmt_rps(_num(row.get('capacity_rps')))} req/s"
    rounds = int(_num(row.get("confirm_rounds"))) if _finite(row.get("confirm_rounds")) else 0
    ci = row.get("capacity_ci_rps")
    low, high = (_num(ci[0]), _num(ci[1])) if isinstance(ci, (list, tuple)) and len(ci) == 2 else (math.nan, math.nan)
    plural = "s" if rounds != 1 else ""
    if math.isfinite(low) and math.isfinite(high):
        return f"{sign}{fmt_rps(confirmed)} req/s (95 % CI {fmt_rps(low)}..{fmt_rps(high)}, {rounds} round{plural})"
    return f"{sign}{fmt_rps(confirmed)} req/s ({rounds} round{plural}: too few for an interval)"


def tie_set_sentence(tie_set: list[str], chosen: str | None) -> str:
    """What the tie set means, for the answer (plain text; the ids are listed separately)."""
    if not tie_set:
        return ("No confirmation round (yet): the pick rests on one search measurement per level, so there "
                "is no tie set.")
    if len(tie_set) == 1:
        return "No other confirmed config is within noise of its capacity."
    return (f"These {len(tie_set)} configs are within noise of each other (their 95 % intervals overlap the "
            f"best one's), so the pick is the cheapest of them: {chosen} (fewest instances, then smallest max "
            "batch, then smallest queue delay).")


# -- figure data (pure) ------------------------------------------------------------------------------

def _int_or_none(value: Any) -> int | None:
    return None if value is None or pd.isna(value) or value == "" else int(float(value))


def _describe(row: pd.Series) -> str:
    if _int_or_none(row.get("max_batch_size")) is None:  # a pipeline: its knobs are in its id
        return f"{row['config_id']}<br>instances {int(row['instance_count'])} (all tuned models)"
    delay = row.get("max_queue_delay_us")
    delay_text = "-" if delay is None or (isinstance(delay, float) and math.isnan(delay)) else f"{int(delay)} us"
    return (f"{row['config_id']}<br>instances {int(row['instance_count'])}, max batch {int(row['max_batch_size'])}, "
            f"queue delay {delay_text}")


def pareto_data(measurements: pd.DataFrame, budget_ms: float, chosen: tuple[str, float] | None = None,
                percentile: float = 99.0) -> dict[str, Any]:
    """Pareto chart data: every error-free search measurement (throughput vs the budget
    percentile's latency, with its config; a measurement whose windows never agreed is marked
    untrusted), the frontier of the trusted ones, the budget, the latency's label and the chosen
    (config_id, load level) point."""
    m = search_rows(measurements)
    if not m.empty:
        m = m[pd.to_numeric(m["errors"], errors="coerce").fillna(1) == 0]
    col, label = latency_column(percentile), latency_label(percentile)
    points = []
    for _, r in m.iterrows():
        latency = _num(r.get(col))
        points.append({
            "config_id": r["config_id"],
            "throughput_rps": float(r["throughput_rps"]),
            "latency_ms": latency,
            "instance_count": int(r["instance_count"]),
            "max_batch_size": _int_or_none(r["max_batch_size"]),  # None: a pipeline's (per model)
            "max_queue_delay_us": _int_or_none(r["max_queue_delay_us"]),
            "load_mode": r["load_mode"],
            "load_level": float(r["load_level"]),
            # Unstable windows: shown, but neither on the frontier nor ever chosen. A level whose
            # verdict was proven (over the budget after one window, say) is trusted all the same,
            # unless the load generator could not offer it (its figures are the client's).
            "trusted": (csv_true(r.get("stable")) or csv_true(r.get("verdict_proven")))
            and not csv_true(r.get("client_bound")),
            "hover": f"{_describe(r)}<br>{level_text(r['load_mode'], r['load_level'])}: "
                     f"{float(r['throughput_rps']):.1f} req/s, {label} {latency:.2f} ms",
        })
    frontier: list[tuple[float, float]] = []
    trusted = [p for p in points if p["trusted"]]
    if trusted:
        tp = np.array([p["throughput_rps"] for p in trusted])
        lat = np.array([p["latency_ms"] for p in trusted])
        keep = pareto_mask(tp, lat)
        frontier = sorted((float(x), float(y)) for x, y, k in zip(tp, lat, keep) if k)
    chosen_point = None
    if chosen is not None:
        for p in points:
            if p["config_id"] == chosen[0] and p["load_level"] == chosen[1]:
                chosen_point = p
    return {"points": points, "frontier": frontier, "budget_ms": budget_ms, "label": label, "chosen": chosen_point}


def load_curves_data(measurements: pd.DataFrame, config_ids: list[str] | None = None,
                     percentile: float = 99.0) -> dict[str, dict[str, list[float]]]:
    """Per config: the search's load levels with throughput and the budget percentile's latency
    at each (the curve behind each point)."""
    out: dict[str, dict[str, list[float]]] = {}
    m = search_rows(measurements)
    if m.empty:
        return out
    col = latency_column(percentile)
    for config_id, g in m.groupby("config_id", sort=False):
        if config_ids is not None and config_id not in config_ids:
            continue
        g = g.sort_values("load_level")
        out[str(config_id)] = {
            "level": g["load_level"].astype(float).tolist(),
            "throughput_rps": g["throughput_rps"].astype(float).tolist(),
            "latency_ms": pd.to_numeric(g[col], errors="coerce").astype(float).tolist(),
        }
    return out


def breakdown_data(measurements: pd.DataFrame, configs: pd.DataFrame) -> pd.DataFrame:
    """Server-side time per request (queue, compute input/infer/output) and achieved batch size,
    per config at its capacity level (else its highest measured level), from the search."""
    cols = ["config_id", "load_level", "server_queue_ms", "server_compute_input_ms", "server_compute_infer_ms",
            "server_compute_output_ms", "avg_batch_size"]
    rows = []
    m = search_rows(measurements)
    if m.empty:
        return pd.DataFrame(columns=cols)
    cap_level = {} if configs.empty else dict(zip(configs["config_id"], configs["capacity_level"]))
    for config_id, g in m.groupby("config_id", sort=False):
        level = cap_level.get(config_id)
        pick = g[g["load_level"] == level] if level is not None and not pd.isna(level) else g.iloc[0:0]
        row = pick.iloc[-1] if not pick.empty else g.loc[g["load_level"].idxmax()]
        rows.append([row.get(c) for c in cols])
    frame = pd.DataFrame(rows, columns=cols)
    for c in cols[1:]:
        frame[c] = pd.to_numeric(frame[c], errors="coerce")
    return frame


def heatmap_data(configs: pd.DataFrame) -> dict[int, dict[str, Any]]:
    """Per instance count: capacity over max_batch_size (rows) x queue delay (columns); NaN
    where a config was not measured or failed; `lower_bound` marks capacities that met the
    budget at the load cap."""
    out: dict[int, dict[str, Any]] = {}
    if configs.empty or pd.to_numeric(configs["max_batch_size"], errors="coerce").isna().all():
        return out  # nothing measured, or a pipeline (its knobs are per model: see the steps table)
    c = configs.copy()
    c["delay"] = c["max_queue_delay_us"].apply(lambda v: "off" if pd.isna(v) else str(int(v)))
    c["cap"] = pd.to_numeric(c["capacity_rps"], errors="coerce").where(c["status"] != "failed")
    c["lower"] = c["capacity_lower_bound"].apply(csv_true) if "capacity_lower_bound" in c else False
    batches = sorted(c["max_batch_size"].astype(int).unique())
    delays = sorted(c["delay"].unique(), key=lambda d: -1 if d == "off" else int(d))
    for count, g in c.groupby(c["instance_count"].astype(int)):
        z = [[math.nan] * len(delays) for _ in batches]
        lower = [[False] * len(delays) for _ in batches]
        for _, r in g.iterrows():
            i, j = batches.index(int(r["max_batch_size"])), delays.index(r["delay"])
            z[i][j] = float(r["cap"]) if not pd.isna(r["cap"]) else math.nan
            lower[i][j] = bool(r["lower"])
        out[int(count)] = {"max_batch_size": batches, "max_queue_delay_us": delays, "capacity_rps": z,
                           "lower_bound": lower}
    return out


def resources_data(measurements: pd.DataFrame) -> dict[str, list[float]]:
    """Server CPU, memory and GPU use against throughput, from the search (GPU lists empty where
    never measured)."""
    m = search_rows(measurements)
    if m.empty:
        return {k: [] for k in ("throughput_rps", "server_cpu_pct", "server_rss_mb", "gpu_util_pct", "gpu_mem_mb", "config_id")}
    m = m.sort_values("throughput_rps")
    gpu = pd.to_numeric(m["gpu_util_pct"], errors="coerce")
    has_gpu = gpu.notna().any()
    return {
        "config_id": m["config_id"].astype(str).tolist(),
        "throughput_rps": m["throughput_rps"].astype(float).tolist(),
        "server_cpu_pct": pd.to_numeric(m["server_cpu_pct"], errors="coerce").tolist(),
        "server_rss_mb": pd.to_numeric(m["server_rss_mb"], errors="coerce").tolist(),
        "gpu_util_pct": gpu.tolist() if has_gpu else [],
        "gpu_mem_mb": pd.to_numeric(m["gpu_mem_mb"], errors="coerce").tolist() if has_gpu else [],
    }


def confirmation_data(measurements: pd.DataFrame, configs: pd.DataFrame, tie_set: list[str],
                      chosen: str | None = None) -> dict[str, Any]:
    """Confirmation figure data: per re-measured config (highest mean first) its round samples
    (throughput at its capacity level, the round, whether the level met the budget again), their
    mean and 95 % interval (`choose.confirmation_stats`), its search capacity, whether it is in
    the tie set, chosen, or a lower bound. `reference` is the tie set's highest mean: the tie set
    is the configs whose interval overlaps the reference's."""
    stats = confirmation_stats(measurements)
    rows = confirm_rows(measurements)
    known = configs.drop_duplicates("config_id", keep="last").set_index("config_id") if not configs.empty else None
    items = []
    for _, s in stats.sort_values("capacity_rps", ascending=False).iterrows():
        config_id = str(s["config_id"])
        g = rows[rows["config_id"].astype(str) == config_id]
        rounds = pd.to_numeric(g["confirm_round"], errors="coerce") if "confirm_round" in g else pd.Series(dtype=float)
        if rounds.isna().any() or len(rounds) != len(g):
            rounds = pd.Series(range(1, len(g) + 1), index=g.index)  # rows without a round number: in order
        known_row = known.loc[config_id] if known is not None and config_id in known.index else None
        items.append({
            "config_id": config_id,
            "samples": pd.to_numeric(g["throughput_rps"], errors="coerce").astype(float).tolist(),
            "rounds": [int(r) for r in rounds],
            # The stored verdict, as confirmation_stats counts it: the figure shows what the choice saw.
            "met": [csv_true(v) for v in g["meets_budget"]] if "meets_budget" in g else [False] * len(g),
            "mean_rps": float(s["capacity_rps"]),
            "ci_low_rps": float(s["ci_low_rps"]),
            "ci_high_rps": float(s["ci_high_rps"]),
            "search_rps": math.nan if known_row is None else _num(known_row.get("capacity_rps")),
            "lower_bound": known_row is not None and csv_true(known_row.get("capacity_lower_bound")),
            "in_tie_set": config_id in tie_set,
            "chosen": config_id == chosen,
        })
    tied = [it for it in items if it["in_tie_set"]]
    return {"configs": items, "reference": tied[0]["config_id"] if tied else None, "tie_set": list(tie_set)}


def replicas_needed(target_rps: float, capacity_rps: float) -> int:
    """Servers (each running the chosen config) needed to serve target_rps within the budget."""
    if capacity_rps <= 0:
        raise ValueError("the config has no capacity under the budget")
    if target_rps <= 0:
        return 0
    return math.ceil(target_rps / capacity_rps - 1e-9)


def cost_per_million(target_rps: float, replicas: int, price_per_server_hour: float) -> float:
    """Cost of a million inferences when `replicas` servers at `price_per_server_hour` serve
    `target_rps` around the clock."""
    if target_rps <= 0:
        return math.nan
    return replicas * price_per_server_hour / (target_rps * 3600.0) * 1e6


# -- drawing --------------------------------------------------------------------------------------------

def log_ticks(low: float, high: float) -> list[float]:
    """Tick values for a log axis from `low` to `high`: 1-2-5 steps, or every digit where that
    gives fewer than four (Plotly's own ticks on a short log range are bare digits, "5" for 50)."""
    if not (low > 0 and high >= low):
        return []
    decades = range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1)
    for digits in ((1, 2, 5), tuple(range(1, 10))):
        ticks = [d * 10.0 ** k for k in decades for d in digits if low <= d * 10.0 ** k <= high]
        if len(ticks) >= 4:
            return ticks
    return ticks


def pareto_figure(data: dict[str, Any], title: str | None = None) -> go.Figure:
    """Every measurement; colour = instance count, symbol = max batch size; budget line,
    frontier and the chosen config. The y axis is the budget percentile's latency."""
    label = data.get("label", "p99")
    title = title or f"Throughput vs {label} latency"
    fig = go.Figure()
    points = data["points"]
    counts = sorted({p["instance_count"] for p in points})
    batches = sorted({p["max_batch_size"] for p in points})
    for count in counts:
        for batch in batches:
            sel = [p for p in points if p["instance_count"] == count and p["max_batch_size"] == batch]
            if not sel:
                continue
            symbol = SYMBOLS[batches.index(batch) % len(SYMBOLS)]
            fig.add_trace(go.Scatter(
                x=[p["throughput_rps"] for p in sel], y=[p["latency_ms"] for p in sel], mode="markers",
                name=f"{count} inst, batch {batch}",
                marker=dict(color=PALETTE[counts.index(count) % len(PALETTE)],
                            symbol=[symbol if p["trusted"] else f"{symbol}-open" for p in sel],
                            size=10, line=dict(width=1.5)),
                text=[p["hover"] + ("" if p["trusted"] else "<br>(windows did not agree, nothing proven: not counted)") for p in sel],
                hovertemplate="%{text}<extra></extra>",
                customdata=[[p["config_id"], p["load_level"]] for p in sel],
            ))
    if data["frontier"]:
        xs, ys = zip(*data["frontier"])
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name="Pareto frontier",
                                 line=dict(color="black", dash="dot", width=1.5), hoverinfo="skip"))
    # The budget as a line trace, not a shape: shapes on a log axis take log10 coordinates.
    xs_all = [p["throughput_rps"] for p in points] or [0.0, 1.0]
    fig.add_trace(go.Scatter(x=[min(xs_all) * 0.95, max(xs_all) * 1.05], y=[data["budget_ms"]] * 2, mode="lines",
                             name=f"budget {label} {data['budget_ms']:g} ms", line=dict(color="crimson", dash="dash"),
                             hoverinfo="skip"))
    if data["chosen"]:
        c = data["chosen"]
        fig.add_trace(go.Scatter(x=[c["throughput_rps"]], y=[c["latency_ms"]], mode="markers", name=f"chosen: {c['config_id']}",
                                 marker=dict(symbol="star", size=22, color="gold", line=dict(color="black", width=1.5)),
                                 text=[c["hover"]], hovertemplate="%{text}<extra>chosen</extra>"))
    if any(not p["trusted"] for p in points):
        title += " (hollow: windows never agreed and nothing was proven, not counted)"
    fig.update_layout(title=title, xaxis_title="throughput (req/s)", yaxis_title=f"{label} latency (ms)",
                      yaxis_type="log", legend=dict(font=dict(size=10)), margin=dict(t=50, l=60, r=20, b=50),
                      clickmode="event")
    ys = [p["latency_ms"] for p in points if p["latency_ms"] > 0] + [data["budget_ms"]]
    ticks = log_ticks(min(ys) / 1.1, max(ys) * 1.1)
    if ticks:
        fig.update_yaxes(tickvals=ticks, ticktext=[f"{t:g}" for t in ticks])
    return fig


def load_curves_figure(data: dict[str, dict[str, list[float]]], mode: str = "concurrency", budget_ms: float | None = None,
                       label: str = "p99") -> go.Figure:
    """Throughput and the budget percentile's latency (`label`) against load level, one line per config."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("throughput", f"{label} latency"))
    for i, (config_id, d) in enumerate(data.items()):
        color = PALETTE[i % len(PALETTE)]
        fig.add_trace(go.Scatter(x=d["level"], y=d["throughput_rps"], mode="lines+markers", name=config_id,
                                 legendgroup=config_id, line=dict(color=color)), row=1, col=1)
        fig.add_trace(go.Scatter(x=d["level"], y=d["latency_ms"], mode="lines+markers", name=config_id,
                                 legendgroup=config_id, showlegend=False, line=dict(color=color),
                                 hovertemplate=f"{config_id}: {label} %{{y:.2f}} ms at {mode} %{{x:g}}<extra></extra>"),
                      row=1, col=2)
    if budget_ms is not None:
        fig.add_hline(y=budget_ms, line=dict(color="crimson", dash="dash"), row=1, col=2)
    fig.update_xaxes(title_text=mode, type="log")
    fig.update_yaxes(title_text="req/s", row=1, col=1)
    fig.update_yaxes(title_text=f"{label} ms", row=1, col=2)
    fig.update_layout(title="Load curves", margin=dict(t=60, l=60, r=20, b=50))
    return fig
def breakdown_figure(data: pd.DataFrame) -> go.Figure:
    """Server-side time per request, stacked by stage, with the achieved batch size."""
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    stages = [("server_queue_ms", "queue"), ("server_compute_input_ms", "compute input"),
              ("server_compute_infer_ms", "compute infer"), ("server_compute_output_ms", "compute output")]
    for col, label in stages:
        fig.add_trace(go.Bar(x=data["config_id"], y=data[col], name=label), secondary_y=False)
    fig.add_trace(go.Scatter(x=data["config_id"], y=data["avg_batch_size"], name="avg batch size", mode="markers",
                             marker=dict(symbol="diamond", size=11, color="black")), secondary_y=True)
    fig.update_layout(barmode="stack", title="Server-side time per request (at capacity) and achieved batch size",
                      margin=dict(t=60, l=60, r=60, b=90))
    fig.update_yaxes(title_text="ms per request", rangemode="tozero", secondary_y=False)
    fig.update_yaxes(title_text="avg batch size", rangemode="tozero", secondary_y=True)
    return fig


def heatmap_figure(data: dict[int, dict[str, Any]]) -> go.Figure:
    """Capacity over (max_batch_size x queue delay), one panel per instance count."""
    counts = sorted(data)
    fig = make_subplots(rows=1, cols=max(1, len(counts)), subplot_titles=[f"{c} instance{'s' if c > 1 else ''}" for c in counts])
    vmax = max((v for d in data.values() for row in d["capacity_rps"] for v in row if not math.isnan(v)), default=1.0)
    for i, count in enumerate(counts, start=1):
        d = data[count]
        lower = d.get("lower_bound") or [[False] * len(row) for row in d["capacity_rps"]]
        text = [[("" if math.isnan(v) else f"{'≥' if low else ''}{v:.0f}") for v, low in zip(row, lows)]
                for row, lows in zip(d["capacity_rps"], lower)]
        fig.add_trace(go.Heatmap(
            z=d["capacity_rps"], x=[str(x) for x in d["max_queue_delay_us"]], y=[str(y) for y in d["max_batch_size"]],
            zmin=0, zmax=vmax, colorscale="Viridis", showscale=(i == len(counts)), text=text, texttemplate="%{text}",
            hovertemplate="max batch %{y}, delay %{x} us: %{z:.1f} req/s<extra></extra>",
            colorbar=dict(title="req/s"),
        ), row=1, col=i)
        fig.update_xaxes(title_text="queue delay (us)", type="category", row=1, col=i)
        fig.update_yaxes(title_text="max batch size" if i == 1 else None, type="category", row=1, col=i)
    fig.update_layout(title="Capacity under the budget (≥: met it at the load cap, a lower bound)", margin=dict(t=70, l=60, r=20, b=50))
    return fig


def resources_figure(data: dict[str, list[float]]) -> go.Figure:
    """Server CPU and memory (and GPU where measured) against throughput."""
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(go.Scatter(x=data["throughput_rps"], y=data["server_cpu_pct"], mode="markers", name="server CPU %",
                             text=data["config_id"], hovertemplate="%{text}: %{y:.0f} % at %{x:.0f} req/s<extra></extra>"))
    fig.add_trace(go.Scatter(x=data["throughput_rps"], y=data["server_rss_mb"], mode="markers", name="server memory MB",
                             marker=dict(symbol="square"), text=data["config_id"],
                             hovertemplate="%{text}: %{y:.0f} MB<extra></extra>"), secondary_y=True)
    if data["gpu_util_pct"]:
        fig.add_trace(go.Scatter(x=data["throughput_rps"], y=data["gpu_util_pct"], mode="markers", name="GPU %"))
    fig.update_layout(title="Resource use against throughput" + ("" if data["gpu_util_pct"] else " (no GPU measured)"),
                      xaxis_title="throughput (req/s)", margin=dict(t=60, l=60, r=60, b=50))
    fig.update_yaxes(title_text="CPU % (100 = one core)", secondary_y=False)
    fig.update_yaxes(title_text="MB", secondary_y=True)
    return fig


TIE_COLOR, OTHER_COLOR = "#2ca02c", "#7f7f7f"


def _error_bars(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Asymmetric error bars from each mean to its interval's ends (none where the interval is
    unknown: a single round has no spread to estimate)."""
    up = [it["ci_high_rps"] - it["mean_rps"] if math.isfinite(it["ci_high_rps"]) else 0.0 for it in items]
    down = [it["mean_rps"] - it["ci_low_rps"] if math.isfinite(it["ci_low_rps"]) else 0.0 for it in items]
    return dict(type="data", symmetric=False, array=up, arrayminus=down, thickness=2, width=10)


def confirmation_figure(data: dict[str, Any]) -> go.Figure:
    """Per confirmed config: its round samples (left, hollow where the level missed the budget),
    the mean with its 95 % interval (right; green for the tie set), the search's capacity (x),
    the reference's interval as a band (overlapping it = within noise) and the chosen config."""
    fig = go.Figure()
    items = data["configs"]
    if not items:
        fig.add_annotation(text="No confirmation round in this run (an older run, confirm_top: 0, or a sweep still "
                                "searching)", showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5)
        fig.update_layout(title="Confirmation round", height=200, xaxis_visible=False, yaxis_visible=False,
                          margin=dict(t=50, l=20, r=20, b=20))
        return fig
    ref = next((it for it in items if it["config_id"] == data["reference"]), None)
    if ref is not None and math.isfinite(ref["ci_low_rps"]) and math.isfinite(ref["ci_high_rps"]):
        fig.add_hrect(y0=ref["ci_low_rps"], y1=ref["ci_high_rps"], fillcolor=TIE_COLOR, opacity=0.12, line_width=0,
                      annotation_text=f"95 % CI of {ref['config_id']}", annotation_position="top left")
    for met in (True, False):
        pts = [(i - 0.15, v, it["config_id"], r) for i, it in enumerate(items)
               for v, r, ok in zip(it["samples"], it["rounds"], it["met"]) if ok == met]
        if pts:
            fig.add_trace(go.Scatter(
                x=[p[0] for p in pts], y=[p[1] for p in pts], mode="markers",
                name="round sample" + ("" if met else " (missed the budget)"),
                marker=dict(symbol="circle" if met else "circle-open", size=9, color="#444", line=dict(width=1.5)),
                text=[f"{p[2]} round {p[3]}: {p[1]:.1f} req/s" + ("" if met else ", missed the budget") for p in pts],
                hovertemplate="%{text}<extra></extra>"))
    for tied in (True, False):
        sel = [(i, it) for i, it in enumerate(items) if it["in_tie_set"] == tied]
        if not sel:
            continue
        color = TIE_COLOR if tied else OTHER_COLOR
        fig.add_trace(go.Scatter(
            x=[i + 0.15 for i, _ in sel], y=[it["mean_rps"] for _, it in sel], mode="markers",
            name="mean, 95 % CI: " + ("tie set" if tied else "outside the tie set"),
            marker=dict(symbol="square", size=11, color=color), error_y=dict(color=color, **_error_bars([it for _, it in sel])),
            text=[f"{it['config_id']}: mean {it['mean_rps']:.1f} req/s, 95 % CI {it['ci_low_rps']:.1f}.."
                  f"{it['ci_high_rps']:.1f}, met the budget in {sum(it['met'])} of {len(it['samples'])} rounds"
                  for _, it in sel],
            hovertemplate="%{text}<extra></extra>"))
    search = [(i, it["search_rps"]) for i, it in enumerate(items) if math.isfinite(it["search_rps"])]
    if search:
        fig.add_trace(go.Scatter(x=[s[0] for s in search], y=[s[1] for s in search], mode="markers",
                                 name="search capacity (one measurement)",
                                 marker=dict(symbol="x", size=9, color="black"),
                                 hovertemplate="search: %{y:.1f} req/s<extra></extra>"))
    for i, it in enumerate(items):
        if it["chosen"]:
            fig.add_trace(go.Scatter(x=[i + 0.15], y=[it["mean_rps"]], mode="markers", name=f"chosen: {it['config_id']}",
                                     marker=dict(symbol="star", size=20, color="gold", line=dict(color="black", width=1.5)),
                                     hoverinfo="skip"))
    ticks = [("<b>" if it["in_tie_set"] else "") + ("≥ " if it["lower_bound"] else "") + it["config_id"]
             + ("</b>" if it["in_tie_set"] else "") for it in items]
    fig.update_xaxes(tickvals=list(range(len(items))), ticktext=ticks, range=[-0.6, len(items) - 0.4], zeroline=False)
    fig.update_yaxes(title_text="throughput at the capacity level (req/s)")
    ties = ", ".join(data["tie_set"])
    fig.update_layout(title="Confirmation round: capacity re-measured" + (f" (tie set: {ties})" if ties else ""),
                      margin=dict(t=60, l=70, r=20, b=60), legend=dict(font=dict(size=10)))
    return fig


def timeline_figure(table: pd.DataFrame, title: str, budget_ms: float | None = None) -> go.Figure:
    """A scheduled run second by second (analyzer.timeline's table): requests due, served and
    failed above; p50 and p99 of the requests due in each second below, with the budget."""
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=("requests per second", "latency from the scheduled time"))
    # Each row is one bin [second, next second): the schedule's due count as a step over the
    # bin, what happened in it at the bin's middle.
    width = float(table["second"].diff().median()) if len(table) > 1 else 1.0
    x = table["second"] + width / 2
    fig.add_trace(go.Scatter(x=list(table["second"]) + [float(table["second"].iloc[-1]) + width],
                             y=list(table["due"]) + [table["due"].iloc[-1]], name="due (the schedule)", mode="lines",
                             line=dict(color="#888", dash="dot", shape="hv")), row=1, col=1)
    fig.add_trace(go.Scatter(x=x, y=table["throughput_rps"], name="served", mode="lines+markers",
                             line=dict(color="#1f77b4")), row=1, col=1)
    if (table["errors"] > 0).any():
        fig.add_trace(go.Bar(x=x, y=table["errors"], name="errors", marker_color="crimson", opacity=0.6), row=1, col=1)
    fig.add_trace(go.Scatter(x=x, y=table["p50_ms"], name="p50", mode="lines+markers", line=dict(color="#2ca02c")),
                  row=2, col=1)
    fig.add_trace(go.Scatter(x=x, y=table["p99_ms"], name="p99", mode="lines+markers", line=dict(color="#ff7f0e")),
                  row=2, col=1)
    if budget_ms is not None:
        fig.add_hline(y=budget_ms, line=dict(color="crimson", dash="dash"), row=2, col=1,
                      annotation_text=f"budget {budget_ms:g} ms", annotation_position="top left")
    fig.update_yaxes(title_text="req/s", rangemode="tozero", row=1, col=1)
    fig.update_yaxes(title_text="ms", rangemode="tozero", row=2, col=1)
    fig.update_xaxes(title_text="second of the schedule", row=2, col=1)
    fig.update_layout(title=title, height=560, margin=dict(t=80, l=60, r=20, b=50))
    return fig


def chosen_timeline(run: RunData, answer: "Answer") -> tuple[pd.DataFrame, str] | None:
    """The chosen config's per-second timeline at its capacity (runs against a schedule), and
    a title; None when the run has none."""
    if answer.best is None:
        return None
    config_id, level = str(answer.best["config_id"]), float(answer.best["capacity_level"])
    path = RunStore(run.dir).timeline_path(config_id, level)
    if not path.is_file():
        return None
    return pd.read_csv(path), f"Timeline of {config_id} at its capacity, the schedule x{level:g}"


def all_figures(run: RunData) -> dict[str, go.Figure]:
    """Every report figure of a run, by name (the confirmation figure only where there was a
    confirmation round)."""
    search = search_rows(run.measurements)
    mode = str(search["load_mode"].iloc[0]) if not search.empty else "load level"
    answer = answer_at(run)
    chosen = None if answer.best is None else str(answer.best["config_id"])
    point = None if chosen is None else (chosen, float(answer.best["capacity_level"]))
    figures = {"pareto": pareto_figure(pareto_data(run.measurements, run.budget_ms, point, run.percentile))}
    timeline = chosen_timeline(run, answer)
    if timeline is not None:
        figures["timeline"] = timeline_figure(timeline[0], timeline[1], run.budget_ms)
    if not confirm_rows(run.measurements).empty:
        figures["confirm"] = confirmation_figure(confirmation_data(run.measurements, run.configs, answer.tie_set, chosen))
    figures.update({
        "curves": load_curves_figure(load_curves_data(run.measurements, percentile=run.percentile), mode, run.budget_ms,
                                     latency_label(run.percentile)),
        "breakdown": breakdown_figure(breakdown_data(run.measurements, run.configs)),
        "heatmap": heatmap_figure(heatmap_data(run.configs)),
        "resources": resources_figure(resources_data(run.measurements)),
    })
    return figures


def _stopped_html(run: RunData) -> str:
    reason = (run.summary or {}).get("stopped_reason")
    return f"<p>Search stopped: {html.escape(str(reason))}.</p>" if reason else ""


def _tie_set_html(answer: Answer) -> str:
    chosen = None if answer.best is None else str(answer.best["config_id"])
    ids = ", ".join(f"<code>{html.escape(i)}</code>" for i in answer.tie_set)
    lead = f"<b>Tie set:</b> <span id='tie-set'>{ids}</span>. " if answer.tie_set else ""
    return f"<p class='ties'>{lead}{html.escape(tie_set_sentence(answer.tie_set, chosen))}</p>"


def client_bound_html(measurements: pd.DataFrame) -> str:
    """A warning naming the levels the load generator could not offer, with the fix ('' when
    it kept up everywhere)."""
    if measurements.empty or "client_bound" not in measurements:
        return ""
    bound = measurements[measurements["client_bound"].map(csv_true)]
    if bound.empty:
        return ""
    levels = ", ".join(f"{r['config_id']} at {level_text(r['load_mode'], r['load_level'])}" for _, r in bound.head(6).iterrows())
    more = f" and {len(bound) - 6} more" if len(bound) > 6 else ""
    reason = str(bound.iloc[0].get("client_bound_reason") or "")
    return (f"<div class='warn' id='client-bound'><p><b>Client bound:</b> {len(bound)} level(s) could not be offered "
            f"by the load generator, so their figures describe the client, not the model; they never count as "
            f"capacity: {html.escape(levels)}{more}.</p><p>{html.escape(reason or FIX)}</p></div>")


def _answer_html(run: RunData) -> str:
    answer = answer_at(run)
    best = answer.best
    if best is None:
        return f"<div class='miss'><p>No config met the budget of {run.budget_ms:g} ms (yet).</p>{_stopped_html(run)}</div>"
    label = latency_label(run.percentile)
    delay = best["max_queue_delay_us"]
    level = level_text(best['load_mode'], best['capacity_level'])
    measured = (f"<p>The search measured {fmt_rps(float(best['capacity_rps']))} req/s at that level; the confirmation "
                f"round re-measured it.</p>" if answer.confirmed else "")
    lower = ("<p>&ge;: the config still met the budget at the highest level that could be measured (the spec's "
             "load cap, load.max_level, or the load generator's limit), so its real capacity is at least this.</p>"
             if csv_true(best.get("capacity_lower_bound")) else "")
    return (
        f"<div class='answer'><h2>Best config: {html.escape(str(best['config_id']))}</h2>"
        f"<p><b>{html.escape(capacity_text(best))}</b> with {label} <b>{_num(best.get('latency_ms')):.2f} ms</b> "
        f"(budget {label} &le; {run.budget_ms:g} ms) at {level}.</p>{measured}{lower}"
        f"{_knobs_html(best)}"
        f"{_tie_set_html(answer)}"
        f"<p><b>Why:</b> {html.escape(answer.reason)}.</p>{_stopped_html(run)}"
        f"{steps_html(run, best)}{targets_html(run, best)}"
        f"{_pbtxt_html(run, best)}</div>"
    )


def _knobs_html(best: pd.Series) -> str:
    models = pipeline_models(best)
    if not models:
        delay = best["max_queue_delay_us"]
        return (f"<p>instance_group.count = {int(best['instance_count'])}, max_batch_size = {int(best['max_batch_size'])}, "
                f"dynamic_batching.max_queue_delay_microseconds = {'-' if pd.isna(delay) else int(delay)}</p>")
    rows = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{k['instance_count']}</td><td>{k['max_batch_size']}</td>"
        f"<td>{'-' if k['max_queue_delay_us'] is None else k['max_queue_delay_us']}</td></tr>"
        for name, k in models.items())
    return ("<table class='configs' id='best-models'><tr><th>model</th><th>instance_group.count</th>"
            f"<th>max_batch_size</th><th>max_queue_delay_us</th></tr>{rows}</table>")


def capacity_row(measurements: pd.DataFrame, config_id: str, level: Any) -> pd.Series | None:
    """A config's search measurement at one load level (its capacity level): the last one
    there, or None."""
    m = search_rows(measurements)
    if m.empty:
        return None
    here = m[(m["config_id"] == config_id) & (pd.to_numeric(m["load_level"], errors="coerce") == _num(level))]
    return None if here.empty else here.iloc[-1]


def step_rows(run: RunData, best: pd.Series) -> tuple[list[dict[str, Any]], str]:
    """A pipeline's per-step breakdown at the best config's capacity level (its search
    measurement there), and the bottleneck step ([] and '' for one model)."""
    row = capacity_row(run.measurements, best["config_id"], best.get("capacity_level"))
    if row is None or not any(str(c).startswith("step.") for c in row.index):
        return [], ""
    return steps_from_row(row.to_dict()), str(row.get("bottleneck_step") or "")


# The per-step table's columns (header, step field, format): the report's and the dashboard's.
STEP_COLUMNS = (("instances", "instances", ".0f"), ("busy %", "busy_pct", ".0f"), ("queue ms", "queue_ms", ".2f"),
                ("compute ms / execution", "compute_ms", ".2f"), ("batch", "batch", ".1f"),
                ("executions / request", "per_request", ".2f"))


def step_cells(step: dict[str, Any]) -> list[str]:
    """One step's row of the per-step table, formatted ('-' where a figure is missing)."""
    cells = []
    for _, key, fmt in STEP_COLUMNS:
        number = _num(step.get(key))
        cells.append(format(number, fmt) if math.isfinite(number) else "-")
    return cells


def targets_html(run: RunData, best: pd.Series) -> str:
    """Several models: each one's throughput and latency at the chosen level, against its own budget."""
    row = capacity_row(run.measurements, best["config_id"], best.get("capacity_level"))
    figures = target_figures(row.to_dict()) if row is not None else {}
    if not figures:
        return ""
    rows = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{f.get('load_level', math.nan):g}</td>"
        f"<td>{f.get('throughput_rps', math.nan):.1f}</td><td>{f.get('p99_ms', math.nan):.2f}</td>"
        f"<td>{f.get('budget_ms', math.nan):g}</td><td>{'yes' if f.get('meets') else 'no'}</td></tr>"
        for name, f in figures.items())
    return ("<div id='targets'><h3>Each model at the chosen level</h3><table class='configs'><tr><th>model</th>"
            "<th>its level</th><th>req/s</th><th>p99 ms</th><th>its budget ms</th><th>meets</th></tr>"
            f"{rows}</table></div>")


def steps_html(run: RunData, best: pd.Series) -> str:
    """The per-step table of a pipeline's best config, naming the bottleneck step."""
    steps, neck = step_rows(run, best)
    if not steps:
        return ""
    rows = "".join(
        f"<tr{' class=neck' if s['name'] == neck else ''}><td>{html.escape(s['name'])}</td>"
        + "".join(f"<td>{c}</td>" for c in step_cells(s)) + "</tr>" for s in steps)
    name = (f"<p><b>Bottleneck step: {html.escape(neck)}</b>: its instances were the busiest at the capacity level, "
            f"so more instances or more batching there would raise the pipeline's capacity first.</p>" if neck else "")
    head = "".join(f"<th>{h}</th>" for h, _, _ in STEP_COLUMNS)
    return (f"<div id='steps'><h3>Per step at the capacity level</h3>{name}"
            f"<table class='configs'><tr><th>step</th>{head}</tr>{rows}</table></div>")


def _pbtxt_html(run: RunData, best: pd.Series) -> str:
    """best/<model>/config.pbtxt, with a warning when its knobs are not the chosen config's (it
    is written by the sweep when the choice changes: a report made between the two shows it).
    A pipeline: every tuned model's."""
    models = pipeline_models(best)
    if models:
        out = []
        for name, knobs in models.items():
            path = RunStore(run.dir).best_config_path(name)
            text = path.read_text() if path.is_file() else None
            warning = ""
            if text is not None:
                try:
                    have = knobs_of(parse_pbtxt(text))
                    same = (have.instance_count, have.max_batch_size, have.max_queue_delay_us) == (
                        knobs["instance_count"], knobs["max_batch_size"], knobs["max_queue_delay_us"])
                except UsageError:
                    same = False
                if not same:
                    warning = (f"<p class='miss'>best/{html.escape(name)}/config.pbtxt does not hold the knobs of "
                               f"{html.escape(str(best['config_id']))} (written before this choice, or edited).</p>")
            out.append(f"{warning}<details open><summary>best/{html.escape(name)}/config.pbtxt</summary>"
                       f"<pre>{html.escape(text or '(not written yet)')}</pre></details>")
        return "".join(out)
    text = run.best_pbtxt
    warning = ""
    if text is not None:
        try:
            knobs = knobs_of(parse_pbtxt(text))
        except UsageError:
            knobs = None
        mine = Candidate.from_row(best)
        if knobs is None or (knobs.instance_count, knobs.max_batch_size, knobs.max_queue_delay_us) != (
                mine.instance_count, mine.max_batch_size, mine.max_queue_delay_us):
            warning = (f"<p class='miss'>best/{html.escape(run.model)}/config.pbtxt does not hold the knobs of "
                       f"{html.escape(str(best['config_id']))} (written before this choice, or edited).</p>")
    pbtxt = html.escape(text or "(config.pbtxt not written yet)")
    return f"{warning}<details open><summary>config.pbtxt</summary><pre>{pbtxt}</pre></details>"


def configs_table(run: RunData) -> pd.DataFrame:
    """The configs table of the report: capacities as text ("≥" for lower bounds, the confirmed
    mean and interval where re-measured), the budget percentile at the capacity level, knobs."""
    c = run.configs.copy()
    if c.empty:
        return c
    c = c.assign(_cap=pd.to_numeric(c["capacity_rps"], errors="coerce")).sort_values("_cap", ascending=False)
    col = latency_column(run.percentile)
    if col not in c or c[col].isna().all():  # configs.csv keeps p50 and p99 only: look the others up
        c[col] = [_with_latency(r, run.measurements, run.percentile)["latency_ms"] for _, r in c.iterrows()]
    c["capacity_rps"] = [("≥ " if csv_true(r.get("capacity_lower_bound")) else "") + f"{r['_cap']:.2f}"
                         if math.isfinite(r["_cap"]) else "-" for _, r in c.iterrows()]
    stats = confirmation_stats(run.measurements).set_index("config_id")
    shown = ["config_id", "status", "capacity_rps"]
    if not stats.empty:
        answer = answer_at(run)
        tie_set = answer.tie_set
        chosen_id = None if answer.best is None else str(answer.best["config_id"])
        c["confirmed_rps"] = [confirmed_text(stats, str(i)) for i in c["config_id"]]
        c["tie_set"] = [("chosen" if str(i) == chosen_id else "yes") if str(i) in tie_set else "" for i in c["config_id"]]
        shown += ["confirmed_rps", "tie_set"]
    per_model = [k for k in c.columns if str(k).endswith((".instance_count", ".max_batch_size", ".max_queue_delay_us"))]
    knobs = ["instance_count"] + per_model + ["bottleneck_step"] if per_model else [
        "instance_count", "max_batch_size", "max_queue_delay_us"]
    shown += ["capacity_level", col, "p99_ms", "p50_ms", *knobs, "levels_measured", "wall_s", "error"]
    return c[[k for k in dict.fromkeys(shown) if k in c]]


def confirmed_text(stats: pd.DataFrame, config_id: str) -> str:
    """A config's confirmation round in brief ("3,120 (2,980..3,260), 3/3 met"); "" when it was
    not re-measured. `stats`: choose.confirmation_stats indexed by config_id."""
    if config_id not in stats.index:
        return ""
    s = stats.loc[config_id]
    interval = (f" ({fmt_rps(s['ci_low_rps'])}..{fmt_rps(s['ci_high_rps'])})"
                if math.isfinite(s["ci_low_rps"]) and math.isfinite(s["ci_high_rps"]) else "")
    return f"{fmt_rps(s['capacity_rps'])}{interval}, {int(s['met_rounds'])}/{int(s['rounds'])} met"


def render_html(run: RunData) -> str:
    """The self-contained report page (Plotly's JavaScript inlined once: opens offline)."""
    figures = all_figures(run)
    parts = []
    for i, (name, fig) in enumerate(figures.items()):
        parts.append(f"<section id='{name}'>" + fig.to_html(full_html=False, include_plotlyjs=(i == 0)) + "</section>")
    table = configs_table(run).to_html(index=False, na_rep="-", float_format=lambda v: f"{v:.2f}", classes="configs",
                                       border=0)
    s = run.summary or {}
    confirms = len(confirm_rows(run.measurements))
    facts = (f"{len(run.configs)} configs ({int((run.configs['status'] == 'failed').sum()) if not run.configs.empty else 0} failed), "
             f"{len(run.measurements) - confirms} measurements"
             + (f" + {confirms} confirmation re-measurements" if confirms else "")
             + f", strategy {html.escape(run.strategy)}"
             + (f", {float(s['wall_s']):.0f} s" if s.get("wall_s") is not None else "")
             + ("" if s.get("finished") else " - sweep not finished"))
    label = latency_label(run.percentile)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>tritune report: {html.escape(run.model)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 24px auto; max-width: 1200px; color: #222; }}
.answer {{ background: #f3f8ee; border-left: 6px solid #4a8f29; padding: 8px 18px; }}
.miss {{ background: #fbeeee; border-left: 6px solid #b33; padding: 12px 18px; }}
.warn {{ background: #fff6e0; border-left: 6px solid #d9a400; padding: 8px 18px; margin-top: 10px; }}
pre {{ background: #f6f6f6; padding: 10px; overflow-x: auto; }}
table.configs {{ border-collapse: collapse; font-size: 13px; }}
tr.neck td {{ background: #fff6e0; font-weight: bold; }}
table.configs td, table.configs th {{ padding: 3px 8px; border-bottom: 1px solid #ddd; text-align: right; white-space: nowrap; }}
.wide {{ overflow-x: auto; }}
section {{ margin: 18px 0; }}
</style></head><body>
<h1>tritune report: {html.escape(run.model)}</h1>
<p>Budget: {label} &le; {run.budget_ms:g} ms (claims at {run.confidence:.0%} confidence). {facts}. Run directory: <code>{html.escape(str(run.dir))}</code></p>
{_answer_html(run)}
{client_bound_html(run.measurements)}
{''.join(parts)}
<h2>Configs</h2>
<div class='wide'>
<p>capacity_rps: the search's capacity under the budget (&ge;: met it at the highest level that could be measured, a lower bound){"; confirmed_rps: the confirmation round's mean with its 95 % interval and the rounds that met the budget again" if confirms else ""}.</p>
{table}
</div>
</body></html>
"""


def write_report(run_dir: str | Path) -> Path:
    """(Re)build RUN_DIR/report.html; returns its path."""
    run = load_run(run_dir)
    path = run.dir / "report.html"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(render_html(run))
    tmp.replace(path)
    return path
