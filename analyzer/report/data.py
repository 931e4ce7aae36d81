"""Figure data: what each figure shows, computed from a run's tables as typed values (NamedTuples,
as Optuna's visualisation module builds its `_XxxInfo`), testable without drawing and shared by
the report and the dashboard.

Search rows feed capacities, points and curves; the confirmation round's rows have a figure of
their own.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from analyzer.config.pipeline import steps_from_row
from analyzer.judge.choose import pareto_mask
from analyzer.judge.confirm_stats import confirm_rows, confirmation_stats, search_rows
from analyzer.report.answer import Answer
from analyzer.report.run import RunData, latency_label, num
from analyzer.schema import csv_true, percentile_field
from analyzer.stats.measurement import level_text


class ParetoPoint(NamedTuple):
    """One error-free search measurement on the Pareto chart."""

    config_id: str
    throughput_rps: float
    latency_ms: float  # the budget percentile's
    instance_count: int
    max_batch_size: int | None  # None: a pipeline's (its knobs are per model)
    max_queue_delay_us: int | None
    load_mode: str
    load_level: float
    # Unstable windows: shown, but neither on the frontier nor ever chosen. A level whose verdict
    # was proven (over the budget after one window, say) is trusted all the same, unless the load
    # generator could not offer it (its figures are the client's).
    trusted: bool
    hover: str


class ParetoInfo(NamedTuple):
    """The Pareto chart: its points, the frontier of the trusted ones, the budget, the latency's
    label and the chosen point (None when nothing is chosen or it is not among the points)."""

    points: list[ParetoPoint]
    frontier: list[tuple[float, float]]  # (throughput_rps, latency_ms), by throughput
    budget_ms: float
    label: str
    chosen: ParetoPoint | None


class CurveInfo(NamedTuple):
    """One config's load curve: its search levels in order, with throughput and the budget
    percentile's latency at each."""

    level: list[float]
    throughput_rps: list[float]
    latency_ms: list[float]


class HeatmapPanel(NamedTuple):
    """One instance count's capacities: rows are max_batch_size, columns queue delays ("off" for
    no dynamic batching); NaN where a config was not measured or failed."""

    max_batch_size: list[int]
    max_queue_delay_us: list[str]
    capacity_rps: list[list[float]]
    lower_bound: list[list[bool]]  # met the budget at the load cap: a lower bound


class ResourcesInfo(NamedTuple):
    """Server resource use per search measurement, by throughput (GPU lists empty where never
    measured)."""

    config_id: list[str]
    throughput_rps: list[float]
    server_cpu_pct: list[float]
    server_rss_mb: list[float]
    gpu_util_pct: list[float]
    gpu_mem_mb: list[float]


class ConfirmedConfig(NamedTuple):
    """One config's confirmation round."""

    config_id: str
    samples: list[float]  # throughput at its capacity level, per round
    rounds: list[int]
    met: list[bool]  # the stored verdict per round, as confirmation_stats counts it
    mean_rps: float
    ci_low_rps: float
    ci_high_rps: float
    search_rps: float  # its search capacity (NaN when unknown)
    lower_bound: bool
    in_tie_set: bool
    chosen: bool


class ConfirmationInfo(NamedTuple):
    """The confirmation figure: re-measured configs (highest mean first), the reference (the tie
    set's highest mean: the tie set is the configs whose interval overlaps its) and the tie set."""

    configs: list[ConfirmedConfig]
    reference: str | None
    tie_set: list[str]


class TimelineInfo(NamedTuple):
    """A scheduled run second by second (analyzer.stats.timeline's table) and its figure's title."""

    table: pd.DataFrame
    title: str


def _int_or_none(value: Any) -> int | None:
    return None if value is None or pd.isna(value) or value == "" else int(float(value))


def _describe(row: pd.Series) -> str:
    if _int_or_none(row.get("max_batch_size")) is None:  # a pipeline: its knobs are in its id
        return f"{row['config_id']}<br>instances {int(row['instance_count'])} (all tuned models)"
    delay = row.get("max_queue_delay_us")
    off = delay is None or (isinstance(delay, float) and math.isnan(delay))
    delay_text = "-" if off else f"{int(delay)} us"
    return (
        f"{row['config_id']}<br>instances {int(row['instance_count'])}, "
        f"max batch {int(row['max_batch_size'])}, queue delay {delay_text}"
    )


