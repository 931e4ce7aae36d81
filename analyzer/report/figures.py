"""The report's figures, drawn with Plotly from the figure data of `analyzer.report.data` (the
dashboard draws the same figures from the same data)."""

from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from analyzer.confirm_stats import confirm_rows, search_rows
from analyzer.report.answer import answer_at
from analyzer.report.data import (
    ConfirmationInfo,
    ConfirmedConfig,
    CurveInfo,
    HeatmapPanel,
    ParetoInfo,
    ResourcesInfo,
    breakdown_data,
    chosen_timeline,
    confirmation_data,
    heatmap_data,
    load_curves_data,
    pareto_data,
    resources_data,
)
from analyzer.report.run import RunData, latency_label

SYMBOLS = [
    "circle",
    "square",
    "diamond",
    "triangle-up",
    "cross",
    "x",
    "triangle-down",
    "pentagon",
    "hexagon",
    "star-square",
]
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
TIE_COLOR, OTHER_COLOR = "#2ca02c", "#7f7f7f"
STAR_EDGE = dict(color="black", width=1.5)  # the chosen config's star
UNTRUSTED = "<br>(windows did not agree, nothing proven: not counted)"


def log_ticks(low: float, high: float) -> list[float]:
    """Tick values for a log axis from `low` to `high`: 1-2-5 steps, or every digit where that
    gives fewer than four (Plotly's own ticks on a short log range are bare digits, "5" for 50)."""
    if not (low > 0 and high >= low):
        return []
    decades = range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1)
    for digits in ((1, 2, 5), tuple(range(1, 10))):
        ticks = [d * 10.0**k for k in decades for d in digits if low <= d * 10.0**k <= high]
        if len(ticks) >= 4:
            return ticks
    return ticks


def pareto_figure(data: ParetoInfo, title: str | None = None) -> go.Figure:
    """Every measurement; colour = instance count, symbol = max batch size; budget line,
    frontier and the chosen config. The y axis is the budget percentile's latency."""
    label = data.label
    title = title or f"Throughput vs {label} latency"
    fig = go.Figure()
    points = data.points
    counts = sorted({p.instance_count for p in points})
    batches = sorted({p.max_batch_size for p in points})
    for count in counts:
        for batch in batches:
            sel = [p for p in points if p.instance_count == count and p.max_batch_size == batch]
            if not sel:
                continue
            symbol = SYMBOLS[batches.index(batch) % len(SYMBOLS)]
            fig.add_trace(
                go.Scatter(
                    x=[p.throughput_rps for p in sel],
                    y=[p.latency_ms for p in sel],
                    mode="markers",
                    name=f"{count} inst, batch {batch}",
                    marker=dict(
                        color=PALETTE[counts.index(count) % len(PALETTE)],
                        symbol=[symbol if p.trusted else f"{symbol}-open" for p in sel],
                        size=10,
                        line=dict(width=1.5),
                    ),
                    text=[p.hover + ("" if p.trusted else UNTRUSTED) for p in sel],
                    hovertemplate="%{text}<extra></extra>",
                    customdata=[[p.config_id, p.load_level] for p in sel],
                )
            )
    if data.frontier:
        xs, ys = zip(*data.frontier)
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=ys,
                mode="lines",
                name="Pareto frontier",
                line=dict(color="black", dash="dot", width=1.5),
                hoverinfo="skip",
            )
        )
    # The budget as a line trace, not a shape: shapes on a log axis take log10 coordinates.
    xs_all = [p.throughput_rps for p in points] or [0.0, 1.0]
    fig.add_trace(
        go.Scatter(
            x=[min(xs_all) * 0.95, max(xs_all) * 1.05],
            y=[data.budget_ms] * 2,
            mode="lines",
            name=f"budget {label} {data.budget_ms:g} ms",
            line=dict(color="crimson", dash="dash"),
            hoverinfo="skip",
        )
    )
    if data.chosen:
        c = data.chosen
        fig.add_trace(
            go.Scatter(
                x=[c.throughput_rps],
                y=[c.latency_ms],
                mode="markers",
                name=f"chosen: {c.config_id}",
                marker=dict(symbol="star", size=22, color="gold", line=STAR_EDGE),
                text=[c.hover],
                hovertemplate="%{text}<extra>chosen</extra>",
            )
        )
    if any(not p.trusted for p in points):
        title += " (hollow: windows never agreed and nothing was proven, not counted)"
    fig.update_layout(
        title=title,
        xaxis_title="throughput (req/s)",
        yaxis_title=f"{label} latency (ms)",
        yaxis_type="log",
        legend=dict(font=dict(size=10)),
        margin=dict(t=50, l=60, r=20, b=50),
        clickmode="event",
    )
    ys = [p.latency_ms for p in points if p.latency_ms > 0] + [data.budget_ms]
    ticks = log_ticks(min(ys) / 1.1, max(ys) * 1.1)
    if ticks:
        fig.update_yaxes(tickvals=ticks, ticktext=[f"{t:g}" for t in ticks])
    return fig


