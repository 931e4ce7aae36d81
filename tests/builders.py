"""Data for tests: measurements.csv and configs.csv rows, tables and run directories built in code.

Rows are built by the project's own row functions (analyzer.store.rows: `measurement_row`,
`level_row`, `config_row`) around its own records (`Measurement`, `Verdict`, `CapacityResult`,
`Candidate`), not written as literal dicts, so that renaming a column or a field breaks these
builders loudly instead of leaving the tests on a table no sweep writes any more.

Process and server helpers (paths, spec writers, the CLI runner, workers) are in tests/helpers.py.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from analyzer.config.modelconfig import Candidate, apply_candidate, read_pbtxt, to_pbtxt
from analyzer.judge.choose import choice
from analyzer.judge.levelsearch import CapacityResult
from analyzer.judge.verdict import Verdict
from analyzer.load.inputs import TensorSpec
from analyzer.stats.measurement import Measurement
from analyzer.store.rows import config_row, level_row, measurement_row
from analyzer.store.rundir import CONFIG_COLUMNS, MEASUREMENT_COLUMNS

MEASUREMENT_FIELDS = [f.name for f in dataclasses.fields(Measurement) if f.name != "extra"]


def measured(
    level: float,
    throughput: float,
    *,
    p50: float,
    p90: float,
    p95: float,
    p99: float,
    requests: int,
    errors: int = 0,
    stable: bool = True,
    mode: str = "concurrency",
    **fields: Any,
) -> Measurement:
    """A Measurement at one load level; what a test does not care about is filled in (max and
    mean in proportion to the percentiles, the p99's interval +-5 %, 3 windows of 1 s)."""
    base: dict[str, Any] = dict(
        load_mode=mode,
        load_level=level,
        throughput_rps=throughput,
        p50_ms=p50,
        p90_ms=p90,
        p95_ms=p95,
        p99_ms=p99,
        max_ms=p99 * 2,
        mean_ms=p50,
        p99_ci_low_ms=p99 * 0.95,
        p99_ci_high_ms=p99 * 1.05,
        requests=requests,
        errors=errors,
        error_kinds="",
        windows=3,
        stable=stable,
        duration_s=1.0,
    )
    return Measurement(**{**base, **fields})


def row_of(
    config_id: str,
    knobs: Candidate,
    m: Measurement,
    meets: bool | None,
    phase: str | None = None,
    round_: float = math.nan,
) -> dict[str, Any]:
    """A measurements.csv row of `m` under `config_id` (any name, not only knobs.config_id).
    With a phase it is a sweep's row (analyzer.store.rows.level_row: the verdict agrees with `meets`,
    proven either way); without, the profile-shaped row (measurement_row), no verdict columns."""
    if phase is None:
        return measurement_row(config_id, knobs, m, meets)
    status = "meets" if meets else "over_budget"
    verdict = Verdict(meets=bool(meets), status=status, reason="", decided=True)
    return level_row(config_id, knobs, m, verdict, phase, None if math.isnan(round_) else int(round_))


def measurement_of(row: Mapping[str, Any]) -> Measurement:
    """The Measurement a measurements.csv row holds (every field of it, by name)."""
    return Measurement(**{name: row[name] for name in MEASUREMENT_FIELDS})


def config_of(
    config_id: str,
    measurements: pd.DataFrame,
    capacity_level: float | None,
    *,
    lower_bound: bool = False,
    status: str = "ok",
    percentile: float = 99.0,
) -> dict[str, Any]:
    """The configs.csv row a sweep writes (analyzer.store.rows.config_row) for config `config_id` whose
    search levels are its rows in `measurements`, with its capacity at `capacity_level` (None:
    no level met the budget; a failed config with no levels has no result at all)."""
    rows = measurements[(measurements["config_id"] == config_id) & (_phase(measurements) == "search")]
    first = rows.iloc[0]
    delay = first["max_queue_delay_us"]
    knobs = Candidate(
        int(first["instance_count"]), int(first["max_batch_size"]), None if pd.isna(delay) else int(delay)
    )
    levels = [measurement_of(r) for r in rows.to_dict("records")]
    result = None
    if status != "failed":
        at = [m for m in levels if m.load_level == capacity_level]
        result = CapacityResult(
            capacity_rps=at[0].throughput_rps if at else 0.0,
            level=capacity_level,
            measurements=[(m, Verdict(True, "meets", "")) for m in levels],
            pruned=False,
            at_cap=lower_bound,
        )
    row = config_row(
        knobs,
        result,
        status=status,
        error="",
        mode=str(first["load_mode"]),
        trial=0,
        wall_s=1.0,
        percentile=percentile,
    )
    return _renamed(row, config_id)


def _phase(measurements: pd.DataFrame) -> pd.Series:
    if "phase" in measurements:
        return measurements["phase"].fillna("search")
    return pd.Series("search", index=measurements.index)


def _known(row: pd.Series, columns: list[str]) -> pd.Series:
    """`row` (an edit of a recorded run's row), checked to hold only the store's columns: a
    renamed column fails here instead of adding a column nothing reads."""
    unknown = [c for c in row.index if c not in columns]
    if unknown:
        raise KeyError(f"not a column of the store: {unknown}")
    return row


def _renamed(row: dict[str, Any], config_id: str) -> dict[str, Any]:
    """`row` under another config id (tests name configs 'a', 'i1_b8', ...)."""
    if "config_id" not in row:
        raise KeyError("config_id: the row functions no longer write it")
    return row | {"config_id": config_id}


# -- a confirmation round's report (tests/unit/test_report_confirm.py, the dashboard's tests) ------

BUDGET = 10.0


def confirm_row(
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
    """One measurements.csv row of a sweep with the claim bounds it stores (at p99)."""
    m = measured(
        level,
        tp,
        p50=p99 / 3,
        p90=p99 / 1.6,
        p95=p99 / 1.3,
        p99=p99,
        requests=5000,
        budget_bound_ms=p99 * 1.05,
        over_bound_ms=p99 * 0.95,
        avg_batch_size=level / 2,
        server_queue_ms=0.5,
        server_compute_input_ms=0.1,
        server_compute_infer_ms=1.0,
        server_compute_output_ms=0.2,
        server_cpu_pct=150.0,
        server_rss_mb=80.0,
    )
    ok = p99 * 1.05 <= BUDGET if meets is None else meets
    return row_of(config_id, Candidate(inst, batch, 0), m, ok, phase, round_)


def confirms(
    config_id: str, inst: int, batch: int, level: float, samples: list[float]
) -> list[dict[str, Any]]:
    """A confirmation round of one config: its capacity level measured again, once per round."""
    return [
        confirm_row(config_id, inst, batch, level, tp, 7.0, phase="confirm", round_=i)
        for i, tp in enumerate(samples, 1)
    ]


# i2_b8 has the best search capacity; in the confirmation round i1_b8 is within noise of it and
# cheaper (one instance), so the confirmed pick differs from the search-only pick; i1_b32 is
# re-measured too but clearly below.
CONFIRM_MEASUREMENTS = pd.DataFrame(
    [
        confirm_row("i1_b8", 1, 8, 4, 900, 5.0),
        confirm_row("i1_b8", 1, 8, 8, 1000, 8.0),
        confirm_row("i1_b8", 1, 8, 16, 1100, 14.0),
        confirm_row("i2_b8", 2, 8, 4, 800, 4.0),
        confirm_row("i2_b8", 2, 8, 8, 1030, 7.0),
        confirm_row("i2_b8", 2, 8, 16, 1300, 13.0),
        confirm_row("i1_b32", 1, 32, 8, 700, 6.0),
        *confirms("i1_b8", 1, 8, 8, [980, 1000, 990]),
        *confirms("i2_b8", 2, 8, 8, [1020, 1040, 1010]),
        *confirms("i1_b32", 1, 32, 8, [690, 700, 710]),
    ]
)
CONFIRM_CONFIGS = pd.DataFrame(
    [
        config_of("i1_b8", CONFIRM_MEASUREMENTS, 8.0),
        config_of("i2_b8", CONFIRM_MEASUREMENTS, 8.0),
        config_of("i1_b32", CONFIRM_MEASUREMENTS, 8.0, lower_bound=True),
    ]
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
            rows.append(_known(r, MEASUREMENT_COLUMNS))
    m = pd.concat([m, pd.DataFrame(rows)], ignore_index=True)
    c["capacity_lower_bound"] = c["config_id"].isin(lower_bound)
    _known(c.iloc[0], CONFIG_COLUMNS)
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


# A confirmation round on the recorded run (tests/data/run_demo): the search's best (i1_b8_d2000)
# misses the budget in two of its three rounds, so it is not counted; i1_b32_d0 is within noise
# of i2_b8_d2000 and cheaper (one instance), so it is chosen.
CONFIRMED = {
    "i2_b8_d2000": [2300.0, 2350.0, 2280.0],
    "i1_b8_d2000": [3990.0, 3900.0, 4050.0],
    "i1_b32_d0": [2000.0, 2100.0, 2250.0],
}
MISSED = {"i1_b8_d2000": [2, 3]}
TIE_SET = ["i1_b32_d0", "i2_b8_d2000"]


def append_config(run: Path, like: str, config_id: str, knobs: dict[str, int]) -> None:
    """Append a config (its configs.csv row and measurements) as a running sweep would: the rows
    of config `like`, renamed and with other knob values."""
    for name in ("configs.csv", "measurements.csv"):
        table = pd.read_csv(run / name)
        rows = table[table["config_id"] == like].copy()
        rows["config_id"] = config_id
        for knob, value in knobs.items():
            rows[knob] = value
        _known(rows.iloc[0], MEASUREMENT_COLUMNS if name == "measurements.csv" else CONFIG_COLUMNS)
        rows.to_csv(run / name, mode="a", header=False, index=False)


# -- a p95 sweep (tests/unit/test_report_percentile.py, the dashboard's tests) --------------------


def m95(
    config_id: str, inst: int, level: float, tp: float, p95: float, p99: float, **extra: Any
) -> dict[str, Any]:
    """A row of a p95 sweep: its claim bounds are the p95's (budget_bound_ms, over_bound_ms).
    `extra` sets Measurement fields (a stable of "True" is the string a CSV reads back)."""
    fields = dict(
        p50=p95 / 2,
        p90=p95 * 0.9,
        p95=p95,
        p99=p99,
        requests=4000,
        budget_bound_ms=p95 * 1.1,
        over_bound_ms=p95 * 0.9,
        p99_ci_high_ms=p99 * 1.05,
    )
    return measurement_row(config_id, Candidate(inst, 8, 0), measured(level, tp, **{**fields, **extra}), None)


# At 5 ms, a meets the p95 budget at level 4 (p95 4 ms) though its p99 is 12 ms there; judged on
# p99 it only reaches level 2, and b (two instances) would win.
M95 = pd.DataFrame(
    [
        m95("a", 1, 2, 180, 2.0, 3.0),
        m95("a", 1, 4, 300, 4.0, 12.0),
        m95("a", 1, 8, 330, 9.0, 20.0),
        m95("b", 2, 2, 150, 1.5, 2.0),
        m95("b", 2, 4, 250, 3.0, 4.5),
    ]
)
C95 = pd.DataFrame([config_of("a", M95, 4.0, percentile=95.0), config_of("b", M95, 4.0, percentile=95.0)])


# -- inputs and specs that a unit test and an integration test share -------------------------------

# A request the identity models take (tests/unit/test_clients.py, tests/integration/test_clients.py).
GOOD = [(TensorSpec("INPUT0", "FP32", (1, 4)), np.ones((1, 4), np.float32))]

# Bad pipeline specs and what each is told: refused before a server starts with a local
# repository (tests/unit/test_preflight.py), and by the server's own model configs with --url
# (tests/integration/test_pipelines.py).
BAD_PIPELINE_SPECS = [
    (
        "pipeline",
        {"space": {"instance_count": [1, 2]}},
        "model 'pipeline' is an ensemble; it has no instances or batching of its own. Its composing "
        "models are: preprocess, classifier",
    ),
    ("pipeline", {}, "model 'pipeline' is an ensemble of preprocess, classifier; say which of them to tune"),
    (
        "pipeline",
        {"models": {"classifier": {"max_batch_size": [4]}}},
        "models.classifier: every max_batch_size in its space is below 8, the max_batch_size of ensemble "
        "'pipeline'",
    ),
    ("pipeline_bls", {"models": {"clasifier": {"instance_count": [1, 2]}}}, "model 'clasifier' not found"),
    ("pipeline", {"models": {"preprocess": {}, "classifier": {}}}, "nothing to tune"),
]
