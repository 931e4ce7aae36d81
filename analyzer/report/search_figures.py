"""The search's figures, drawn with Plotly from `analyzer.report.data`: every measurement
against the budget (the Pareto figure), the load curves and the capacity heatmap; and the look
the report's figures share (palette, symbols, the chosen config's star)."""

from __future__ import annotations

import math

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from analyzer.report.data import CurveInfo, HeatmapPanel, ParetoInfo

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
    batches = sorted(
        {p.max_batch_size for p in points}, key=lambda b: -1 if b is None else b
    )  # None: a pipeline
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
    shown = [p.latency_ms for p in points if p.latency_ms > 0] + [data.budget_ms]
    ticks = log_ticks(min(shown) / 1.1, max(shown) * 1.1)
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
