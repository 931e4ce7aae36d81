"""What the CLI prints for a sweep's answer: the budget percentile's own latency, with its label."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from analyzer.cli.output import print_result
from analyzer.config.modelconfig import Candidate
from analyzer.judge.choose import build_summary
from analyzer.judge.levelsearch import CapacityResult
from analyzer.judge.verdict import budget_verdict
from analyzer.store.rows import config_row, level_row
from analyzer.store.rundir import RunStore
from analyzer.sweep.loop import SweepResult
from tests.helpers import measurement


def _summary(store: RunStore, budget_ms: float, percentile: float) -> dict[str, Any]:
    """A p`percentile` sweep of one config measured at one level with p99 30 ms (p95 20 ms)."""
    cand = Candidate(1, 8, 0)
    m = measurement(30.0, load_level=4.0, throughput_rps=400.0)
    verdict = budget_verdict(m, budget_ms, percentile)
    store.append_measurement(level_row(cand.config_id, cand, m, verdict, "search"))
    result = CapacityResult(
        400.0 if verdict.meets else 0.0, 4.0 if verdict.meets else None, [(m, verdict)], False
    )
    store.append_config(
        config_row(
            cand,
            result,
            status="ok",
            error="",
            trial=0,
            mode="concurrency",
            wall_s=1.0,
            percentile=percentile,
        )
    )
    return build_summary(
        model="m",
        budget_ms=budget_ms,
        percentile=percentile,
        strategy="grid",
        load_mode="concurrency",
        wall_s=1.0,
        configs=store.configs(),
        measurements=store.measurements(),
        best_pbtxt=None,
        finished=True,
    )


@pytest.mark.parametrize(
    ("budget_ms", "expected"),
    [
        (25.0, "400.0 req/s with p95 20.00 ms (budget 25 ms)"),
        (10.0, "no config met the budget of 10 ms; closest: i1_b8_d0 with p95 20.00 ms"),
    ],
)
def test_a_p95_sweep_prints_its_p95(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], budget_ms: float, expected: str
) -> None:
    store = RunStore.create(None, "m", run_dir=tmp_path / "run")
    summary = _summary(store, budget_ms, 95)
    print_result(SweepResult(summary, 0, False, ""), store)
    out = capsys.readouterr().out
    assert expected in out
    assert "30.00" not in out  # the p99, which a p95 sweep must not show as its answer
