"""Which configs the confirmation round re-measures, and what a resumed run still has to do."""

from __future__ import annotations

import math

import pandas as pd

from analyzer.runner import confirm_plan


def _configs() -> pd.DataFrame:
    rows = [
        ("i1_b8_d0", 1, 8, 0, "ok", 900.0, 8.0),
        ("i2_b8_d0", 2, 8, 0, "pruned", 1200.0, 16.0),
        ("i2_b32_d0", 2, 32, 0, "ok", 1500.0, 24.0),
        ("i1_b32_d0", 1, 32, 0, "failed", 0.0, math.nan),
        ("i1_b1_d0", 1, 1, 0, "ok", 0.0, math.nan),  # met the budget at no level
    ]
    return pd.DataFrame(rows, columns=["config_id", "instance_count", "max_batch_size", "max_queue_delay_us",
                                       "status", "capacity_rps", "capacity_level"])


def test_top_configs_by_search_capacity_with_their_levels() -> None:
    plan, done = confirm_plan(_configs(), pd.DataFrame(), 2)
    assert [(c.config_id, level) for c, level in plan] == [("i2_b32_d0", 24.0), ("i2_b8_d0", 16.0)]
    assert done == set()
    # Never more than the configs that met the budget; 0 turns the round off.
    assert len(confirm_plan(_configs(), pd.DataFrame(), 10)[0]) == 3
    assert confirm_plan(_configs(), pd.DataFrame(), 0) == ([], set())


def test_a_resumed_run_knows_the_rounds_already_measured() -> None:
    m = pd.DataFrame({"config_id": ["i2_b32_d0", "i2_b8_d0", "i2_b32_d0", "i1_b8_d0"],
                      "phase": ["confirm", "confirm", "confirm", "search"],
                      "confirm_round": [1, 1, 2, math.nan]})
    _, done = confirm_plan(_configs(), m, 2)
    assert done == {("i2_b32_d0", 1), ("i2_b8_d0", 1), ("i2_b32_d0", 2)}
