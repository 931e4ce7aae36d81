"""The dashboard's page (dash-bootstrap-components): the controls in a side panel (latency
budget, knob filters), the answer as a card above tabs for the Pareto chart with the selected
config, the comparison of two configs, the confirmation round, the capacity planner and the
capacity map. Element ids are the callbacks' contract (dashboards.app wires them).

Bootstrap's stylesheet is served from dashboards/assets/ (Dash serves that folder itself), not
from a CDN: the page must look right offline and on machines that reach only package registries.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dash_bootstrap_components as dbc
from dash import dcc, html

from dashboards.callbacks import FILTERS, HIDDEN, Dashboard, filter_choices

ASSETS = Path(__file__).resolve().parent / "assets"  # bootstrap.min.css (v5.3.6, MIT) and tritune.css

FILTER_LABELS = {"counts": "Instances", "batches": "Max batch size", "delays": "Queue delay (us)"}


def _filters(board: Dashboard) -> list[Any]:
    """One checklist per knob, every value present selected (the filter callback keeps them
    following the data)."""
    present = board.options()
    groups = []
    for key, element in FILTERS:
        groups.append(
            html.Div(
                [
                    dbc.Label(FILTER_LABELS[key], html_for=element, className="fw-semibold mb-1"),
                    dbc.Checklist(
                        id=element, options=filter_choices(key, present[key]), value=present[key], inline=True
                    ),
                ],
                id=f"{element}-group",
                hidden=not present[key],
                className="mb-3",
            )
        )
    return groups


def side_panel(board: Dashboard) -> Any:
    """The controls: the latency budget and the knob filters."""
    run = board.run
    lo, hi = board.budget_range()
    return dbc.Card(
        [
            dbc.CardHeader("Controls", className="fw-semibold"),
            dbc.CardBody(
                [
                    dbc.Label(
                        f"Latency budget ({board.label}, ms)", html_for="budget", className="fw-semibold mb-1"
                    ),
                    dcc.Slider(
                        id="budget",
                        min=lo,
                        max=hi,
                        value=run.budget_ms,
                        step=0.1,
                        allow_direct_input=True,
                        marks=None,
                        tooltip={"placement": "bottom", "always_visible": False},
                        updatemode="drag",
                    ),
                    html.P(
                        f"The sweep's budget is {run.budget_ms:g} ms: move it to see what would be chosen.",
                        className="small text-body-secondary mt-2",
                    ),
                    html.Hr(),
                    *_filters(board),
                ]
            ),
        ],
        id="side-panel",
        className="side-panel",
    )


# What a chart shows until its callback has drawn it: nothing (Plotly's default is empty axes).
BLANK = {"data": [], "layout": {"xaxis": {"visible": False}, "yaxis": {"visible": False}, "height": 320}}


def _graph(element: str, **kwargs: Any) -> Any:
    return dcc.Graph(id=element, figure=BLANK, config={"displaylogo": False}, **kwargs)


def _tabs(board: Dashboard) -> Any:
    explore = [
        _graph("pareto"),
        html.H5("Selected config", className="mt-3"),
        html.P("Click a point on the chart to see its config.", className="small text-body-secondary"),
        html.Div(id="detail"),
        _graph("detail-curves"),
        _graph("detail-breakdown"),
        html.Pre(id="detail-pbtxt", className="pbtxt"),
        dbc.Button("Download config.pbtxt", id="download-button", color="primary", size="sm"),
        dcc.Download(id="download"),
    ]
    compare = [
        dbc.Row(
            [
                dbc.Col(
                    dcc.Dropdown(id=element, options=board.config_choices(), placeholder=placeholder), md=6
                )
                for element, placeholder in (("compare-a", "first config"), ("compare-b", "second config"))
            ],
            className="mb-3 g-2",
        ),
        html.Div(id="compare-table-div"),
        _graph("compare-curves", style=HIDDEN),  # drawn once two configs are picked
    ]
    planner = [
        dbc.Row(
            [
                dbc.Col(
                    dbc.InputGroup(
                        [
                            dbc.InputGroupText("Target load"),
                            dbc.Input(id="plan-target", type="number", min=0, value=10000),
                            dbc.InputGroupText("req/s"),
                        ]
                    ),
                    md=6,
                ),
                dbc.Col(
                    dbc.InputGroup(
                        [
                            dbc.InputGroupText("Price per server-hour"),
                            dbc.Input(id="plan-price", type="number", min=0, placeholder="optional"),
                        ]
                    ),
                    md=6,
                ),
            ],
            className="mb-3 g-2",
        ),
        html.Div(id="plan"),
    ]
    tab = {"className": "pt-3"}
    return dbc.Tabs(
        [
            dbc.Tab(explore, label="Pareto and config", tab_id="tab-explore", **tab),
            dbc.Tab(compare, label="Compare", tab_id="tab-compare", **tab),
            dbc.Tab(_graph("confirm-figure"), label="Confirmation round", tab_id="tab-confirm", **tab),
            dbc.Tab(planner, label="Capacity planner", tab_id="tab-plan", **tab),
            dbc.Tab(
                [_graph("heatmap"), _graph("resources")],
                label="Capacity map and resources",
                tab_id="tab-map",
                **tab,
            ),
        ],
        id="tabs",
        active_tab="tab-explore",
    )


def layout(board: Dashboard) -> Any:
    """The whole page for a run."""
    run = board.run
    return dbc.Container(
        [
            dcc.Interval(id="tick", interval=2000),
            dcc.Store(id="version"),
            dcc.Store(id="chosen"),
            dcc.Store(id="detail-id"),
            html.Header(
                [
                    html.H2(f"tritune: {run.model}", className="mb-0"),
                    html.P(
                        f"Run {run.dir.name}: sweep budget {board.label} <= {run.budget_ms:g} ms, strategy "
                        f"{run.strategy}.",
                        className="text-body-secondary mb-0",
                    ),
                ],
                className="py-3",
            ),
            dbc.Row(
                [
                    dbc.Col(side_panel(board), lg=3, className="mb-3"),
                    dbc.Col([html.Div(id="answer"), _tabs(board)], lg=9),
                ]
            ),
        ],
        fluid=True,
        className="pb-4",
    )