def load_curves_figure(
    data: dict[str, CurveInfo], mode: str = "concurrency", budget_ms: float | None = None, label: str = "p99"
) -> go.Figure:
    """Throughput and the budget percentile's latency (`label`) against load level, one line per config."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("throughput", f"{label} latency"))
    for i, (config_id, d) in enumerate(data.items()):
        color = PALETTE[i % len(PALETTE)]
        fig.add_trace(
            go.Scatter(
                x=d.level,
                y=d.throughput_rps,
                mode="lines+markers",
                name=config_id,
                legendgroup=config_id,
                line=dict(color=color),
            ),
            row=1,
            col=1,
        )
        fig.add_trace(
            go.Scatter(
                x=d.level,
                y=d.latency_ms,
                mode="lines+markers",
                name=config_id,
                legendgroup=config_id,
                showlegend=False,
                line=dict(color=color),
                hovertemplate=f"{config_id}: {label} %{{y:.2f}} ms at {mode} %{{x:g}}<extra></extra>",
            ),
            row=1,
            col=2,
        )
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
    stages = [
        ("server_queue_ms", "queue"),
        ("server_compute_input_ms", "compute input"),
        ("server_compute_infer_ms", "compute infer"),
        ("server_compute_output_ms", "compute output"),
    ]
    for col, label in stages:
        fig.add_trace(go.Bar(x=data["config_id"], y=data[col], name=label), secondary_y=False)
    fig.add_trace(
        go.Scatter(
            x=data["config_id"],
            y=data["avg_batch_size"],
            name="avg batch size",
            mode="markers",
            marker=dict(symbol="diamond", size=11, color="black"),
        ),
        secondary_y=True,
    )
    fig.update_layout(
        barmode="stack",
        title="Server-side time per request (at capacity) and achieved batch size",
        margin=dict(t=60, l=60, r=60, b=90),
    )
    fig.update_yaxes(title_text="ms per request", rangemode="tozero", secondary_y=False)
    fig.update_yaxes(title_text="avg batch size", rangemode="tozero", secondary_y=True)
    return fig


def heatmap_figure(data: dict[int, HeatmapPanel]) -> go.Figure:
    """Capacity over (max_batch_size x queue delay), one panel per instance count."""
    counts = sorted(data)
    fig = make_subplots(
        rows=1,
        cols=max(1, len(counts)),
        subplot_titles=[f"{c} instance{'s' if c > 1 else ''}" for c in counts],
    )
    vmax = max(
        (v for d in data.values() for row in d.capacity_rps for v in row if not math.isnan(v)), default=1.0
    )
    for i, count in enumerate(counts, start=1):
        d = data[count]
        text = [
            [("" if math.isnan(v) else f"{'≥' if low else ''}{v:.0f}") for v, low in zip(row, lows)]
            for row, lows in zip(d.capacity_rps, d.lower_bound)
        ]
        fig.add_trace(
            go.Heatmap(
                z=d.capacity_rps,
                x=[str(x) for x in d.max_queue_delay_us],
                y=[str(y) for y in d.max_batch_size],
                zmin=0,
                zmax=vmax,
                colorscale="Viridis",
                showscale=(i == len(counts)),
                text=text,
                texttemplate="%{text}",
                hovertemplate="max batch %{y}, delay %{x} us: %{z:.1f} req/s<extra></extra>",
                colorbar=dict(title="req/s"),
            ),
            row=1,
            col=i,
        )
        fig.update_xaxes(title_text="queue delay (us)", type="category", row=1, col=i)
        fig.update_yaxes(title_text="max batch size" if i == 1 else None, type="category", row=1, col=i)
    fig.update_layout(
        title="Capacity under the budget (≥: met it at the load cap, a lower bound)",
        margin=dict(t=70, l=60, r=20, b=50),
    )
    return fig


def resources_figure(data: ResourcesInfo) -> go.Figure:
    """Server CPU and memory (and GPU where measured) against throughput."""
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(
        go.Scatter(
            x=data.throughput_rps,
            y=data.server_cpu_pct,
            mode="markers",
            name="server CPU %",
            text=data.config_id,
            hovertemplate="%{text}: %{y:.0f} % at %{x:.0f} req/s<extra></extra>",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=data.throughput_rps,
            y=data.server_rss_mb,
            mode="markers",
            name="server memory MB",
            marker=dict(symbol="square"),
            text=data.config_id,
            hovertemplate="%{text}: %{y:.0f} MB<extra></extra>",
        ),
        secondary_y=True,
    )
    if data.gpu_util_pct:
        fig.add_trace(go.Scatter(x=data.throughput_rps, y=data.gpu_util_pct, mode="markers", name="GPU %"))
    no_gpu = "" if data.gpu_util_pct else " (no GPU measured)"
    fig.update_layout(
        title="Resource use against throughput" + no_gpu,
        xaxis_title="throughput (req/s)",
        margin=dict(t=60, l=60, r=60, b=50),
    )
    fig.update_yaxes(title_text="CPU % (100 = one core)", secondary_y=False)
    fig.update_yaxes(title_text="MB", secondary_y=True)
    return fig


def _error_bars(items: list[ConfirmedConfig]) -> dict[str, object]:
    """Asymmetric error bars from each mean to its interval's ends (none where the interval is
    unknown: a single round has no spread to estimate)."""
    up = [it.ci_high_rps - it.mean_rps if math.isfinite(it.ci_high_rps) else 0.0 for it in items]
    down = [it.mean_rps - it.ci_low_rps if math.isfinite(it.ci_low_rps) else 0.0 for it in items]
    return dict(type="data", symmetric=False, array=up, arrayminus=down, thickness=2, width=10)


def confirmation_figure(data: ConfirmationInfo) -> go.Figure:
    """Per confirmed config: its round samples (left, hollow where the level missed the budget),
    the mean with its 95 % interval (right; green for the tie set), the search's capacity (x),
    the reference's interval as a band (overlapping it = within noise) and the chosen config."""
    fig = go.Figure()
    items = data.configs
    if not items:
        fig.add_annotation(
            text="No confirmation round in this run (an older run, confirm_top: 0, or a sweep "
            "still searching)",
            showarrow=False,
            xref="paper",
            yref="paper",
            x=0.5,
            y=0.5,
        )
        fig.update_layout(
            title="Confirmation round",
            height=200,
            xaxis_visible=False,
            yaxis_visible=False,
            margin=dict(t=50, l=20, r=20, b=20),
        )
        return fig
    ref = next((it for it in items if it.config_id == data.reference), None)
    if ref is not None and math.isfinite(ref.ci_low_rps) and math.isfinite(ref.ci_high_rps):
        fig.add_hrect(
            y0=ref.ci_low_rps,
            y1=ref.ci_high_rps,
            fillcolor=TIE_COLOR,
            opacity=0.12,
            line_width=0,
            annotation_text=f"95 % CI of {ref.config_id}",
            annotation_position="top left",
        )
    for met in (True, False):
        pts = [
            (i - 0.15, v, it.config_id, r)
            for i, it in enumerate(items)
            for v, r, ok in zip(it.samples, it.rounds, it.met)
            if ok == met
        ]
        if pts:
            fig.add_trace(
                go.Scatter(
                    x=[p[0] for p in pts],
                    y=[p[1] for p in pts],
                    mode="markers",
                    name="round sample" + ("" if met else " (missed the budget)"),
                    marker=dict(
                        symbol="circle" if met else "circle-open", size=9, color="#444", line=dict(width=1.5)
                    ),
                    text=[
                        f"{p[2]} round {p[3]}: {p[1]:.1f} req/s" + ("" if met else ", missed the budget")
                        for p in pts
                    ],
                    hovertemplate="%{text}<extra></extra>",
                )
            )
    for tied in (True, False):
        sel = [(i, it) for i, it in enumerate(items) if it.in_tie_set == tied]
        if not sel:
            continue
        color = TIE_COLOR if tied else OTHER_COLOR
        fig.add_trace(
            go.Scatter(
                x=[i + 0.15 for i, _ in sel],
                y=[it.mean_rps for _, it in sel],
                mode="markers",
                name="mean, 95 % CI: " + ("tie set" if tied else "outside the tie set"),
                marker=dict(symbol="square", size=11, color=color),
                error_y=dict(color=color, **_error_bars([it for _, it in sel])),
                text=[
                    f"{it.config_id}: mean {it.mean_rps:.1f} req/s, 95 % CI {it.ci_low_rps:.1f}.."
                    f"{it.ci_high_rps:.1f}, met the budget in {sum(it.met)} of {len(it.samples)} rounds"
                    for _, it in sel
                ],
                hovertemplate="%{text}<extra></extra>",
            )
        )
    search = [(i, it.search_rps) for i, it in enumerate(items) if math.isfinite(it.search_rps)]
    if search:
        fig.add_trace(
            go.Scatter(
                x=[s[0] for s in search],
                y=[s[1] for s in search],
                mode="markers",
                name="search capacity (one measurement)",
                marker=dict(symbol="x", size=9, color="black"),
                hovertemplate="search: %{y:.1f} req/s<extra></extra>",
            )
        )
    for i, it in enumerate(items):
        if it.chosen:
            fig.add_trace(
                go.Scatter(
                    x=[i + 0.15],
                    y=[it.mean_rps],
                    mode="markers",
                    name=f"chosen: {it.config_id}",
                    marker=dict(symbol="star", size=20, color="gold", line=STAR_EDGE),
                    hoverinfo="skip",
                )
            )
    ticks = [
        ("<b>" if it.in_tie_set else "")
        + ("≥ " if it.lower_bound else "")
        + it.config_id
        + ("</b>" if it.in_tie_set else "")
        for it in items
    ]
    fig.update_xaxes(
        tickvals=list(range(len(items))), ticktext=ticks, range=[-0.6, len(items) - 0.4], zeroline=False
    )
    fig.update_yaxes(title_text="throughput at the capacity level (req/s)")
    ties = ", ".join(data.tie_set)
    title = "Confirmation round: capacity re-measured" + (f" (tie set: {ties})" if ties else "")
    fig.update_layout(title=title, margin=dict(t=60, l=70, r=20, b=60), legend=dict(font=dict(size=10)))
    return fig


