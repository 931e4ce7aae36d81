"""The dashboard's pieces of page that show a result: the answer card, the tie set, the
comparison table and a pipeline's per-step table. Plain functions of the run's data; the ids
they give elements are what the tests and the browser look for.
"""

from __future__ import annotations

import math
from typing import Any

import dash_bootstrap_components as dbc
import pandas as pd
from dash import html

from analyzer.judge.choose import pipeline_models
from analyzer.judge.confirm_stats import confirmation_stats
from analyzer.report import (
    STEP_COLUMNS,
    Answer,
    RunData,
    capacity_text,
    capacity_under_budget,
    confirmed_text,
    step_cells,
    step_rows,
    tie_set_sentence,
)
from analyzer.stats.measurement import level_text
from dashboards.data import DELAY_OFF, delay_value


def knobs_text(best: pd.Series) -> str:
    """The chosen config's knobs in words (a pipeline: each tuned model's)."""
    models = pipeline_models(best)
    if models:
        return "; ".join(
            f"{name}: instances {k['instance_count']}, max batch {k['max_batch_size']}, "
            f"queue delay {_cell(k['max_queue_delay_us'])} us"
            for name, k in models.items()
        )
    delay = best["max_queue_delay_us"]
    return (
        f"instances {int(best['instance_count'])}, max batch {int(best['max_batch_size'])}, queue delay "
        f"{'-' if delay_value(delay) == DELAY_OFF else int(delay)} us"
    )


def answer_card(run: RunData, answer: Answer, label: str, meeting: int, shown: int, filtered: bool) -> Any:
    """The answer at the slider's budget as a card: the picked config and its capacity, its
    knobs, the tie set, why it was picked, and how many of the configs shown meet the budget."""
    best = answer.best
    assert best is not None
    return dbc.Card(
        [
            dbc.CardHeader(
                html.H4(
                    [
                        "Best at ",
                        html.Span(f"{answer.budget_ms:g}", id="budget-shown"),
                        " ms: ",
                        html.Span(str(best["config_id"]), id="best-config-id"),
                    ],
                    className="mb-0",
                )
            ),
            dbc.CardBody(
                [
                    html.P(
                        [
                            html.B(capacity_text(best), id="capacity-shown"),
                            (
                                f" with {label} {float(best['latency_ms']):.2f} ms at "
                                f"{level_text(best['load_mode'], best['capacity_level'])}"
                            ),
                        ],
                        className="fs-5 mb-1",
                    ),
                    html.P(knobs_text(best), id="best-knobs", className="text-body-secondary"),
                    tie_set_panel(run, answer, filtered),
                    html.P(f"Why: {answer.reason}.", id="choice-reason"),
                    html.P(
                        f"{meeting} of {shown} configs shown meet this budget.",
                        className="small text-body-secondary mb-0",
                    ),
                ]
            ),
        ],
        id="answer-card",
        color="success",
        outline=True,
        className="answer mb-3",
    )


def miss_card(budget: float, shown: int) -> Any:
    """The answer when no config shown meets the budget."""
    return dbc.Card(
        [
            dbc.CardHeader(
                html.H4(
                    [
                        "No config meets ",
                        html.Span(f"{budget:g}", id="budget-shown"),
                        " ms",
                        html.Span("", id="best-config-id"),
                    ],
                    className="mb-0",
                )
            ),
            dbc.CardBody(html.P(f"0 of {shown} configs shown meet this budget.", className="mb-0")),
        ],
        id="answer-card",
        color="warning",
        outline=True,
        className="miss mb-3",
    )


def tie_set_panel(run: RunData, answer: Answer, filtered: bool) -> Any:
    """The tie set at the sweep's budget (element `tie-set`); at another budget a note that it
    belongs to the sweep's budget (element `tie-set-note`)."""
    ids = ", ".join(answer.tie_set)
    if not answer.at_sweep_budget:
        if not answer.tie_set:
            return html.P("")
        return html.P(
            f"The tie set ({ids}) is from the confirmation round at the sweep's budget of "
            f"{run.budget_ms:g} ms; at {answer.budget_ms:g} ms the choice is the best search "
            "capacity.",
            id="tie-set-note",
        )
    chosen = None if answer.best is None else str(answer.best["config_id"])
    sentence = tie_set_sentence(answer.tie_set, chosen)
    if filtered:
        sentence += " (Among the configs the filters show.)"
    if not answer.tie_set:
        return html.P(sentence)
    return html.P(["Tie set: ", html.B(ids, id="tie-set"), ". ", sentence], className="ties")


def _cell(value: Any, fmt: str = "{}") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return fmt.format(value)


def compare_table(run: RunData, ids: list[str], budget: float, label: str) -> Any:
    """Two (or more) configs side by side: knobs, status, capacity at `budget`, confirmation."""
    caps = capacity_under_budget(run.measurements, budget, run.percentile, run.confidence).set_index(
        "config_id"
    )
    rows = []
    for name, key in (
        ("instances", "instance_count"),
        ("max batch", "max_batch_size"),
        ("queue delay us", "max_queue_delay_us"),
        ("status", "status"),
    ):
        cells = []
        for i in ids:
            r = run.configs[run.configs["config_id"] == i]
            cells.append(html.Td(_cell(r.iloc[-1][key] if not r.empty else "-")))
        rows.append(html.Tr([html.Th(name), *cells]))
    for name, key, fmt in (
        ("capacity req/s", "capacity_rps", "{:.1f}"),
        ("at level", "capacity_level", "{:g}"),
        (f"{label} ms", "latency_ms", "{:.2f}"),
    ):
        cells = [html.Td(_cell(caps[key].get(i, math.nan) if key in caps else math.nan, fmt)) for i in ids]
        rows.append(html.Tr([html.Th(f"{name} @ {budget:g} ms"), *cells]))
    stats = confirmation_stats(run.measurements).set_index("config_id")
    if any(i in stats.index for i in ids):
        rows.append(
            html.Tr(
                [html.Th(f"confirmed req/s @ {run.budget_ms:g} ms")]
                + [html.Td(confirmed_text(stats, i) or "-") for i in ids]
            )
        )
    header = html.Thead(html.Tr([html.Th("")] + [html.Th(i) for i in ids]))
    return dbc.Table(
        [header, html.Tbody(rows)],
        bordered=True,
        hover=True,
        size="sm",
        className="compare",
        id="compare-table",
    )


def steps_table(run: RunData, row: pd.Series) -> Any:
    """A pipeline config's per-step table at its capacity level, naming the bottleneck step."""
    steps, neck = step_rows(run, row)
    if not steps:
        return html.P(
            "No per-step figures at a capacity level (the config met the budget at no level).",
            id="detail-steps",
        )
    head = html.Thead(html.Tr([html.Th("step")] + [html.Th(h) for h, _, _ in STEP_COLUMNS]))
    body = html.Tbody(
        [
            html.Tr(
                [html.Td(s["name"])] + [html.Td(c) for c in step_cells(s)],
                className="table-warning fw-bold" if s["name"] == neck else None,
            )
            for s in steps
        ]
    )
    return html.Div(
        [
            html.P(
                [
                    "Bottleneck step: ",
                    html.B(neck or "-", id="bottleneck-step"),
                    " (its instances were the busiest at the capacity level)",
                ]
            ),
            dbc.Table([head, body], bordered=True, size="sm", className="compare"),
        ],
        id="detail-steps",
    )
