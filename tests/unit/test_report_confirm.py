"""The confirmation round in the report: confirm rows kept apart from the search's, the sweep's
confirmed choice at its own budget, the confirmation figure, capacities with their interval
and lower-bound mark, and the answer block with the tie set. Tables are built in code
(tests/builders.py: CONFIRM_MEASUREMENTS, CONFIRM_CONFIGS)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from analyzer.judge.choose import choice
from analyzer.judge.confirm_stats import confirmation_stats
from analyzer.report import (
    ConfirmationInfo,
    RunData,
    all_figures,
    answer_at,
    breakdown_data,
    capacity_text,
    capacity_under_budget,
    choose_at_budget,
    configs_table,
    confirm_rows,
    confirmation_data,
    confirmation_figure,
    heatmap_data,
    level_meets,
    load_curves_data,
    load_run,
    pareto_data,
    render_html,
    search_rows,
    tie_set_sentence,
)
from tests.builders import BUDGET, CONFIRM_CONFIGS, CONFIRM_MEASUREMENTS, write_run

MEASUREMENTS = CONFIRM_MEASUREMENTS
CONFIGS = CONFIRM_CONFIGS
SUMMARY = {"finished": True, "stopped_reason": "reached max_trials (3)", "wall_s": 42.0}


def run_data(
    measurements: pd.DataFrame = MEASUREMENTS, configs: pd.DataFrame = CONFIGS, percentile: float = 99.0
) -> RunData:
    """A RunData over tables built in code (nothing on disk)."""
    return RunData(
        dir=Path("run"),
        model="m",
        budget_ms=BUDGET,
        percentile=percentile,
        confidence=0.99,
        strategy="grid",
        measurements=measurements.copy(),
        configs=configs.copy(),
        summary=dict(SUMMARY),
        best_pbtxt="max_batch_size: 8",
    )


# -- rows of the two phases -----------------------------------------------------------------------


def test_confirm_rows_are_kept_apart_from_the_search() -> None:
    assert len(search_rows(MEASUREMENTS)) == 7 and len(confirm_rows(MEASUREMENTS)) == 9
    legacy = MEASUREMENTS.drop(columns=["phase"])  # runs older than the column: all search
    assert len(search_rows(legacy)) == len(legacy) and confirm_rows(legacy).empty


def test_confirm_rows_feed_no_capacity_point_curve_or_breakdown() -> None:
    # i2_b8's confirmation rounds reached 1040 req/s at level 8; its search capacity stays 1030.
    caps = capacity_under_budget(MEASUREMENTS, BUDGET).set_index("config_id")
    assert caps.loc["i2_b8", "capacity_rps"] == 1030 and caps.loc["i1_b8", "capacity_rps"] == 1000
    assert len(pareto_data(MEASUREMENTS, BUDGET).points) == 7
    assert load_curves_data(MEASUREMENTS)["i2_b8"].throughput_rps == [800, 1030, 1300]
    assert breakdown_data(MEASUREMENTS, CONFIGS).set_index("config_id").loc["i2_b8", "avg_batch_size"] == 4.0


# -- the answer -----------------------------------------------------------------------------------


def test_at_the_sweeps_budget_the_answer_is_the_confirmed_choice() -> None:
    run = run_data()
    answer = answer_at(run)
    best, tie_set, reason = choice(CONFIGS, MEASUREMENTS, 99)
    assert answer.at_sweep_budget and answer.confirmed
    assert answer.best["config_id"] == best["config_id"] == "i1_b8"
    assert answer.tie_set == tie_set == ["i1_b8", "i2_b8"] and answer.reason == reason
    assert answer.best["latency_ms"] == 8.0  # p99 at its capacity level, from the search row
    # The search-only rule would have picked another config: the answer is not that rule's.
    assert choose_at_budget(MEASUREMENTS, CONFIGS, BUDGET)["config_id"] == "i2_b8"


def test_at_another_budget_the_answer_falls_back_to_the_search_capacities() -> None:
    run = run_data()
    answer = answer_at(run, 15.0)
    assert not answer.at_sweep_budget and not answer.confirmed
    assert answer.best["config_id"] == "i2_b8" and answer.best["capacity_rps"] == 1300  # level 16 meets 15 ms
    assert answer.tie_set == ["i1_b8", "i2_b8"]  # still the sweep's, shown as such
    assert "confirmation round ran at the sweep's budget only" in answer.reason
    assert answer_at(run, 4.0).best is None


def test_a_lower_bound_holds_at_another_budget_only_at_the_same_level() -> None:
    m = MEASUREMENTS[MEASUREMENTS["config_id"] == "i1_b8"]
    c = CONFIGS[CONFIGS["config_id"] == "i1_b8"].assign(
        capacity_lower_bound=True
    )  # met 10 ms at the cap, level 8
    assert bool(choose_at_budget(m, c, 12.0)["capacity_lower_bound"]) is True  # still level 8
    tighter = choose_at_budget(m, c, 6.5)  # level 4: a measured capacity, not a bound
    assert tighter["capacity_level"] == 4 and bool(tighter["capacity_lower_bound"]) is False


def test_capacity_text() -> None:
    confirmed = pd.Series(
        {
            "capacity_rps": 3200.0,
            "confirmed_rps": 3120.0,
            "capacity_ci_rps": [2980.0, 3260.0],
            "confirm_rounds": 3,
            "capacity_lower_bound": False,
        }
    )
    assert capacity_text(confirmed) == "3,120 req/s (95 % CI 2,980..3,260, 3 rounds)"
    at_cap = confirmed.copy()
    at_cap["capacity_lower_bound"] = True
    assert capacity_text(at_cap) == "≥ 3,120 req/s (95 % CI 2,980..3,260, 3 rounds)"
    one = pd.Series(
        {
            "capacity_rps": 50.0,
            "confirmed_rps": 48.25,
            "capacity_ci_rps": [-math.inf, math.inf],
            "confirm_rounds": 1,
        }
    )
    assert capacity_text(one) == "48.2 req/s (1 round: too few for an interval)"
    assert (
        capacity_text(pd.Series({"capacity_rps": 1030.0, "capacity_lower_bound": "True"})) == "≥ 1,030 req/s"
    )
    assert (
        capacity_text(pd.Series({"capacity_rps": 1030.0, "capacity_lower_bound": math.nan})) == "1,030 req/s"
    )


def test_tie_set_sentence() -> None:
    assert "no tie set" in tie_set_sentence([], None)
    assert "No other confirmed config" in tie_set_sentence(["a"], "a")
    two = tie_set_sentence(["a", "b"], "a")
    assert "within noise of each other" in two and "the cheapest of them: a" in two


# -- the confirmation figure ----------------------------------------------------------------------


def test_confirmation_data() -> None:
    data = confirmation_data(MEASUREMENTS, CONFIGS, ["i1_b8", "i2_b8"], "i1_b8")
    items = {it.config_id: it for it in data.configs}
    assert [it.config_id for it in data.configs] == ["i2_b8", "i1_b8", "i1_b32"]  # highest mean first
    assert data.reference == "i2_b8" and data.tie_set == ["i1_b8", "i2_b8"]
    assert items["i1_b8"].samples == [980, 1000, 990] and items["i1_b8"].rounds == [1, 2, 3]
    assert items["i1_b8"].met == [True, True, True]
    stats = confirmation_stats(MEASUREMENTS).set_index("config_id")
    assert items["i2_b8"].mean_rps == stats.loc["i2_b8", "capacity_rps"]
    assert items["i2_b8"].ci_low_rps < items["i2_b8"].mean_rps < items["i2_b8"].ci_high_rps
    assert items["i2_b8"].search_rps == 1030
    assert [it.in_tie_set for it in data.configs] == [True, True, False]
    assert [it.chosen for it in data.configs] == [False, True, False]
    assert [it.lower_bound for it in data.configs] == [False, False, True]
    assert confirmation_data(MEASUREMENTS.drop(columns=["phase"]), CONFIGS, [], None).configs == []


def test_confirmation_data_marks_rounds_that_missed_the_budget() -> None:
    m = MEASUREMENTS.copy()
    missed = (m["config_id"] == "i1_b32") & (m["confirm_round"] == 2)
    m.loc[missed, "meets_budget"] = False
    data = confirmation_data(m, CONFIGS, ["i1_b8", "i2_b8"], "i1_b8")
    assert data.configs[2].met == [True, False, True]


def test_confirmation_figure() -> None:
    data = confirmation_data(MEASUREMENTS, CONFIGS, ["i1_b8", "i2_b8"], "i1_b8")
    fig = confirmation_figure(data)
    traces = {t.name: t for t in fig.data}
    assert list(traces) == [
        "round sample",
        "mean, 95 % CI: tie set",
        "mean, 95 % CI: outside the tie set",
        "search capacity (one measurement)",
        "chosen: i1_b8",
    ]
    assert len(traces["round sample"].y) == 9
    tied = traces["mean, 95 % CI: tie set"]
    means = {it.config_id: it for it in data.configs}
    ref = means["i2_b8"]
    assert tied.y[0] == ref.mean_rps
    assert tied.error_y.array[0] == ref.ci_high_rps - ref.mean_rps
    assert tied.error_y.arrayminus[0] == ref.mean_rps - ref.ci_low_rps
    # The reference's interval is drawn as a band: overlapping it is what puts a config in the tie set.
    band = fig.layout.shapes[0]
    assert (band.y0, band.y1) == (ref.ci_low_rps, ref.ci_high_rps)
    assert list(fig.layout.xaxis.ticktext) == ["<b>i2_b8</b>", "<b>i1_b8</b>", "≥ i1_b32"]
    assert "tie set: i1_b8, i2_b8" in fig.layout.title.text
    empty = confirmation_figure(ConfirmationInfo(configs=[], reference=None, tie_set=[]))
    assert not empty.data and "No confirmation round" in empty.layout.annotations[0].text


# -- tables and the page --------------------------------------------------------------------------


def test_configs_table_marks_lower_bounds_and_confirmed_capacities() -> None:
    table = configs_table(run_data()).set_index("config_id")
    assert (
        table.loc["i1_b32", "capacity_rps"] == "≥ 700.00" and table.loc["i2_b8", "capacity_rps"] == "1030.00"
    )
    assert table.loc["i1_b8", "confirmed_rps"].startswith("990 (") and table.loc[
        "i1_b8", "confirmed_rps"
    ].endswith("3/3 met")
    assert table["tie_set"].tolist() == [
        "yes",
        "chosen",
        "",
    ]  # sorted by search capacity: i2_b8, i1_b8, i1_b32
    heat = heatmap_data(CONFIGS)[1]
    assert heat.lower_bound[heat.max_batch_size.index(32)][0] is True


def test_report_answer_block_with_a_confirmation_round(tmp_path: Path) -> None:
    summary = dict(SUMMARY, tie_set=["i1_b8", "i2_b8"], choice_reason=choice(CONFIGS, MEASUREMENTS, 99)[2])
    run = load_run(write_run(tmp_path / "run", MEASUREMENTS, CONFIGS, summary))
    assert len(confirm_rows(run.measurements)) == 9  # the phase column survives the round trip
    page = render_html(run)
    answer = page[
        page.index("<div class='answer'>") : page.index("</div>", page.index("<div class='answer'>"))
    ]
    stats = confirmation_stats(MEASUREMENTS).set_index("config_id").loc["i1_b8"]
    assert "Best config: i1_b8" in answer
    assert f"990 req/s (95 % CI {stats['ci_low_rps']:,.0f}..{stats['ci_high_rps']:,.0f}, 3 rounds)" in answer
    assert "<span id='tie-set'><code>i1_b8</code>, <code>i2_b8</code></span>" in answer
    assert "within noise of each other" in answer and "the cheapest of them: i1_b8" in answer
    assert "Search stopped: reached max_trials (3)." in answer
    assert "The search measured 1,000 req/s at that level" in answer
    assert "<section id='confirm'>" in page and "9 confirmation re-measurements" in page


def test_report_answer_block_marks_a_lower_bound(tmp_path: Path) -> None:
    only = CONFIGS[CONFIGS["config_id"] == "i1_b32"]
    m = MEASUREMENTS[MEASUREMENTS["config_id"] == "i1_b32"]
    page = render_html(load_run(write_run(tmp_path / "run", m, only, dict(SUMMARY))))
    assert (
        "<b>≥ 700 req/s (95 % CI" in page
        and "the spec's load cap, load.max_level, or the load generator's limit" in page
    )
    assert "No other confirmed config is within noise of its capacity." in page


def test_level_meets_on_confirm_rows_agrees_with_their_stored_verdicts() -> None:
    m = MEASUREMENTS.copy()
    over = (m["config_id"] == "i1_b8") & (m["confirm_round"] == 3)
    m.loc[over, ["p99_ms", "budget_bound_ms", "over_bound_ms", "meets_budget"]] = [13.0, 13.5, 12.0, False]
    assert level_meets(m, BUDGET).tolist() == m["meets_budget"].astype(bool).tolist()


def test_all_figures_include_the_confirmation_round_only_when_there_was_one() -> None:
    assert list(all_figures(run_data())) == [
        "pareto",
        "confirm",
        "curves",
        "breakdown",
        "heatmap",
        "resources",
    ]
    legacy = run_data(
        MEASUREMENTS[MEASUREMENTS["phase"] == "search"].drop(columns=["phase", "confirm_round"])
    )
    assert "confirm" not in all_figures(legacy)


def test_report_warns_when_best_pbtxt_is_another_configs() -> None:
    warning = "does not hold the knobs of i1_b8"
    stale = run_data()  # best_pbtxt "max_batch_size: 8": no dynamic batching, the pick has delay 0
    assert warning in render_html(stale)
    fresh = run_data()
    fresh.best_pbtxt = "max_batch_size: 8\ndynamic_batching { max_queue_delay_microseconds: 0 }\n"
    assert warning not in render_html(fresh)