def timeline_figure(table: pd.DataFrame, title: str, budget_ms: float | None = None) -> go.Figure:
    """A scheduled run second by second (analyzer.timeline's table): requests due, served and
    failed above; p50 and p99 of the requests due in each second below, with the budget."""
    fig = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.08,
        subplot_titles=("requests per second", "latency from the scheduled time"),
    )
    # Each row is one bin [second, next second): the schedule's due count as a step over the
    # bin, what happened in it at the bin's middle.
    width = float(table["second"].diff().median()) if len(table) > 1 else 1.0
    x = table["second"] + width / 2
    fig.add_trace(
        go.Scatter(
            x=list(table["second"]) + [float(table["second"].iloc[-1]) + width],
            y=list(table["due"]) + [table["due"].iloc[-1]],
            name="due (the schedule)",
            mode="lines",
            line=dict(color="#888", dash="dot", shape="hv"),
        ),
        row=1,
        col=1,
    )
    fig.add_trace(
        go.Scatter(
            x=x, y=table["throughput_rps"], name="served", mode="lines+markers", line=dict(color="#1f77b4")
        ),
        row=1,
        col=1,
    )
    if (table["errors"] > 0).any():
        fig.add_trace(
            go.Bar(x=x, y=table["errors"], name="errors", marker_color="crimson", opacity=0.6), row=1, col=1
        )
    for col, color in (("p50", "#2ca02c"), ("p99", "#ff7f0e")):
        fig.add_trace(
            go.Scatter(x=x, y=table[f"{col}_ms"], name=col, mode="lines+markers", line=dict(color=color)),
            row=2,
            col=1,
        )
    if budget_ms is not None:
        fig.add_hline(
            y=budget_ms,
            line=dict(color="crimson", dash="dash"),
            row=2,
            col=1,
            annotation_text=f"budget {budget_ms:g} ms",
            annotation_position="top left",
        )
    fig.update_yaxes(title_text="req/s", rangemode="tozero", row=1, col=1)
    fig.update_yaxes(title_text="ms", rangemode="tozero", row=2, col=1)
    fig.update_xaxes(title_text="second of the schedule", row=2, col=1)
    fig.update_layout(title=title, height=560, margin=dict(t=80, l=60, r=20, b=50))
    return fig