def pareto_data(
    measurements: pd.DataFrame,
    budget_ms: float,
    chosen: tuple[str, float] | None = None,
    percentile: float = 99.0,
) -> ParetoInfo:
    """Pareto chart data: every error-free search measurement (throughput vs the budget
    percentile's latency, with its config; a measurement whose windows never agreed is marked
    untrusted), the frontier of the trusted ones, the budget, the latency's label and the chosen
    (config_id, load level) point."""
    m = search_rows(measurements)
    if not m.empty:
        m = m[pd.to_numeric(m["errors"], errors="coerce").fillna(1) == 0]
    col, label = percentile_field(percentile), latency_label(percentile)
    points = []
    for _, r in m.iterrows():
        latency = num(r.get(col))
        points.append(
            ParetoPoint(
                config_id=r["config_id"],
                throughput_rps=float(r["throughput_rps"]),
                latency_ms=latency,
                instance_count=int(r["instance_count"]),
                max_batch_size=_int_or_none(r["max_batch_size"]),
                max_queue_delay_us=_int_or_none(r["max_queue_delay_us"]),
                load_mode=r["load_mode"],
                load_level=float(r["load_level"]),
                trusted=(csv_true(r.get("stable")) or csv_true(r.get("verdict_proven")))
                and not csv_true(r.get("client_bound")),
                hover=f"{_describe(r)}<br>{level_text(r['load_mode'], r['load_level'])}: "
                f"{float(r['throughput_rps']):.1f} req/s, {label} {latency:.2f} ms",
            )
        )
    frontier: list[tuple[float, float]] = []
    trusted = [p for p in points if p.trusted]
    if trusted:
        tp = np.array([p.throughput_rps for p in trusted])
        lat = np.array([p.latency_ms for p in trusted])
        keep = pareto_mask(tp, lat)
        frontier = sorted((float(x), float(y)) for x, y, k in zip(tp, lat, keep) if k)
    chosen_point = None
    if chosen is not None:
        for p in points:
            if p.config_id == chosen[0] and p.load_level == chosen[1]:
                chosen_point = p
    return ParetoInfo(points, frontier, budget_ms, label, chosen_point)


def load_curves_data(
    measurements: pd.DataFrame, config_ids: list[str] | None = None, percentile: float = 99.0
) -> dict[str, CurveInfo]:
    """Per config: the search's load levels with throughput and the budget percentile's latency
    at each (the curve behind each point)."""
    out: dict[str, CurveInfo] = {}
    m = search_rows(measurements)
    if m.empty:
        return out
    col = percentile_field(percentile)
    for config_id, g in m.groupby("config_id", sort=False):
        if config_ids is not None and config_id not in config_ids:
            continue
        g = g.sort_values("load_level")
        out[str(config_id)] = CurveInfo(
            level=g["load_level"].astype(float).tolist(),
            throughput_rps=g["throughput_rps"].astype(float).tolist(),
            latency_ms=pd.to_numeric(g[col], errors="coerce").astype(float).tolist(),
        )
    return out


def breakdown_data(measurements: pd.DataFrame, configs: pd.DataFrame) -> pd.DataFrame:
    """Server-side time per request (queue, compute input/infer/output) and achieved batch size,
    per config at its capacity level (else its highest measured level), from the search."""
    cols = [
        "config_id",
        "load_level",
        "server_queue_ms",
        "server_compute_input_ms",
        "server_compute_infer_ms",
        "server_compute_output_ms",
        "avg_batch_size",
    ]
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


def heatmap_data(configs: pd.DataFrame) -> dict[int, HeatmapPanel]:
    """Per instance count: capacity over max_batch_size (rows) x queue delay (columns); NaN
    where a config was not measured or failed; `lower_bound` marks capacities that met the
    budget at the load cap."""
    out: dict[int, HeatmapPanel] = {}
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
        out[int(count)] = HeatmapPanel(batches, delays, z, lower)
    return out


def resources_data(measurements: pd.DataFrame) -> ResourcesInfo:
    """Server CPU, memory and GPU use against throughput, from the search (GPU lists empty where
    never measured)."""
    m = search_rows(measurements)
    if m.empty:
        return ResourcesInfo([], [], [], [], [], [])
    m = m.sort_values("throughput_rps")
    gpu = pd.to_numeric(m["gpu_util_pct"], errors="coerce")
    has_gpu = gpu.notna().any()
    return ResourcesInfo(
        config_id=m["config_id"].astype(str).tolist(),
        throughput_rps=m["throughput_rps"].astype(float).tolist(),
        server_cpu_pct=pd.to_numeric(m["server_cpu_pct"], errors="coerce").tolist(),
        server_rss_mb=pd.to_numeric(m["server_rss_mb"], errors="coerce").tolist(),
        gpu_util_pct=gpu.tolist() if has_gpu else [],
        gpu_mem_mb=pd.to_numeric(m["gpu_mem_mb"], errors="coerce").tolist() if has_gpu else [],
    )


