"""A closer look at the configs, drawn with Plotly from `analyzer.report.data`: where the
server's time goes and what it uses, the confirmation round, and a scheduled run second by
second."""

from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from analyzer.report.data import ConfirmationInfo, ConfirmedConfig, ResourcesInfo
from analyzer.report.search_figures import STAR_EDGE

TIE_COLOR, OTHER_COLOR = "#2ca02c", "#7f7f7f"


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
    """A scheduled run second by second (analyzer.stats.timeline's table): requests due, served and
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
            x=[*table["second"], float(table["second"].iloc[-1]) + width],
            y=[*table["due"], table["due"].iloc[-1]],
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
