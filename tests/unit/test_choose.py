"""Choosing the best config, the Pareto frontier and the summary, on plain tables."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from analyzer.choose import best_config, build_summary, closest_config, pareto_frontier, pareto_mask


def configs(*rows: tuple) -> pd.DataFrame:
    cols = ["config_id", "instance_count", "max_batch_size", "max_queue_delay_us", "status",
            "capacity_rps", "capacity_level", "p99_ms", "p50_ms", "closest_p99_ms", "load_mode",
            "preferred_batch_size", "instance_kind"]
    return pd.DataFrame([r + ("concurrency", "", "KIND_CPU") for r in rows], columns=cols)


def test_best_is_highest_capacity_with_ties_to_fewer_instances() -> None:
    table = configs(
        ("a", 2, 8, 0, "ok", 1000.0, 8, 9.0, 3.0, 5.0),
        ("b", 1, 8, 0, "ok", 990.0, 8, 9.5, 3.0, 5.0),  # within 2 %: a tie, fewer instances wins
        ("c", 3, 8, 0, "ok", 800.0, 8, 2.0, 1.0, 1.0),
        ("d", 1, 32, 0, "failed", 0.0, math.nan, math.nan, math.nan, math.nan),
    )
    assert best_config(table)["config_id"] == "b"
    clear = configs(("a", 2, 8, 0, "ok", 1100.0, 8, 9.0, 3.0, 5.0), ("b", 1, 8, 0, "ok", 990.0, 8, 9.5, 3.0, 5.0))
    assert best_config(clear)["config_id"] == "a"
    same = configs(("x", 1, 8, 0, "ok", 500.0, 4, 9.0, 3.0, 5.0), ("y", 1, 16, 0, "pruned", 500.0, 4, 4.0, 2.0, 4.0))
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
    m = pd.DataFrame({
        "config_id": ["a", "b", "c"], "throughput_rps": [100.0, 500.0, 200.0],
        "p99_ms": [1.0, 0.5, 2.0], "errors": [0, 3, 0], "load_mode": ["concurrency"] * 3, "load_level": [1, 2, 4],
    })
    front = pareto_frontier(m)
    assert front["config_id"].tolist() == ["a", "c"]


def test_summary_shape() -> None:
    table = configs(("a", 2, 8, 500, "ok", 1000.0, 8, 9.0, 3.0, 5.0))
    m = pd.DataFrame({"config_id": ["a"], "throughput_rps": [1000.0], "p99_ms": [9.0], "errors": [0],
                      "load_mode": ["concurrency"], "load_level": [8]})
    s = build_summary(model="m", budget_ms=10, percentile=99, strategy="grid", load_mode="concurrency",
                      wall_s=12.3, configs=table, measurements=m, best_pbtxt="best/m/config.pbtxt", finished=True)
    assert s["best"]["config_id"] == "a" and s["best"]["throughput_rps"] == 1000.0
    assert s["best"]["max_queue_delay_us"] == 500 and s["best"]["load_level"] == 8
    assert s["configs_tried"] == 1 and s["configs_failed"] == 0
    assert s["pareto"] == [{"config_id": "a", "throughput_rps": 1000.0, "p99_ms": 9.0,
                            "load_mode": "concurrency", "load_level": 8}]
    import json

    json.dumps(s, allow_nan=False)  # strictly valid JSON
