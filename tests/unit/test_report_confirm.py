"""The confirmation round in the report: confirm rows kept apart from the search's, the sweep's
confirmed choice at its own budget, the confirmation figure, capacities with their interval
and lower-bound mark, and the answer block with the tie set. Tables are built here, in code.

`add_confirm_round` also gives the dashboard and browser tests a copy of the recorded (older)
run with a confirmation round appended."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from analyzer.choose import choice
from analyzer.confirm_stats import confirmation_stats
from analyzer.modelconfig import Candidate, apply_candidate, read_pbtxt, to_pbtxt
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

BUDGET = 10.0


def row(
    config_id: str,
    inst: int,
    batch: int,
    level: float,
    tp: float,
    p99: float,
    phase: str = "search",
    round_: float = math.nan,
    meets: bool | None = None,
) -> dict[str, Any]:
    """One measurements.csv row with the claim bounds a sweep stores (at p99)."""
    return {
        "config_id": config_id,
        "instance_count": inst,
        "max_batch_size": batch,
        "max_queue_delay_us": 0,
        "load_mode": "concurrency",
        "load_level": level,
        "throughput_rps": tp,
        "p50_ms": p99 / 3,
        "p90_ms": p99 / 1.6,
        "p95_ms": p99 / 1.3,
        "p99_ms": p99,
        "requests": 5000,
        "errors": 0,
        "stable": True,
        "budget_bound_ms": p99 * 1.05,
        "over_bound_ms": p99 * 0.95,
        "p99_ci_high_ms": p99 * 1.05,
        "meets_budget": p99 * 1.05 <= BUDGET if meets is None else meets,
        "phase": phase,
        "confirm_round": round_,
        "avg_batch_size": level / 2,
        "server_queue_ms": 0.5,
        "server_compute_input_ms": 0.1,
        "server_compute_infer_ms": 1.0,
        "server_compute_output_ms": 0.2,
        "server_cpu_pct": 150.0,
        "server_rss_mb": 80.0,
        "gpu_util_pct": math.nan,
        "gpu_mem_mb": math.nan,
    }


def confirms(
    config_id: str, inst: int, batch: int, level: float, samples: list[float]
) -> list[dict[str, Any]]:
    """A confirmation round of one config: its capacity level measured again, once per round."""
    return [
        row(config_id, inst, batch, level, tp, 7.0, phase="confirm", round_=i)
        for i, tp in enumerate(samples, 1)
    ]


# i2_b8 has the best search capacity; in the confirmation round i1_b8 is within noise of it and
# cheaper (one instance), so the confirmed pick differs from the search-only pick; i1_b32 is
# re-measured too but clearly below.
MEASUREMENTS = pd.DataFrame(
    [
        row("i1_b8", 1, 8, 4, 900, 5.0),
        row("i1_b8", 1, 8, 8, 1000, 8.0),
        row("i1_b8", 1, 8, 16, 1100, 14.0),
        row("i2_b8", 2, 8, 4, 800, 4.0),
        row("i2_b8", 2, 8, 8, 1030, 7.0),
        row("i2_b8", 2, 8, 16, 1300, 13.0),
        row("i1_b32", 1, 32, 8, 700, 6.0),
    ]
    + confirms("i1_b8", 1, 8, 8, [980, 1000, 990])
    + confirms("i2_b8", 2, 8, 8, [1020, 1040, 1010])
    + confirms("i1_b32", 1, 32, 8, [690, 700, 710])
)
CONFIGS = pd.DataFrame(
    [
        {
            "config_id": "i1_b8",
            "instance_count": 1,
            "max_batch_size": 8,
            "max_queue_delay_us": 0,
            "status": "ok",
            "capacity_rps": 1000.0,
            "capacity_level": 8.0,
            "capacity_lower_bound": False,
            "p99_ms": 8.0,
            "p50_ms": 2.7,
            "load_mode": "concurrency",
            "levels_measured": 3,
        },
        {
            "config_id": "i2_b8",
            "instance_count": 2,
            "max_batch_size": 8,
            "max_queue_delay_us": 0,
            "status": "ok",
            "capacity_rps": 1030.0,
            "capacity_level": 8.0,
            "capacity_lower_bound": False,
            "p99_ms": 7.0,
            "p50_ms": 2.3,
            "load_mode": "concurrency",
            "levels_measured": 3,
        },
        {
            "config_id": "i1_b32",
            "instance_count": 1,
            "max_batch_size": 32,
            "max_queue_delay_us": 0,
            "status": "ok",
            "capacity_rps": 700.0,
            "capacity_level": 8.0,
            "capacity_lower_bound": True,
            "p99_ms": 6.0,
            "p50_ms": 2.0,
            "load_mode": "concurrency",
            "levels_measured": 1,
        },
    ]
)
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


def write_run(
    run_dir: Path,
    measurements: pd.DataFrame,
    configs: pd.DataFrame,
    summary: dict[str, Any] | None = None,
    percentile: float = 99.0,
    budget_ms: float = BUDGET,
) -> Path:
    """A run directory written from tables (spec, measurements.csv, configs.csv, summary.json)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    spec = {
        "model": "m",
        "budget_ms": budget_ms,
        "percentile": percentile,
        "confidence": 0.99,
        "strategy": "grid",
    }
    (run_dir / "spec.yaml").write_text(yaml.safe_dump(spec))
    measurements.to_csv(run_dir / "measurements.csv", index=False)
    configs.to_csv(run_dir / "configs.csv", index=False)
    if summary is not None:
        (run_dir / "summary.json").write_text(json.dumps(summary))
    return run_dir