def all_figures(run: RunData) -> dict[str, go.Figure]:
    """Every report figure of a run, by name (the timeline only for a run against a schedule,
    the confirmation figure only where there was a confirmation round)."""
    search = search_rows(run.measurements)
    mode = str(search["load_mode"].iloc[0]) if not search.empty else "load level"
    answer = answer_at(run)
    chosen = None if answer.best is None else str(answer.best["config_id"])
    point = None if chosen is None else (chosen, float(answer.best["capacity_level"]))
    figures = {"pareto": pareto_figure(pareto_data(run.measurements, run.budget_ms, point, run.percentile))}
    timeline = chosen_timeline(run, answer)
    if timeline is not None:
        figures["timeline"] = timeline_figure(timeline.table, timeline.title, run.budget_ms)
    if not confirm_rows(run.measurements).empty:
        confirmed = confirmation_data(run.measurements, run.configs, answer.tie_set, chosen)
        figures["confirm"] = confirmation_figure(confirmed)
    figures.update(
        {
            "curves": load_curves_figure(
                load_curves_data(run.measurements, percentile=run.percentile),
                mode,
                run.budget_ms,
                latency_label(run.percentile),
            ),
            "breakdown": breakdown_figure(breakdown_data(run.measurements, run.configs)),
            "heatmap": heatmap_figure(heatmap_data(run.configs)),
            "resources": resources_figure(resources_data(run.measurements)),
        }
    )
    return figures