def confirmation_data(
    measurements: pd.DataFrame, configs: pd.DataFrame, tie_set: list[str], chosen: str | None = None
) -> ConfirmationInfo:
    """Confirmation figure data: per re-measured config (highest mean first) its round samples
    (throughput at its capacity level, the round, whether the level met the budget again), their
    mean and 95 % interval (`confirm_stats.confirmation_stats`), its search capacity, whether it is in
    the tie set, chosen, or a lower bound. `reference` is the tie set's highest mean: the tie set
    is the configs whose interval overlaps the reference's."""
    stats = confirmation_stats(measurements)
    rows = confirm_rows(measurements)
    known = (
        None if configs.empty else configs.drop_duplicates("config_id", keep="last").set_index("config_id")
    )
    items = []
    for _, s in stats.sort_values("capacity_rps", ascending=False).iterrows():
        config_id = str(s["config_id"])
        g = rows[rows["config_id"].astype(str) == config_id]
        rounds = (
            pd.to_numeric(g["confirm_round"], errors="coerce")
            if "confirm_round" in g
            else pd.Series(dtype=float)
        )
        if rounds.isna().any() or len(rounds) != len(g):
            rounds = pd.Series(range(1, len(g) + 1), index=g.index)  # rows without a round number: in order
        known_row = known.loc[config_id] if known is not None and config_id in known.index else None
        items.append(
            ConfirmedConfig(
                config_id=config_id,
                samples=pd.to_numeric(g["throughput_rps"], errors="coerce").astype(float).tolist(),
                rounds=[int(r) for r in rounds],
                # The stored verdict, as confirmation_stats counts it: the figure shows what the choice saw.
                met=[csv_true(v) for v in g["meets_budget"]] if "meets_budget" in g else [False] * len(g),
                mean_rps=float(s["capacity_rps"]),
                ci_low_rps=float(s["ci_low_rps"]),
                ci_high_rps=float(s["ci_high_rps"]),
                search_rps=math.nan if known_row is None else num(known_row.get("capacity_rps")),
                lower_bound=known_row is not None and csv_true(known_row.get("capacity_lower_bound")),
                in_tie_set=config_id in tie_set,
                chosen=config_id == chosen,
            )
        )
    tied = [it for it in items if it.in_tie_set]
    return ConfirmationInfo(items, tied[0].config_id if tied else None, list(tie_set))


def chosen_timeline(run: RunData, answer: Answer) -> TimelineInfo | None:
    """The chosen config's per-second timeline at its capacity (runs against a schedule), and
    a title; None when the run has none."""
    if answer.best is None:
        return None
    config_id, level = str(answer.best["config_id"]), float(answer.best["capacity_level"])
    table = run.store.read_timeline(config_id, level)
    if table is None:
        return None
    return TimelineInfo(table, f"Timeline of {config_id} at its capacity, the schedule x{level:g}")


# -- a pipeline's steps -------------------------------------------------------------------------------

# The per-step table's columns (header, step field, format): the report's and the dashboard's.
STEP_COLUMNS = (
    ("instances", "instances", ".0f"),
    ("busy %", "busy_pct", ".0f"),
    ("queue ms", "queue_ms", ".2f"),
    ("compute ms / execution", "compute_ms", ".2f"),
    ("batch", "batch", ".1f"),
    ("executions / request", "per_request", ".2f"),
)


def capacity_row(measurements: pd.DataFrame, config_id: str, level: Any) -> pd.Series | None:
    """A config's search measurement at one load level (its capacity level): the last one
    there, or None."""
    m = search_rows(measurements)
    if m.empty:
        return None
    here = m[(m["config_id"] == config_id) & (pd.to_numeric(m["load_level"], errors="coerce") == num(level))]
    return None if here.empty else here.iloc[-1]


def step_rows(run: RunData, best: pd.Series) -> tuple[list[dict[str, Any]], str]:
    """A pipeline's per-step breakdown at the best config's capacity level (its search
    measurement there), and the bottleneck step ([] and '' for one model)."""
    row = capacity_row(run.measurements, best["config_id"], best.get("capacity_level"))
    if row is None or not any(str(c).startswith("step.") for c in row.index):
        return [], ""
    return steps_from_row(row.to_dict()), str(row.get("bottleneck_step") or "")


def step_cells(step: dict[str, Any]) -> list[str]:
    """One step's row of the per-step table, formatted ('-' where a figure is missing)."""
    cells = []
    for _, key, fmt in STEP_COLUMNS:
        number = num(step.get(key))
        cells.append(format(number, fmt) if math.isfinite(number) else "-")
    return cells
