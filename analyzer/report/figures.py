"""Every report figure of a run, by name (`all_figures`): the search's figures from
`analyzer.report.search_figures`, the closer looks from `analyzer.report.detail_figures` (the
dashboard draws the same figures from the same data)."""

from __future__ import annotations

import plotly.graph_objects as go

from analyzer.judge.confirm_stats import confirm_rows, search_rows
from analyzer.report.answer import answer_at
from analyzer.report.data import (
    breakdown_data,
    chosen_timeline,
    confirmation_data,
    heatmap_data,
    load_curves_data,
    pareto_data,
    resources_data,
)
from analyzer.report.detail_figures import (
    breakdown_figure,
    confirmation_figure,
    resources_figure,
    timeline_figure,
)
from analyzer.report.run import RunData, latency_label
from analyzer.report.search_figures import heatmap_figure, load_curves_figure, pareto_figure


def all_figures(run: RunData) -> dict[str, go.Figure]:
    """Every report figure of a run, by name (the timeline only for a run against a schedule,
    the confirmation figure only where there was a confirmation round)."""
    search = search_rows(run.measurements)
    mode = str(search["load_mode"].iloc[0]) if not search.empty else "load level"
    answer = answer_at(run)
    best = answer.best
    chosen = None if best is None else str(best["config_id"])
    point = None if best is None else (str(best["config_id"]), float(best["capacity_level"]))
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
