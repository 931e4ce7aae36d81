"""Figures and the static HTML report of a run directory.

Each figure is computed first as plain figure data (dicts and DataFrames: testable without
drawing, shared with the Dash app), then drawn with Plotly. Works on a run directory that is
still being written: whatever rows exist are shown.
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

from analyzer.capacity import required_requests
from analyzer.choose import best_config, pareto_mask
from analyzer.errors import UsageError
from analyzer.store import CONFIG_COLUMNS, MEASUREMENT_COLUMNS, RunStore

SYMBOLS = ["circle", "square", "diamond", "triangle-up", "cross", "x", "triangle-down", "pentagon", "hexagon", "star-square"]
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]


@dataclass
class RunData:
    """What a report needs from a run directory."""

    dir: Path
    model: str
    budget_ms: float
    percentile: float
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
        strategy=str(spec.get("strategy", "")),
        measurements=measurements,
        configs=configs,
        summary=store.read_summary(),
        best_pbtxt=pbtxt_path.read_text() if pbtxt_path.is_file() else None,
    )


# -- figure data (pure) ------------------------------------------------------------------------------

def level_meets(measurements: pd.DataFrame, budget_ms: float, latency_col: str = "p99_ms") -> pd.Series:
    """Which measurements meet a (possibly new) budget, judged from the stored numbers by the
    sweep's own rule: no errors, stable windows, the percentile under the budget, and the budget
    at or above the level's claim bound (`budget_bound_ms`, see measure.claim_bound), so at the
    sweep's budget this agrees with its verdicts. Rows written before that column existed fall
    back to the 95 % upper bound of p99 (or, where that is unknown, enough requests for the
    binomial claim)."""
    if measurements.empty:
        return pd.Series(dtype=bool)
    m = measurements
    latency = pd.to_numeric(m[latency_col], errors="coerce")
    high = pd.to_numeric(m["p99_ci_high_ms"], errors="coerce")
    requests = pd.to_numeric(m["requests"], errors="coerce").fillna(0)
    stable = m["stable"].astype(str).str.lower().isin(["true", "1"])
    errors = pd.to_numeric(m["errors"], errors="coerce").fillna(1)
    legacy_ok = (high <= budget_ms) | (high.isna() & (requests >= required_requests(0)))
    if "budget_bound_ms" in m:
        claim = pd.to_numeric(m["budget_bound_ms"], errors="coerce")
        bound_ok = (claim <= budget_ms).where(claim.notna(), legacy_ok)
    else:
        bound_ok = legacy_ok
    return (errors == 0) & stable & (latency <= budget_ms) & bound_ok.astype(bool)


def capacity_under_budget(measurements: pd.DataFrame, budget_ms: float) -> pd.DataFrame:
    """Per config: the highest throughput of a level meeting `budget_ms` (0 when none does),
    with that level and its p99. Lets the budget be moved after the sweep."""
    cols = ["config_id", "capacity_rps", "capacity_level", "p99_ms"]
    if measurements.empty:
        return pd.DataFrame(columns=cols)
    meets = level_meets(measurements, budget_ms)
    rows = []
    for config_id, group in measurements.groupby("config_id", sort=False):
        ok = group[meets.loc[group.index]]
        if ok.empty:
            rows.append((config_id, 0.0, math.nan, math.nan))
        else:
            top = ok.loc[ok["throughput_rps"].idxmax()]
            rows.append((config_id, float(top["throughput_rps"]), float(top["load_level"]), float(top["p99_ms"])))
    return pd.DataFrame(rows, columns=cols)


def choose_at_budget(measurements: pd.DataFrame, configs: pd.DataFrame, budget_ms: float) -> pd.Series | None:
    """The best config if the budget were `budget_ms` (same tie rules as the sweep's choice)."""
    caps = capacity_under_budget(measurements, budget_ms)
    if caps.empty:
        return None
    knobs = configs.drop(columns=["capacity_rps", "capacity_level", "p99_ms"], errors="ignore")
    merged = caps.merge(knobs, on="config_id", how="left")
    merged["status"] = merged["status"].fillna("ok").replace({"failed": "ok"})
    return best_config(merged)


def _describe(row: pd.Series) -> str:
    delay = row.get("max_queue_delay_us")
    delay_text = "-" if delay is None or (isinstance(delay, float) and math.isnan(delay)) else f"{int(delay)} us"
    return (f"{row['config_id']}<br>instances {int(row['instance_count'])}, max batch {int(row['max_batch_size'])}, "
            f"queue delay {delay_text}")


def pareto_data(measurements: pd.DataFrame, budget_ms: float, chosen: tuple[str, float] | None = None) -> dict[str, Any]:
    """Pareto chart data: every error-free measurement (throughput vs p99 with its config; a
    measurement whose windows never agreed is marked untrusted), the frontier of the trusted
    ones, the budget, and the chosen (config_id, load level) point."""
    m = measurements[pd.to_numeric(measurements["errors"], errors="coerce").fillna(1) == 0].copy() if not measurements.empty else measurements.copy()
    points = []
    for _, r in m.iterrows():
        points.append({
            "config_id": r["config_id"],
            "throughput_rps": float(r["throughput_rps"]),
            "p99_ms": float(r["p99_ms"]),
            "instance_count": int(r["instance_count"]),
            "max_batch_size": int(r["max_batch_size"]),
            "max_queue_delay_us": None if pd.isna(r["max_queue_delay_us"]) else int(r["max_queue_delay_us"]),
            "load_mode": r["load_mode"],
            "load_level": float(r["load_level"]),
            # Unstable windows: shown, but neither on the frontier nor ever chosen.
            "trusted": str(r.get("stable")).lower() in ("true", "1"),
            "hover": f"{_describe(r)}<br>{r['load_mode']} {float(r['load_level']):g}: "
                     f"{float(r['throughput_rps']):.1f} req/s, p99 {float(r['p99_ms']):.2f} ms",
        })
    frontier: list[tuple[float, float]] = []
    trusted = [p for p in points if p["trusted"]]
    if trusted:
        tp = np.array([p["throughput_rps"] for p in trusted])
        lat = np.array([p["p99_ms"] for p in trusted])
        keep = pareto_mask(tp, lat)
        frontier = sorted((float(x), float(y)) for x, y, k in zip(tp, lat, keep) if k)
    chosen_point = None
    if chosen is not None:
        for p in points:
            if p["config_id"] == chosen[0] and p["load_level"] == chosen[1]:
                chosen_point = p
    return {"points": points, "frontier": frontier, "budget_ms": budget_ms, "chosen": chosen_point}


def load_curves_data(measurements: pd.DataFrame, config_ids: list[str] | None = None) -> dict[str, dict[str, list[float]]]:
    """Per config: load levels with throughput and p99 at each (the curve behind each point)."""
    out: dict[str, dict[str, list[float]]] = {}
    if measurements.empty:
        return out
    for config_id, g in measurements.groupby("config_id", sort=False):
        if config_ids is not None and config_id not in config_ids:
            continue
        g = g.sort_values("load_level")
        out[str(config_id)] = {
            "level": g["load_level"].astype(float).tolist(),
            "throughput_rps": g["throughput_rps"].astype(float).tolist(),
            "p99_ms": g["p99_ms"].astype(float).tolist(),
        }
    return out


def breakdown_data(measurements: pd.DataFrame, configs: pd.DataFrame) -> pd.DataFrame:
    """Server-side time per request (queue, compute input/infer/output) and achieved batch size,
    per config at its capacity level (else its highest measured level)."""
    cols = ["config_id", "load_level", "server_queue_ms", "server_compute_input_ms", "server_compute_infer_ms",
            "server_compute_output_ms", "avg_batch_size"]
    rows = []
    if measurements.empty:
        return pd.DataFrame(columns=cols)
    cap_level = {} if configs.empty else dict(zip(configs["config_id"], configs["capacity_level"]))
    for config_id, g in measurements.groupby("config_id", sort=False):
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
    where a config was not measured or failed."""
    out: dict[int, dict[str, Any]] = {}
    if configs.empty:
        return out
    c = configs.copy()
    c["delay"] = c["max_queue_delay_us"].apply(lambda v: "off" if pd.isna(v) else str(int(v)))
    c["cap"] = pd.to_numeric(c["capacity_rps"], errors="coerce").where(c["status"] != "failed")
    batches = sorted(c["max_batch_size"].astype(int).unique())
    delays = sorted(c["delay"].unique(), key=lambda d: -1 if d == "off" else int(d))
    for count, g in c.groupby(c["instance_count"].astype(int)):
        z = [[math.nan] * len(delays) for _ in batches]
        for _, r in g.iterrows():
            z[batches.index(int(r["max_batch_size"]))][delays.index(r["delay"])] = float(r["cap"]) if not pd.isna(r["cap"]) else math.nan
        out[int(count)] = {"max_batch_size": batches, "max_queue_delay_us": delays, "capacity_rps": z}
    return out


def resources_data(measurements: pd.DataFrame) -> dict[str, list[float]]:
    """Server CPU, memory and GPU use against throughput (GPU lists empty where never measured)."""
    if measurements.empty:
        return {k: [] for k in ("throughput_rps", "server_cpu_pct", "server_rss_mb", "gpu_util_pct", "gpu_mem_mb", "config_id")}
    m = measurements.sort_values("throughput_rps")
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

def pareto_figure(data: dict[str, Any], title: str = "Throughput vs p99 latency") -> go.Figure:
    """Every measurement; colour = instance count, symbol = max batch size; budget line,
    frontier and the chosen config."""
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
                x=[p["throughput_rps"] for p in sel], y=[p["p99_ms"] for p in sel], mode="markers",
                name=f"{count} inst, batch {batch}",
                marker=dict(color=PALETTE[counts.index(count) % len(PALETTE)],
                            symbol=[symbol if p["trusted"] else f"{symbol}-open" for p in sel],
                            size=10, line=dict(width=1.5)),
                text=[p["hover"] + ("" if p["trusted"] else "<br>(windows did not agree: not counted)") for p in sel],
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
                             name=f"budget {data['budget_ms']:g} ms", line=dict(color="crimson", dash="dash"),
                             hoverinfo="skip"))
    if data["chosen"]:
        c = data["chosen"]
        fig.add_trace(go.Scatter(x=[c["throughput_rps"]], y=[c["p99_ms"]], mode="markers", name=f"chosen: {c['config_id']}",
                                 marker=dict(symbol="star", size=22, color="gold", line=dict(color="black", width=1.5)),
                                 text=[c["hover"]], hovertemplate="%{text}<extra>chosen</extra>"))
    if any(not p["trusted"] for p in points):
        title += " (hollow: unstable windows, not counted)"
    fig.update_layout(title=title, xaxis_title="throughput (req/s)", yaxis_title="p99 latency (ms)",
                      yaxis_type="log", legend=dict(font=dict(size=10)), margin=dict(t=50, l=60, r=20, b=50),
                      clickmode="event")
    return fig


def load_curves_figure(data: dict[str, dict[str, list[float]]], mode: str = "concurrency", budget_ms: float | None = None) -> go.Figure:
    """Throughput and p99 against load level, one line per config."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("throughput", "p99 latency"))
    for i, (config_id, d) in enumerate(data.items()):
        color = PALETTE[i % len(PALETTE)]
        fig.add_trace(go.Scatter(x=d["level"], y=d["throughput_rps"], mode="lines+markers", name=config_id,
                                 legendgroup=config_id, line=dict(color=color)), row=1, col=1)
        fig.add_trace(go.Scatter(x=d["level"], y=d["p99_ms"], mode="lines+markers", name=config_id,
                                 legendgroup=config_id, showlegend=False, line=dict(color=color)), row=1, col=2)
    if budget_ms is not None:
        fig.add_hline(y=budget_ms, line=dict(color="crimson", dash="dash"), row=1, col=2)
    fig.update_xaxes(title_text=mode, type="log")
    fig.update_yaxes(title_text="req/s", row=1, col=1)
    fig.update_yaxes(title_text="ms", row=1, col=2)
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
        text = [[("" if math.isnan(v) else f"{v:.0f}") for v in row] for row in d["capacity_rps"]]
        fig.add_trace(go.Heatmap(
            z=d["capacity_rps"], x=[str(x) for x in d["max_queue_delay_us"]], y=[str(y) for y in d["max_batch_size"]],
            zmin=0, zmax=vmax, colorscale="Viridis", showscale=(i == len(counts)), text=text, texttemplate="%{text}",
            hovertemplate="max batch %{y}, delay %{x} us: %{z:.1f} req/s<extra></extra>",
            colorbar=dict(title="req/s"),
        ), row=1, col=i)
        fig.update_xaxes(title_text="queue delay (us)", type="category", row=1, col=i)
        fig.update_yaxes(title_text="max batch size" if i == 1 else None, type="category", row=1, col=i)
    fig.update_layout(title="Capacity under the budget", margin=dict(t=70, l=60, r=20, b=50))
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


def chosen_of(run: RunData) -> tuple[str, float] | None:
    """(config_id, load level) of the run's best config, from its tables."""
    best = best_config(run.configs)
    if best is None or pd.isna(best["capacity_level"]):
        return None
    return str(best["config_id"]), float(best["capacity_level"])


def all_figures(run: RunData) -> dict[str, go.Figure]:
    """Every report figure of a run, by name."""
    mode = str(run.measurements["load_mode"].iloc[0]) if not run.measurements.empty else "load level"
    return {
        "pareto": pareto_figure(pareto_data(run.measurements, run.budget_ms, chosen_of(run))),
        "curves": load_curves_figure(load_curves_data(run.measurements), mode, run.budget_ms),
        "breakdown": breakdown_figure(breakdown_data(run.measurements, run.configs)),
        "heatmap": heatmap_figure(heatmap_data(run.configs)),
        "resources": resources_figure(resources_data(run.measurements)),
    }


def _answer_html(run: RunData) -> str:
    best = best_config(run.configs)
    label = f"p{run.percentile:g}"
    if best is None:
        text = f"<p class='miss'>No config met the budget of {run.budget_ms:g} ms (yet).</p>"
        return text
    delay = best["max_queue_delay_us"]
    pbtxt = html.escape(run.best_pbtxt or "(config.pbtxt not written yet)")
    return (
        f"<div class='answer'><h2>Best config: {html.escape(str(best['config_id']))}</h2>"
        f"<p><b>{float(best['capacity_rps']):.1f} req/s</b> with {label} <b>{float(best['p99_ms']):.2f} ms</b> "
        f"(budget {run.budget_ms:g} ms) at {best['load_mode']} {float(best['capacity_level']):g}.</p>"
        f"<p>instance_group.count = {int(best['instance_count'])}, max_batch_size = {int(best['max_batch_size'])}, "
        f"dynamic_batching.max_queue_delay_microseconds = {'-' if pd.isna(delay) else int(delay)}</p>"
        f"<details open><summary>config.pbtxt</summary><pre>{pbtxt}</pre></details></div>"
    )


def render_html(run: RunData) -> str:
    """The self-contained report page (Plotly's JavaScript inlined once: opens offline)."""
    figures = all_figures(run)
    parts = []
    for i, (name, fig) in enumerate(figures.items()):
        parts.append(f"<section id='{name}'>" + fig.to_html(full_html=False, include_plotlyjs=(i == 0)) + "</section>")
    shown = [c for c in ["config_id", "status", "capacity_rps", "capacity_level", "p99_ms", "p50_ms", "instance_count",
                         "max_batch_size", "max_queue_delay_us", "levels_measured", "wall_s", "error"] if c in run.configs]
    table = run.configs[shown].sort_values("capacity_rps", ascending=False).to_html(
        index=False, na_rep="-", float_format=lambda v: f"{v:.2f}", classes="configs", border=0)
    s = run.summary or {}
    facts = (f"{len(run.configs)} configs ({int((run.configs['status'] == 'failed').sum()) if not run.configs.empty else 0} failed), "
             f"{len(run.measurements)} measurements, strategy {html.escape(run.strategy)}"
             + (f", {float(s['wall_s']):.0f} s" if s.get("wall_s") is not None else "")
             + ("" if s.get("finished") else " - sweep not finished"))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>tritune report: {html.escape(run.model)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 24px auto; max-width: 1200px; color: #222; }}
.answer {{ background: #f3f8ee; border-left: 6px solid #4a8f29; padding: 8px 18px; }}
.miss {{ background: #fbeeee; border-left: 6px solid #b33; padding: 12px 18px; }}
pre {{ background: #f6f6f6; padding: 10px; overflow-x: auto; }}
table.configs {{ border-collapse: collapse; font-size: 13px; }}
table.configs td, table.configs th {{ padding: 3px 8px; border-bottom: 1px solid #ddd; text-align: right; }}
section {{ margin: 18px 0; }}
</style></head><body>
<h1>tritune report: {html.escape(run.model)}</h1>
<p>Budget: p{run.percentile:g} &le; {run.budget_ms:g} ms. {facts}. Run directory: <code>{html.escape(str(run.dir))}</code></p>
{_answer_html(run)}
{''.join(parts)}
<h2>Configs</h2>
{table}
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