def add_confirm_round(
    run_dir: Path,
    samples: dict[str, list[float]],
    missed: dict[str, list[int]] | None = None,
    lower_bound: tuple[str, ...] = (),
    stopped_reason: str = "reached max_trials (8)",
) -> None:
    """Append a confirmation round to a recorded run directory, as a sweep would write it:
    per config its capacity-level row measured again once per round (`samples`: throughputs),
    rounds in `missed` over the budget; configs in `lower_bound` marked as met at the load
    cap; summary.json gets the choice's keys (choose.choice over the new tables) and
    best/<model>/config.pbtxt the chosen config's knobs."""
    m = pd.read_csv(run_dir / "measurements.csv")
    c = pd.read_csv(run_dir / "configs.csv")
    budget = float(yaml.safe_load((run_dir / "spec.yaml").read_text())["budget_ms"])
    level = dict(zip(c["config_id"], c["capacity_level"]))
    m["phase"] = "search"
    m["confirm_round"] = math.nan
    rows = []
    for config_id, tps in samples.items():
        base = m[(m["config_id"] == config_id) & (m["load_level"] == level[config_id])].iloc[-1]
        for i, tp in enumerate(tps, 1):
            r = base.copy()
            r["phase"], r["confirm_round"], r["throughput_rps"] = "confirm", i, tp
            if i in (missed or {}).get(config_id, []):
                # Over the budget, proven: the stored verdict and the stored numbers agree.
                r["p99_ms"], r["budget_bound_ms"], r["over_bound_ms"] = (
                    budget * 1.3,
                    budget * 1.35,
                    budget * 1.2,
                )
                r["meets_budget"], r["verdict"] = False, "over_budget"
            rows.append(r)
    m = pd.concat([m, pd.DataFrame(rows)], ignore_index=True)
    c["capacity_lower_bound"] = c["config_id"].isin(lower_bound)
    m.to_csv(run_dir / "measurements.csv", index=False)
    c.to_csv(run_dir / "configs.csv", index=False)
    summary = json.loads((run_dir / "summary.json").read_text())
    best, tie_set, reason = choice(c, m, 99)
    summary.update(tie_set=tie_set, choice_reason=reason, stopped_reason=stopped_reason)
    summary["best"].update(
        config_id=best["config_id"],
        confirmed_rps=best.get("confirmed_rps"),
        capacity_ci_rps=best.get("capacity_ci_rps"),
    )
    (run_dir / "summary.json").write_text(json.dumps(summary))
    config = apply_candidate(read_pbtxt(run_dir / "base_config.pbtxt"), Candidate.from_row(best))
    (run_dir / "best" / summary["model"] / "config.pbtxt").write_text(to_pbtxt(config))


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
