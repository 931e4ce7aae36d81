"""Choosing the best config, the Pareto frontier and the summary, on plain tables."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from analyzer.judge.choose import (
    best_config,
    build_summary,
    cheapest_order,
    choice,
    closest_config,
    pareto_frontier,
    pareto_mask,
)
from analyzer.judge.confirm_stats import mean_ci


def configs(*rows: tuple) -> pd.DataFrame:
    cols = [
        "config_id",
        "instance_count",
        "max_batch_size",
        "max_queue_delay_us",
        "status",
        "capacity_rps",
        "capacity_level",
        "p99_ms",
        "p50_ms",
        "closest_p99_ms",
        "load_mode",
        "preferred_batch_size",
        "instance_kind",
    ]
    frame = pd.DataFrame([(*r, "concurrency", "", "KIND_CPU") for r in rows], columns=cols)
    # What choose.with_budget_latency adds for a p99 budget.
    return frame.assign(latency_ms=frame["p99_ms"], closest_latency_ms=frame["closest_p99_ms"])


def test_best_is_highest_capacity_with_ties_to_fewer_instances() -> None:
    table = configs(
        ("a", 2, 8, 0, "ok", 1000.0, 8, 9.0, 3.0, 5.0),
        ("b", 1, 8, 0, "ok", 990.0, 8, 9.5, 3.0, 5.0),  # within 2 %: a tie, fewer instances wins
        ("c", 3, 8, 0, "ok", 800.0, 8, 2.0, 1.0, 1.0),
        ("d", 1, 32, 0, "failed", 0.0, math.nan, math.nan, math.nan, math.nan),
    )
    assert best_config(table)["config_id"] == "b"
    clear = configs(
        ("a", 2, 8, 0, "ok", 1100.0, 8, 9.0, 3.0, 5.0), ("b", 1, 8, 0, "ok", 990.0, 8, 9.5, 3.0, 5.0)
    )
    assert best_config(clear)["config_id"] == "a"
    same = configs(
        ("x", 1, 8, 0, "ok", 500.0, 4, 9.0, 3.0, 5.0), ("y", 1, 16, 0, "pruned", 500.0, 4, 4.0, 2.0, 4.0)
    )
    assert best_config(same)["config_id"] == "y"  # same instances: lower p99


def test_no_best_and_closest_miss() -> None:
    table = configs(
        ("a", 1, 8, 0, "ok", 0.0, math.nan, math.nan, math.nan, 12.0),
        ("b", 2, 8, 0, "ok", 0.0, math.nan, math.nan, math.nan, 11.0),
        ("c", 1, 64, 0, "failed", 0.0, math.nan, math.nan, math.nan, math.nan),
    )
    assert best_config(table) is None
    assert closest_config(table)["config_id"] == "b"
    assert best_config(configs()) is None


def test_pareto_mask() -> None:
    tp = np.array([100, 200, 150, 300, 300, 50])
    lat = np.array([1.0, 2.0, 3.0, 5.0, 6.0, 0.5])
    # (150, 3) is dominated by (200, 2); (300, 6) by (300, 5).
    assert pareto_mask(tp, lat).tolist() == [True, True, False, True, False, True]


def test_frontier_ignores_measurements_with_errors() -> None:
    m = pd.DataFrame(
        {
            "config_id": ["a", "b", "c"],
            "throughput_rps": [100.0, 500.0, 200.0],
            "p99_ms": [1.0, 0.5, 2.0],
            "errors": [0, 3, 0],
            "load_mode": ["concurrency"] * 3,
            "load_level": [1, 2, 4],
        }
    )
    front = pareto_frontier(m, "p99_ms")
    assert front["config_id"].tolist() == ["a", "c"]


def test_summary_shape() -> None:
    table = configs(("a", 2, 8, 500, "ok", 1000.0, 8, 9.0, 3.0, 5.0))
    m = pd.DataFrame(
        {
            "config_id": ["a"],
            "throughput_rps": [1000.0],
            "p99_ms": [9.0],
            "errors": [0],
            "load_mode": ["concurrency"],
            "load_level": [8],
        }
    )
    s = build_summary(
        model="m",
        budget_ms=10,
        percentile=99,
        strategy="grid",
        load_mode="concurrency",
        wall_s=12.3,
        configs=table,
        measurements=m,
        best_pbtxt="best/m/config.pbtxt",
        finished=True,
    )
    assert s["best"]["config_id"] == "a" and s["best"]["throughput_rps"] == 1000.0
    assert s["best"]["max_queue_delay_us"] == 500 and s["best"]["load_level"] == 8
    assert s["configs_tried"] == 1 and s["configs_failed"] == 0
    assert s["pareto"] == [
        {
            "config_id": "a",
            "throughput_rps": 1000.0,
            "latency_ms": 9.0,
            "p99_ms": 9.0,
            "load_mode": "concurrency",
            "load_level": 8,
        }
    ]
    import json

    json.dumps(s, allow_nan=False)  # strictly valid JSON


# -- the confirmation round's tie set --------------------------------------------------------------


def confirm_rows(samples: dict[str, list[float]], met: dict[str, int] | None = None) -> pd.DataFrame:
    """Confirm-phase measurement rows, interleaved by round as the runner writes them."""
    rows = []
    rounds = max(len(v) for v in samples.values())
    for r in range(rounds):
        for cid, values in samples.items():
            if r < len(values):
                ok = r < (met or {}).get(cid, len(values))
                rows.append(
                    {
                        "config_id": cid,
                        "phase": "confirm",
                        "confirm_round": r + 1,
                        "throughput_rps": values[r],
                        "meets_budget": ok,
                    }
                )
    return pd.DataFrame(rows)


def test_tie_set_is_the_configs_whose_interval_overlaps_the_best_and_the_cheapest_wins() -> None:
    table = configs(
        ("i2_b32_d0", 2, 32, 0, "ok", 4100.0, 24, 8.0, 3.0, 5.0),
        ("i1_b32_d0", 1, 32, 0, "ok", 4000.0, 16, 8.5, 3.0, 5.0),
        ("i2_b8_d0", 2, 8, 0, "ok", 3000.0, 16, 8.0, 3.0, 5.0),
    )
    m = confirm_rows(
        {"i2_b32_d0": [4100, 4000, 4200], "i1_b32_d0": [3900, 4050, 3950], "i2_b8_d0": [3000, 3050, 2980]}
    )
    best, ties, why = choice(table, m, 99)
    assert ties == ["i1_b32_d0", "i2_b32_d0"]  # i2_b8_d0's interval is far below
    assert best["config_id"] == "i1_b32_d0" and "cheapest" in why
    low, high = best["capacity_ci_rps"]
    assert low < best["confirmed_rps"] < high and best["confirmed_rps"] == pytest.approx(3966.67, abs=0.01)
    summary = build_summary(
        model="m",
        budget_ms=10,
        percentile=99,
        strategy="optuna",
        load_mode="concurrency",
        wall_s=1.0,
        configs=table,
        measurements=m,
        best_pbtxt=None,
        finished=True,
    )
    assert summary["tie_set"] == ties and summary["best"]["config_id"] == "i1_b32_d0"
    assert summary["best"]["capacity_ci_rps"] == [pytest.approx(low), pytest.approx(high)]


def test_clear_winner_has_a_tie_set_of_one() -> None:
    table = configs(
        ("a", 2, 32, 0, "ok", 4100.0, 24, 8.0, 3.0, 5.0), ("b", 1, 32, 0, "ok", 3000.0, 16, 8.5, 3.0, 5.0)
    )
    best, ties, why = choice(table, confirm_rows({"a": [4100, 4110, 4090], "b": [3000, 3010, 2990]}), 99)
    assert ties == ["a"] and best["config_id"] == "a" and "no other config" in why


def test_configs_that_broke_the_budget_again_in_most_rounds_do_not_count() -> None:
    table = configs(
        ("a", 2, 32, 0, "ok", 4100.0, 24, 8.0, 3.0, 5.0), ("b", 1, 32, 0, "ok", 3000.0, 16, 8.5, 3.0, 5.0)
    )
    best, ties, _ = choice(
        table, confirm_rows({"a": [4100, 4110, 4090], "b": [3000, 3010, 2990]}, met={"a": 1}), 99
    )
    assert ties == ["b"] and best["config_id"] == "b"
    # With verdicts stored, only errors or a proven break count as breaking it: a capacity level
    # re-measured lands just over the budget about as often as just under it.
    rows = confirm_rows({"a": [4100, 4110, 4090], "b": [3000, 3010, 2990]})
    rows["verdict"] = ["over_budget", "meets"] * 3
    rows["verdict_proven"] = [False, True] * 3
    best, ties, _ = choice(table, rows, 99)
    assert ties == ["a"] and best["config_id"] == "a"
    rows["verdict_proven"] = True
    best, ties, _ = choice(table, rows, 99)
    assert ties == ["b"]


def test_without_a_confirmation_round_the_search_capacity_decides() -> None:
    table = configs(
        ("a", 2, 32, 0, "ok", 4100.0, 24, 8.0, 3.0, 5.0), ("b", 1, 32, 0, "ok", 3000.0, 16, 8.5, 3.0, 5.0)
    )
    best, ties, why = choice(table, pd.DataFrame(columns=["config_id", "phase"]), 99)
    assert best["config_id"] == "a" and ties == [] and "not confirmed" in why
    # Fewer than three rounds (a stopped confirmation) is not a confirmation either.
    best, ties, _ = choice(table, confirm_rows({"a": [4100, 4000], "b": [5000, 5100]}), 99)
    assert best["config_id"] == "a" and ties == []


def test_cheapest_order_and_t_interval() -> None:
    frame = pd.DataFrame(
        {
            "config_id": ["x", "y", "z", "w"],
            "instance_count": [2, 1, 1, 1],
            "max_batch_size": [8, 32, 8, 8],
            "max_queue_delay_us": [0, 0, 500, math.nan],
        }
    )
    assert cheapest_order(frame)["config_id"].tolist() == ["w", "z", "y", "x"]
    mean, _low, high = mean_ci([10.0, 12.0, 14.0])
    assert mean == 12.0 and high - mean == pytest.approx(4.303 * 2.0 / math.sqrt(3))
    assert mean_ci([5.0])[1] == -math.inf


def test_confirmation_intervals_pool_the_noise_of_all_confirmed_configs() -> None:
    from analyzer.judge.confirm_stats import confirmation_stats, pooled_relative_sd

    sd, dof = pooled_relative_sd([[90.0, 100.0, 110.0], [1000.0, 1000.0, 1000.0]])
    assert dof == 4 and sd == pytest.approx(math.sqrt((0.01 + 0.0 + 0.01) / 4))
    stats = confirmation_stats(
        confirm_rows({"a": [90.0, 100.0, 110.0], "b": [1000.0, 1000.0, 1000.0]})
    ).set_index("config_id")
    half = 2.776 * sd / math.sqrt(3)  # t with 4 degrees of freedom, not 2 (4.303)
    assert stats.loc["a", "ci_high_rps"] == pytest.approx(100.0 * (1 + half))
    # Three identical rounds do not make a config exactly known: it shares the machine's noise.
    assert stats.loc["b", "ci_low_rps"] == pytest.approx(1000.0 * (1 - half))
