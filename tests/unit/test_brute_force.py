"""The brute force's pure parts on plain data: level ramp, stop rule, capacity, tie set, files."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pandas as pd

from tests.helpers import ROOT


def _load_brute_force() -> ModuleType:
    # benchmarks/ is a folder of scripts, not a package: load the module from its file.
    spec = importlib.util.spec_from_file_location("brute_force", ROOT / "benchmarks" / "brute_force.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("brute_force", module)
    spec.loader.exec_module(module)
    return module


bf = _load_brute_force()
BUDGET = 100.0


def row(level: int, rps: float, p99: float, errors: int = 0, config_id: str = "i1_b8_d0") -> dict[str, Any]:
    """A CSV row with the fields the pure functions read."""
    knobs = config_id.split("_")
    return {
        "config_id": config_id,
        "instance_count": int(knobs[0][1:]),
        "max_batch_size": int(knobs[1][1:]),
        "max_queue_delay_us": int(knobs[2][1:]),
        "level": level,
        "throughput_rps": rps,
        "p50_ms": p99 / 2,
        "p99_ms": p99,
        "requests": 1000,
        "errors": errors,
        "stable": True,
        "duration_s": 4.0,
    }


def test_levels_double_up_to_the_top() -> None:
    assert bf.doubling_levels(256) == [1, 2, 4, 8, 16, 32, 64, 128, 256]
    assert bf.doubling_levels(100) == [1, 2, 4, 8, 16, 32, 64]


def test_candidates_cover_the_space_with_sweep_ids() -> None:
    cands = bf.candidates(bf.DEFAULT_SPACE)
    assert len(cands) == 45
    assert cands[0].config_id == "i1_b1_d0" and cands[-1].config_id == "i3_b32_d4000"
    assert "i2_b16_d1000" in {c.config_id for c in cands}


def test_growing_throughput_goes_on() -> None:
    rows = [row(1, 100, 10), row(2, 190, 11), row(4, 350, 12)]
    assert bf.stop_reason(rows, BUDGET) == ""


def test_one_flat_step_is_not_saturation() -> None:
    rows = [row(1, 100, 10), row(2, 190, 11), row(4, 195, 20), row(8, 300, 30)]
    assert bf.stop_reason(rows, BUDGET) == ""
    assert bf.stop_reason(rows[:3], BUDGET) == ""


def test_two_flat_steps_in_a_row_are_saturation() -> None:
    rows = [row(1, 100, 10), row(2, 190, 11), row(4, 195, 20), row(8, 190, 40)]
    assert bf.stop_reason(rows, BUDGET).startswith("saturated")


def test_growth_just_under_five_percent_counts_as_flat() -> None:
    rows = [row(1, 100, 10), row(2, 104.9, 11), row(4, 110.0, 12)]
    assert bf.stop_reason(rows, BUDGET).startswith("saturated")
    rows = [row(1, 100, 10), row(2, 105.1, 11), row(4, 110.0, 12)]
    assert bf.stop_reason(rows, BUDGET) == ""


def test_p99_far_over_the_budget_stops() -> None:
    rows = [row(1, 100, 10), row(2, 200, 301)]
    assert "budget" in bf.stop_reason(rows, BUDGET)
    assert bf.stop_reason([row(1, 100, 10), row(2, 200, 299)], BUDGET) == ""


def test_top_level_stops() -> None:
    rule = bf.StopRule(max_level=4)
    assert bf.stop_reason([row(1, 100, 10), row(2, 200, 11), row(4, 400, 12)], BUDGET, rule).startswith(
        "reached"
    )


def test_capacity_is_the_best_level_that_meets_the_budget() -> None:
    rows = [row(1, 100, 10), row(2, 200, 50), row(4, 380, 99.9), row(8, 400, 101), row(16, 390, 200)]
    assert bf.capacity_of(rows, BUDGET) == (380.0, 4)


def test_capacity_skips_levels_with_errors_and_can_be_none() -> None:
    rows = [row(1, 100, 10), row(2, 200, 50, errors=1)]
    assert bf.capacity_of(rows, BUDGET) == (100.0, 1)
    assert bf.capacity_of([row(1, 100, 150)], BUDGET) == (0.0, None)
    assert bf.capacity_of([row(1, 100, float("nan"))], BUDGET) == (0.0, None)


def test_capacity_takes_the_highest_throughput_not_the_highest_level() -> None:
    # Batching makes throughput non-monotonic in load: a lower level may serve more.
    rows = [row(1, 100, 10), row(2, 300, 40), row(4, 250, 60)]
    assert bf.capacity_of(rows, BUDGET) == (300.0, 2)


def _summary(capacities: dict[str, float]) -> dict[str, Any]:
    return {"configs": {cid: {"capacity_rps": c} for cid, c in capacities.items()}}


def test_tie_set_is_within_three_percent_of_the_best_best_first() -> None:
    summary = _summary({"a": 1000.0, "b": 970.0, "c": 969.9, "d": 985.0, "e": 0.0})
    assert bf.tie_set(summary) == ["a", "d", "b"]
    assert bf.tie_set(summary, tolerance=0.0) == ["a"]
    assert bf.tie_set((pd.DataFrame(), summary)) == ["a", "d", "b"]


def test_tie_set_is_empty_when_no_config_meets_the_budget() -> None:
    assert bf.tie_set(_summary({"a": 0.0, "b": 0.0})) == []


def test_summary_and_files_round_trip(tmp_path: Path) -> None:
    rows = [
        row(1, 100, 10, config_id="i1_b8_d0"),
        row(2, 150, 120, config_id="i1_b8_d0"),
        row(1, 90, 10, config_id="i2_b8_d0"),
        row(2, 180, 20, config_id="i2_b8_d0"),
        row(4, 300, 400, config_id="i2_b8_d0"),
    ]
    table = bf.write_rows(rows, tmp_path / "truth.csv")
    summary = bf.build_summary(table, {"budget_ms": BUDGET}, wall_s=30.0)
    assert summary["best"] == {"config_id": "i2_b8_d0", "capacity_rps": 180.0, "capacity_level": 2}
    assert summary["configs"]["i1_b8_d0"]["capacity_rps"] == 100.0
    assert summary["configs"]["i2_b8_d0"]["levels"] == 3
    assert (
        summary["levels"] == 5 and summary["seconds_per_level"] == 4.0 and summary["wall_s_per_level"] == 6.0
    )
    assert summary["tie_set_3pct"] == ["i2_b8_d0"]
    (tmp_path / "truth.json").write_text(json.dumps(summary))
    loaded_rows, loaded = bf.load_truth(tmp_path / "truth.csv")
    assert list(loaded_rows.columns) == bf.ROW_COLUMNS and len(loaded_rows) == 5
    assert loaded["best"]["config_id"] == "i2_b8_d0"
    assert bf.load_truth(tmp_path / "truth")[1] == loaded
