"""The report honours the sweep's percentile and judges rows by the one budget rule
(capacity.row_verdict): a p95 sweep is judged, drawn and labelled on p95_ms."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from analyzer.judge.verdict import row_verdict
from analyzer.report import (
    capacity_under_budget,
    choose_at_budget,
    latency_label,
    level_meets,
    load_curves_data,
    load_curves_figure,
    load_run,
    pareto_data,
    pareto_figure,
    render_html,
)
from analyzer.schema import percentile_field
from tests.builders import C95, M95, m95, write_run


def test_level_meets_is_row_verdict_on_every_row() -> None:
    rows = pd.DataFrame(
        [
            m95("x", 1, 1, 100, 4.0, 6.0),  # meets a 5 ms p95 budget
            m95("x", 1, 2, 100, 4.0, 6.0, budget_bound_ms=5.5),  # claim not proven at 5 ms
            m95("x", 1, 3, 100, 4.0, 6.0, errors=2),
            m95("x", 1, 4, 100, 4.0, 6.0, stable=False),
            m95("x", 1, 5, 100, 4.8, 7.0, over_bound_ms=5.2),  # proven over 5 ms
            m95(
                "x", 1, 6, 100, 4.0, 4.5, budget_bound_ms=math.nan, p99_ci_high_ms=4.7
            ),  # older row: p99's interval
            m95(
                "x", 1, 7, 100, 4.0, 4.5, budget_bound_ms=math.nan, p99_ci_high_ms=math.nan, requests=50
            ),  # too few for p95
            m95("x", 1, 8, 100, 4.0, 4.5, stable="True"),  # as read back from a CSV
        ]
    )
    for percentile in (95.0, 99.0):
        for budget in (3.0, 5.0, 8.0):
            expected = [row_verdict(r, budget, percentile, 0.95).meets for _, r in rows.iterrows()]
            assert level_meets(rows, budget, percentile, 0.95).tolist() == expected
    # Not a vacuous agreement: the rows get both answers.
    assert level_meets(rows, 5.0, 95.0).tolist() == [True, False, False, False, False, True, False, True]
    assert level_meets(rows.iloc[0:0], 5.0).empty


def test_a_p95_run_judges_p95() -> None:
    caps95 = capacity_under_budget(M95, 5.0, percentile=95).set_index("config_id")
    assert caps95.loc["a", "capacity_rps"] == 300 and caps95.loc["a", "latency_ms"] == 4.0
    assert caps95.loc["a", "p99_ms"] == 12.0  # kept for the sweep's tie-breaker
    caps99 = capacity_under_budget(M95, 5.0, percentile=99).set_index("config_id")
    assert caps99.loc["a", "capacity_rps"] == 180 and caps99.loc["a", "latency_ms"] == 3.0
    assert choose_at_budget(M95, C95, 5.0, percentile=95)["config_id"] == "a"
    assert choose_at_budget(M95, C95, 5.0, percentile=99)["config_id"] == "b"


def test_labels_name_the_column_shown() -> None:
    assert [percentile_field(q) for q in (50, 90, 95, 99)] == ["p50_ms", "p90_ms", "p95_ms", "p99_ms"]
    assert latency_label(95.0) == "p95"
    # A percentile that is not measured is an error everywhere, never silently shown as p99.
    with pytest.raises(ValueError, match=r"99.9 is not measured; choose one of \[50, 90, 95, 99\]"):
        percentile_field(99.9)
    with pytest.raises(ValueError, match=r"percentile 97\.5 is not measured"):
        latency_label(97.5)


def test_pareto_and_curves_show_the_percentile() -> None:
    data = pareto_data(M95, 5.0, ("a", 4.0), percentile=95)
    assert data.label == "p95"
    assert [p.latency_ms for p in data.points] == [2.0, 4.0, 9.0, 1.5, 3.0]
    assert data.chosen.latency_ms == 4.0 and "p95 4.00 ms" in data.chosen.hover
    fig = pareto_figure(data)
    assert (
        fig.layout.yaxis.title.text == "p95 latency (ms)"
        and fig.layout.title.text == "Throughput vs p95 latency"
    )
    assert fig.data[0].y == (2.0, 4.0, 9.0)
    curves = load_curves_data(M95, percentile=95)
    assert curves["a"].latency_ms == [2.0, 4.0, 9.0]
    drawn = load_curves_figure(curves, "concurrency", 5.0, "p95")
    assert drawn.layout.annotations[1].text == "p95 latency" and drawn.data[1].y == (2.0, 4.0, 9.0)


def test_report_of_a_p95_run(tmp_path: Path) -> None:
    run = load_run(write_run(tmp_path / "run", M95, C95, {"finished": True}, percentile=95, budget_ms=5.0))
    assert (run.percentile, run.confidence) == (95.0, 0.99)
    page = render_html(run)
    assert "Budget: p95 &le; 5 ms" in page
    assert "<b>300 req/s</b> with p95 <b>4.00 ms</b> (budget p95 &le; 5 ms)" in page
    assert "<th>p95_ms</th>" in page  # the configs table shows the budget percentile at capacity
