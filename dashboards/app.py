"""The interactive report of a run directory: `create_app(run_dir) -> dash.Dash`.

A latency-budget slider recomputes live which configs meet it and the best one (at the sweep's
own budget: the sweep's confirmed choice and its tie set, as in summary.json); filters narrow
the configs shown; clicking a point opens its config (load curve, server breakdown, config.pbtxt
with a download button); two configs can be compared side by side; a planner turns a target
load into server replicas and cost. The page re-reads the run directory when its files change,
so it follows a sweep that is still running, filters included.

The modules: `data` reads the run (through RunStore), `callbacks` answers the page's questions
(`Dashboard`, plain methods that tests call directly), `views` draws the result pieces,
`layout` builds the page; this one only wires the callbacks to the layout.
"""

from __future__ import annotations

from pathlib import Path

import dash
from dash import Input, Output, State

from dashboards.callbacks import FILTERS, Dashboard
from dashboards.layout import ASSETS, layout


def create_app(run_dir: str | Path) -> dash.Dash:
    """The Dash app for a run directory (UsageError when it is missing or malformed)."""
    board = Dashboard(run_dir)
    app = dash.Dash(__name__, title=f"tritune: {board.run.model}", assets_folder=str(ASSETS))
    app.layout = layout(board)
    app.board = board  # type: ignore[attr-defined]  # tests reach the callbacks through it
    version = Input("version", "data")
    filters = [
        Input("budget", "value"),
        Input("f-count", "value"),
        Input("f-batch", "value"),
        Input("f-delay", "value"),
        version,
    ]
    app.callback(Output("version", "data"), Input("tick", "n_intervals"), State("version", "data"))(
        board.on_tick
    )
    app.callback(
        *[Output(element, prop) for _, element in FILTERS for prop in ("options", "value")],
        *[Output(f"{element}-group", "hidden") for _, element in FILTERS],
        version,
        *[State(element, "value") for _, element in FILTERS],
        *[State(element, "options") for _, element in FILTERS],
    )(board.filter_options)
    app.callback(Output("budget", "min"), Output("budget", "max"), version)(board.budget_bounds)
    app.callback(
        Output("answer", "children"), Output("pareto", "figure"), Output("chosen", "data"), *filters
    )(board.answer)
    app.callback(
        Output("detail", "children"),
        Output("detail-curves", "figure"),
        Output("detail-breakdown", "figure"),
        Output("detail-pbtxt", "children"),
        Output("detail-id", "data"),
        Input("pareto", "clickData"),
        Input("chosen", "data"),
        Input("budget", "value"),
        version,
    )(board.detail)
    app.callback(
        Output("download", "data"),
        Input("download-button", "n_clicks"),
        State("detail-id", "data"),
        prevent_initial_call=True,
    )(board.download)
    app.callback(
        Output("compare-table-div", "children"),
        Output("compare-curves", "figure"),
        Output("compare-curves", "style"),
        Input("compare-a", "value"),
        Input("compare-b", "value"),
        Input("budget", "value"),
        version,
    )(board.compare_view)
    app.callback(
        Output("plan", "children"),
        Input("plan-target", "value"),
        Input("plan-price", "value"),
        Input("chosen", "data"),
        Input("budget", "value"),
        version,
    )(board.plan)
    app.callback(Output("heatmap", "figure"), Output("resources", "figure"), version)(board.static_figures)
    app.callback(Output("confirm-figure", "figure"), version)(board.confirmation)
    app.callback(Output("compare-a", "options"), version)(board.config_choices)
    app.callback(Output("compare-b", "options"), version)(board.config_choices)
    return app
