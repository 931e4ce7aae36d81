"""Which configs the confirmation round re-measures, and what a resumed run still has to do."""

from __future__ import annotations

import math

import pandas as pd

from analyzer.sweep.confirm import confirm_plan, next_confirmation


def _configs() -> pd.DataFrame:
    rows = [
        ("i1_b8_d0", 1, 8, 0, "ok", 900.0, 8.0),
        ("i2_b8_d0", 2, 8, 0, "pruned", 1200.0, 16.0),
        ("i2_b32_d0", 2, 32, 0, "ok", 1500.0, 24.0),
        ("i1_b32_d0", 1, 32, 0, "failed", 0.0, math.nan),
        ("i1_b1_d0", 1, 1, 0, "ok", 0.0, math.nan),  # met the budget at no level
    ]
    return pd.DataFrame(
        rows,
        columns=[
            "config_id",
            "instance_count",
            "max_batch_size",
            "max_queue_delay_us",
            "status",
            "capacity_rps",
            "capacity_level",
        ],
    )


def test_top_configs_by_search_capacity_with_their_levels() -> None:
    plan, done = confirm_plan(_configs(), pd.DataFrame(), 2)
    assert [(c.config_id, level) for c, level in plan] == [("i2_b32_d0", 24.0), ("i2_b8_d0", 16.0)]
    assert done == set()
    # Never more than the configs that met the budget; 0 turns the round off.
    assert len(confirm_plan(_configs(), pd.DataFrame(), 10)[0]) == 3
    assert confirm_plan(_configs(), pd.DataFrame(), 0) == ([], set())


def test_a_resumed_run_knows_the_rounds_already_measured() -> None:
    m = pd.DataFrame(
        {
            "config_id": ["i2_b32_d0", "i2_b8_d0", "i2_b32_d0", "i1_b8_d0"],
            "phase": ["confirm", "confirm", "confirm", "search"],
            "confirm_round": [1, 1, 2, math.nan],
        }
    )
    _, done = confirm_plan(_configs(), m, 2)
    assert done == {("i2_b32_d0", 1), ("i2_b8_d0", 1), ("i2_b32_d0", 2)}


def test_a_config_pushed_out_of_the_top_keeps_its_rounds() -> None:
    # Another worker's late result (i3_b32_d0) entered the top 2 after i2_b8_d0's first round.
    late = pd.concat(
        [
            _configs(),
            pd.DataFrame(
                [
                    {
                        "config_id": "i3_b32_d0",
                        "instance_count": 3,
                        "max_batch_size": 32,
                        "max_queue_delay_us": 0,
                        "status": "ok",
                        "capacity_rps": 1600.0,
                        "capacity_level": 32.0,
                    }
                ]
            ),
        ],
        ignore_index=True,
    )
    m = pd.DataFrame(
        {"config_id": ["i2_b32_d0", "i2_b8_d0"], "phase": ["confirm", "confirm"], "confirm_round": [1, 1]}
    )
    plan, done = confirm_plan(late, m, 2)
    assert [c.config_id for c, _ in plan] == ["i3_b32_d0", "i2_b32_d0", "i2_b8_d0"]
    # The newcomer runs its first round next, then the rounds go on interleaved.
    order = []
    while (step := next_confirmation(plan, done, set(), 3)) is not None:
        order.append((step[0].config_id, step[2]))
        done.add((step[0].config_id, step[2]))
    assert order == [
        ("i3_b32_d0", 1),
        ("i3_b32_d0", 2),
        ("i2_b32_d0", 2),
        ("i2_b8_d0", 2),
        ("i3_b32_d0", 3),
        ("i2_b32_d0", 3),
        ("i2_b8_d0", 3),
    ]


def test_next_confirmation_skips_dropped_configs_and_ends() -> None:
    plan, _ = confirm_plan(_configs(), pd.DataFrame(), 2)
    first = plan[0][0]
    step = next_confirmation(plan, set(), {first}, 2)
    assert step is not None and (step[0].config_id, step[1], step[2]) == ("i2_b8_d0", 16.0, 1)
    assert next_confirmation(plan, {("i2_b8_d0", 1), ("i2_b8_d0", 2)}, {first}, 2) is None
