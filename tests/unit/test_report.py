"""Report figure data on plain tables, the planner arithmetic, and the HTML report of a
recorded run directory."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from analyzer.errors import UsageError
from analyzer.report import (
    breakdown_data,
    capacity_under_budget,
    choose_at_budget,
    cost_per_million,
    heatmap_data,
    level_meets,
    load_curves_data,
    load_run,
    log_ticks,
    pareto_data,
    pareto_figure,
    replicas_needed,
    resources_data,
    write_report,
)
from analyzer.spec.spec import SweepSpec

RECORDED = Path(__file__).resolve().parents[1] / "data" / "run_demo"


def _m(
    config_id: str,
    level: float,
    tp: float,
    p99: float,
    inst: int = 1,
    batch: int = 8,
    delay: float = 0,
    errors: int = 0,
    stable: bool = True,
    ci_high: float | None = None,
    requests: int = 3000,
) -> dict:
    return {
        "config_id": config_id,
        "instance_count": inst,
        "max_batch_size": batch,
        "max_queue_delay_us": delay,
        "load_mode": "concurrency",
        "load_level": level,
        "throughput_rps": tp,
        "p99_ms": p99,
        "p99_ci_high_ms": p99 * 1.05 if ci_high is None else ci_high,
        "requests": requests,
        "errors": errors,
        "stable": stable,
        "server_queue_ms": 0.5,
        "server_compute_input_ms": 0.1,
        "server_compute_infer_ms": 1.0,
        "server_compute_output_ms": 0.2,
        "avg_batch_size": level / 2,
        "server_cpu_pct": 100.0 + level,
        "server_rss_mb": 80.0,
        "gpu_util_pct": math.nan,
        "gpu_mem_mb": math.nan,
    }


M = pd.DataFrame(
    [
        _m("a", 1, 100, 2.0),
        _m("a", 2, 180, 4.0),
        _m("a", 4, 300, 9.0),
        _m("a", 8, 320, 20.0),
        _m("b", 1, 90, 1.0, inst=2),
        _m("b", 2, 170, 2.0, inst=2),
        _m("b", 4, 250, 4.0, inst=2),
        _m("c", 2, 500, 3.0, batch=32, errors=5),
    ]
)
C = pd.DataFrame(
    [
        {
            "config_id": "a",
            "instance_count": 1,
            "max_batch_size": 8,
            "max_queue_delay_us": 0,
            "status": "ok",
            "capacity_rps": 300.0,
            "capacity_level": 4.0,
            "p99_ms": 9.0,
            "load_mode": "concurrency",
        },
        {
            "config_id": "b",
            "instance_count": 2,
            "max_batch_size": 8,
            "max_queue_delay_us": 0,
            "status": "ok",
            "capacity_rps": 250.0,
            "capacity_level": 4.0,
            "p99_ms": 4.0,
            "load_mode": "concurrency",
        },
        {
            "config_id": "c",
            "instance_count": 1,
            "max_batch_size": 32,
            "max_queue_delay_us": math.nan,
            "status": "failed",
            "capacity_rps": 0.0,
            "capacity_level": math.nan,
            "p99_ms": math.nan,
            "load_mode": "concurrency",
        },
    ]
)


def test_budget_moves_the_choice() -> None:
    assert choose_at_budget(M, C, 10.0)["config_id"] == "a"  # 300 req/s at p99 9 ms
    assert choose_at_budget(M, C, 5.0)["config_id"] == "b"  # a only reaches 180 under 5 ms
    assert choose_at_budget(M, C, 0.5) is None
    caps = capacity_under_budget(M, 5.0).set_index("config_id")
    assert caps.loc["a", "capacity_rps"] == 180 and caps.loc["a", "capacity_level"] == 2
    assert caps.loc["c", "capacity_rps"] == 0  # errors never meet a budget


def test_level_meets_needs_trust() -> None:
    rows = pd.DataFrame(
        [
            _m("x", 1, 10, 4.0),  # fine
            _m("x", 2, 10, 4.0, stable=False),  # unstable
            _m("x", 4, 10, 4.0, ci_high=6.0),  # upper bound over a 5 ms budget
            _m("x", 8, 10, 4.0, ci_high=math.nan, requests=100),  # too few requests to tell
            _m("x", 16, 10, 4.0, ci_high=math.nan, requests=600),
        ]
    )
    assert level_meets(rows, 5.0).tolist() == [True, False, False, False, True]


def test_level_meets_uses_the_sweeps_claim_bound_where_stored() -> None:
    rows = pd.DataFrame(
        [
            _m("x", 1, 10, 4.0, ci_high=4.5),
            _m("x", 2, 10, 4.0, ci_high=4.5),
            _m("x", 4, 10, 4.0, ci_high=4.5),
            _m("x", 8, 10, 4.0, ci_high=4.5),
        ]
    )
    # The sweep's bound: under the budget; over it though the 95 % interval is not; too few
    # requests for any claim; not stored (a row from an older tritune: the interval decides).
    rows["budget_bound_ms"] = [4.8, 5.5, math.inf, math.nan]
    assert level_meets(rows, 5.0).tolist() == [True, False, False, True]
    assert level_meets(rows, 6.0).tolist() == [True, True, False, True]


def test_pareto_data_points_frontier_and_chosen() -> None:
    data = pareto_data(M, 10.0, ("a", 4.0))
    assert len(data.points) == 7  # the measurement with errors is left out
    assert data.budget_ms == 10.0
    assert data.chosen.config_id == "a" and data.chosen.throughput_rps == 300
    # b@1 (90, 1.0), b@2 (170, 2.0), b@4 (250, 4.0), a@4 (300, 9.0), a@8 (320, 20.0)
    assert data.frontier == [(90.0, 1.0), (170.0, 2.0), (250.0, 4.0), (300.0, 9.0), (320.0, 20.0)]
    assert "instances 2, max batch 8" in data.points[4].hover


def test_pareto_log_axis_ticks_are_whole_numbers() -> None:
    assert log_ticks(0.8, 18) == [1, 2, 5, 10]
    assert log_ticks(5.5, 60) == [6, 7, 8, 9, 10, 20, 30, 40, 50, 60]  # 1-2-5 would give only 10, 20, 50
    assert log_ticks(0.0, 10) == []
    fig = pareto_figure(pareto_data(M, 10.0))  # p99 from 1 to 20 ms, budget 10 ms
    assert list(fig.layout.yaxis.ticktext) == ["1", "2", "5", "10", "20"]


def test_unstable_points_are_shown_but_not_on_the_frontier() -> None:
    rows = pd.DataFrame([_m("a", 1, 100, 2.0), _m("a", 2, 400, 1.0, stable=False), _m("a", 4, 300, 3.0)])
    data = pareto_data(rows, 10.0)
    assert [p.trusted for p in data.points] == [True, False, True]
    assert data.frontier == [(100.0, 2.0), (300.0, 3.0)]


def test_curves_breakdown_heatmap_resources() -> None:
    curves = load_curves_data(M)
    assert curves["a"].level == [1, 2, 4, 8] and curves["a"].throughput_rps == [100, 180, 300, 320]
    bd = breakdown_data(M, C).set_index("config_id")
    assert bd.loc["a", "load_level"] == 4 and bd.loc["c", "load_level"] == 2  # c failed: its highest level
    heat = heatmap_data(C)
    assert set(heat) == {1, 2}
    one = heat[1]
    assert one.max_batch_size == [8, 32] and one.max_queue_delay_us == ["off", "0"]
    assert one.capacity_rps[0][1] == 300 and math.isnan(one.capacity_rps[1][0])  # failed -> NaN
    res = resources_data(M)
    assert res.throughput_rps == sorted(res.throughput_rps) and res.gpu_util_pct == []


def test_planner_arithmetic() -> None:
    assert replicas_needed(1000, 300) == 4
    assert replicas_needed(900, 300) == 3
    assert replicas_needed(0, 300) == 0
    with pytest.raises(ValueError):
        replicas_needed(10, 0)
    # 4 servers at 2.0/h serving 1000 req/s: 8.0 per 3.6 M inferences
    assert cost_per_million(1000, 4, 2.0) == pytest.approx(8.0 / 3.6)


def test_report_of_a_recorded_run(tmp_path: Path) -> None:
    import shutil

    run = tmp_path / "run"
    shutil.copytree(RECORDED, run)
    data = load_run(run)
    assert data.model == "demo_mlp" and not data.measurements.empty
    path = write_report(run)
    text = path.read_text()
    assert text.startswith("<!DOCTYPE html>") and "Best config:" in text
    # Self-contained: plotly.js is inlined, no script is fetched from anywhere.
    assert "Plotly.newPlot" in text and len(text) > 1_000_000
    assert '<script src="http' not in text and "<script src='http" not in text
    best = data.summary["best"]["config_id"]
    assert best in text and "max_batch_size" in text
    # An older run: the search's choice, no confirmation round, best/ config.pbtxt is the pick's.
    assert f"Best config: {best}" in text and "No confirmation round (yet)" in text
    assert "<section id='confirm'>" not in text and "does not hold the knobs" not in text
    assert "Search stopped: reached max_trials (8)." in text


def test_report_of_a_run_still_being_written(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "spec.yaml").write_text("model: m\nbudget_ms: 5\n")
    path = write_report(run)
    assert "No config met the budget of 5 ms (yet)" in path.read_text()


def test_not_a_run_directory(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not a tritune run directory"):
        load_run(tmp_path)
    with pytest.raises(UsageError, match="is not a directory"):
        load_run(tmp_path / "missing")


def test_a_runs_spec_is_read_by_spec_py_and_needs_no_server(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    # A partial spec whose model repository is gone (a run directory copied to another machine).
    (run / "spec.yaml").write_text("model: m\nmodel_repository: /nowhere/models\npercentile: 95\n")
    data = load_run(run)
    defaults = SweepSpec(model="m")
    assert (data.model, data.percentile) == ("m", 95.0)
    assert (data.budget_ms, data.confidence, data.strategy) == (
        defaults.budget_ms,
        defaults.confidence,
        defaults.strategy,
    )
    (run / "spec.yaml").write_text("model: m\nbudget_ms: -1\n")
    with pytest.raises(UsageError, match="budget_ms"):
        load_run(run)
    (run / "spec.yaml").write_text("")
    with pytest.raises(UsageError, match=r"spec\.yaml"):
        load_run(run)


def test_a_run_played_against_a_trace_file_that_is_gone_still_reports(tmp_path: Path) -> None:
    from analyzer.spec.spec import SpecError, load_spec

    run = tmp_path / "run"
    run.mkdir()
    trace = tmp_path / "trace.txt"
    trace.write_text("0.5\n0.5\n")
    (run / "spec.yaml").write_text(
        f"model: m\nmodel_repository: /nowhere\nload:\n  schedule: trace:{trace}\n"
    )
    assert load_run(run).model == "m"
    trace.unlink()  # the run directory was copied to another machine, or the trace deleted
    assert load_run(run).model == "m"
    # A sweep still needs the file: only a recorded run's spec skips it.
    with pytest.raises(SpecError, match=r"load\.schedule"):
        load_spec(run / "spec.yaml", url="127.0.0.1:1")


def test_a_level_proven_over_after_one_window_is_not_drawn_as_untrusted() -> None:
    rows = pd.DataFrame(
        [_m("a", 4, 300, 9.0), _m("a", 16, 320, 40.0, stable=False), _m("a", 8, 310, 12.0, stable=False)]
    )
    rows["verdict_proven"] = [True, True, False]  # 16 was proven over the budget at once; 8 proved nothing
    points = {p.load_level: p.trusted for p in pareto_data(rows, 10.0).points}
    assert points == {4.0: True, 16.0: True, 8.0: False}


def test_client_bound_levels_are_named_with_the_fix_and_kept_off_the_frontier() -> None:
    import pandas as pd

    from analyzer.report import client_bound_html, pareto_data

    rows = pd.DataFrame(
        [
            {
                "config_id": "i1_b8",
                "instance_count": 1,
                "max_batch_size": 8,
                "max_queue_delay_us": 0,
                "load_mode": "rate",
                "load_level": 1000.0,
                "throughput_rps": 1000.0,
                "p99_ms": 5.0,
                "errors": 0,
                "stable": True,
                "verdict_proven": True,
                "client_bound": False,
                "client_bound_reason": "",
            },
            {
                "config_id": "i1_b8",
                "instance_count": 1,
                "max_batch_size": 8,
                "max_queue_delay_us": 0,
                "load_mode": "rate",
                "load_level": 20000.0,
                "throughput_rps": 5000.0,
                "p99_ms": 4.0,
                "errors": 0,
                "stable": True,
                "verdict_proven": True,
                "client_bound": True,
                "client_bound_reason": "requests went out 50 ms late: give more --workers",
            },
        ]
    )
    text = client_bound_html(rows)
    assert "1 level(s)" in text and "i1_b8 at rate 20000" in text and "--workers" in text
    assert client_bound_html(rows.iloc[:1]) == ""
    points = pareto_data(rows, 10.0).points
    assert [p.trusted for p in points] == [True, False]
    # The client-bound point would dominate (more throughput, less latency) if it were trusted.
    assert pareto_data(rows, 10.0).frontier == [(1000.0, 5.0)]
