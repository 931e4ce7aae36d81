"""The report of a run directory: `write_report(run_dir)` (re)builds report.html.

Its parts, each importable on its own; this package is their public API (the dashboard, the
CLI, the runner and the tests import from `analyzer.report`):

- `run`: `load_run` -> `RunData` (what a report reads from a run directory) and the budget
  percentile's column and label;
- `answer`: which levels meet a budget, capacities under it, the chosen config and why
  (`answer_at` -> `Answer`), in words for people; the planner's arithmetic;
- `data`: figure data as typed NamedTuples (`pareto_data` -> `ParetoInfo`, ...), testable
  without drawing;
- `search_figures`, `detail_figures`: the Plotly figures drawn from that data (the search's:
  Pareto, load curves, heatmap; the closer looks: breakdown, resources, confirmation round,
  timeline), and `figures`: `all_figures`, every figure of a run by name;
- `page`: the HTML page (`render_html`, `write_report`).

Works on a run directory that is still being written: whatever rows exist are shown.
"""

from __future__ import annotations

from analyzer.judge.confirm_stats import confirm_rows, search_rows
from analyzer.report.answer import (
    Answer,
    answer_at,
    capacity_text,
    capacity_under_budget,
    choose_at_budget,
    confirmed_text,
    cost_per_million,
    fmt_rps,
    is_sweep_budget,
    level_meets,
    replicas_needed,
    tie_set_sentence,
)
from analyzer.report.data import (
    STEP_COLUMNS,
    ConfirmationInfo,
    ConfirmedConfig,
    CurveInfo,
    HeatmapPanel,
    ParetoInfo,
    ParetoPoint,
    ResourcesInfo,
    TimelineInfo,
    breakdown_data,
    capacity_row,
    chosen_timeline,
    confirmation_data,
    heatmap_data,
    load_curves_data,
    pareto_data,
    resources_data,
    step_cells,
    step_rows,
)
from analyzer.report.detail_figures import (
    breakdown_figure,
    confirmation_figure,
    resources_figure,
    timeline_figure,
)
from analyzer.report.figures import all_figures
from analyzer.report.page import (
    client_bound_html,
    configs_table,
    render_html,
    steps_html,
    targets_html,
    write_report,
)
from analyzer.report.run import RunData, latency_label, load_run, read_run_spec
from analyzer.report.search_figures import heatmap_figure, load_curves_figure, log_ticks, pareto_figure

__all__ = [
    "STEP_COLUMNS",
    "Answer",
    "ConfirmationInfo",
    "ConfirmedConfig",
    "CurveInfo",
    "HeatmapPanel",
    "ParetoInfo",
    "ParetoPoint",
    "ResourcesInfo",
    "RunData",
    "TimelineInfo",
    "all_figures",
    "answer_at",
    "breakdown_data",
    "breakdown_figure",
    "capacity_row",
    "capacity_text",
    "capacity_under_budget",
    "choose_at_budget",
    "chosen_timeline",
    "client_bound_html",
    "configs_table",
    "confirm_rows",
    "confirmation_data",
    "confirmation_figure",
    "confirmed_text",
    "cost_per_million",
    "fmt_rps",
    "heatmap_data",
    "heatmap_figure",
    "is_sweep_budget",
    "latency_label",
    "level_meets",
    "load_curves_data",
    "load_curves_figure",
    "load_run",
    "log_ticks",
    "pareto_data",
    "pareto_figure",
    "read_run_spec",
    "render_html",
    "replicas_needed",
    "resources_data",
    "resources_figure",
    "search_rows",
    "step_cells",
    "step_rows",
    "steps_html",
    "targets_html",
    "tie_set_sentence",
    "timeline_figure",
    "write_report",
]
