"""Decisive measurement on a real server: a level stops the moment its verdict is proven (in
both directions), and a sweep ends with an interleaved confirmation round and a tie set."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from analyzer.cli.main import main
from analyzer.judge.verdict import budget_verdict
from analyzer.load.clients import make_client
from analyzer.load.shapes import LoadSpec
from analyzer.measure.levels import MeasureSettings, Probe, make_tensors, measure_level, window_requests_for
from analyzer.server.session import open_server, prepare_model
from analyzer.stats.measurement import Measurement


def measure_once(
    server: Any,
    model: str,
    level: int,
    budget_ms: float,
    shapes: dict[str, list[int]],
    stable_at: list[int] | None = None,
    decisions: list[bool] | None = None,
) -> Measurement:
    """One level measured with the sweep's sequential verdict at `budget_ms` (p99, 99 %);
    `stable_at` collects the windows after which the windows agreed, `decisions` whether each
    window's verdict was decided."""
    # Stability is not the subject: a loose tolerance keeps busy CI cores from flagging it.
    settings = MeasureSettings(
        warmup_s=0.3,
        budget_ms=budget_ms,
        tolerance=0.5,
        max_windows=10,
        window_requests=window_requests_for(99, 0.99),
    )

    def on_window(load: Any, index: int, stat: Any, stable: bool) -> None:
        if stable and stable_at is not None:
            stable_at.append(index)

    def decide(m: Measurement) -> Any:
        verdict = budget_verdict(m, budget_ms, 99, 0.99)
        if decisions is not None:
            decisions.append(verdict.decided)
        return verdict

    async def go() -> Measurement:
        with open_server(url=server.endpoint.url("grpc")) as session:
            info = prepare_model(session, model, shapes, load=False)
            client = make_client("grpc", session.url, model, make_tensors(info.specs), timeout_s=10)
            try:
                with Probe(session.endpoint, "grpc", model, None) as probe:
                    m = await measure_level(
                        client,
                        probe,
                        LoadSpec("concurrency", level),
                        settings,
                        decide=decide,
                        on_window=on_window,
                    )
            finally:
                await client.close()
        assert m is not None
        return m

    return asyncio.run(go())


def test_a_level_far_over_the_budget_stops_after_one_window(triton_server: Any) -> None:
    # sleepy takes 5 ms a request, one at a time: 4 in flight wait ~20 ms, against a 2 ms budget.
    m = measure_once(triton_server, "sleepy", 4, 2.0, {})
    verdict = budget_verdict(m, 2.0)
    assert verdict.status == "over_budget" and verdict.decided, verdict
    assert m.windows == 1  # proven over at once: no wait for stable windows
    assert m.over_bound_ms > 2.0  # the stored lower bound is what proves it


def test_a_level_well_within_the_budget_stops_once_proven_and_stable(triton_server: Any) -> None:
    stable_at: list[int] = []
    decisions: list[bool] = []
    m = measure_once(triton_server, "identity", 1, 100.0, {"INPUT0": [16]}, stable_at, decisions)
    verdict = budget_verdict(m, 100.0)
    assert verdict.meets and verdict.decided, verdict
    # It stopped at the first window whose verdict was proven (the claim held and the windows
    # agreed), no earlier than the third window (the fewest that can agree), and no later.
    assert decisions[-1] and not any(decisions[:-1])
    assert m.windows == len(decisions) >= 3 and m.windows >= stable_at[0]
    assert m.requests >= 459 and m.budget_bound_ms <= 100.0


def test_sweep_confirms_the_top_configs_interleaved_and_names_a_tie_set(
    tmp_path: Path, triton_server: Any
) -> None:
    spec = {
        "model": "identity",
        "url": triton_server.endpoint.url("grpc"),
        "budget_ms": 50,
        "strategy": "grid",
        "inputs": {"INPUT0": [16]},
        "confirm_top": 2,
        "confirm_rounds": 3,
        "space": {"instance_count": [1, 2], "max_batch_size": [8], "max_queue_delay_us": [0]},
        "load": {"mode": "concurrency", "max_level": 8, "stability_pct": 30, "warmup_s": 0.2},
    }
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    result = CliRunner().invoke(
        main, ["sweep", str(path), "--out", str(tmp_path / "out")], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    (run,) = list((tmp_path / "out").iterdir())
    m = pd.read_csv(run / "measurements.csv")
    assert set(m["phase"]) == {"search", "confirm"}
    conf = m[m["phase"] == "confirm"]
    configs = pd.read_csv(run / "configs.csv").set_index("config_id")
    # A B A B A B: each round re-measures both configs, at their capacity levels.
    assert conf["confirm_round"].astype(int).tolist() == [1, 1, 2, 2, 3, 3]
    first_two = conf["config_id"].tolist()[:2]
    assert sorted(first_two) == ["i1_b8_d0", "i2_b8_d0"] and conf["config_id"].tolist() == first_two * 3
    for cid, g in conf.groupby("config_id"):
        assert set(g["load_level"]) == {configs.loc[cid, "capacity_level"]}
    summary = json.loads((run / "summary.json").read_text())
    best = summary["best"]
    assert best["config_id"] in summary["tie_set"] and set(summary["tie_set"]) <= {"i1_b8_d0", "i2_b8_d0"}
    low, high = best["capacity_ci_rps"]
    samples = conf[conf["config_id"] == best["config_id"]]["throughput_rps"]
    assert low <= best["confirmed_rps"] <= high and best["confirmed_rps"] == pytest.approx(samples.mean())
    if len(summary["tie_set"]) == 2:
        assert best["config_id"] == "i1_b8_d0"  # tied: the cheaper config (fewer instances) wins
    assert summary["choice_reason"] and summary["stopped_reason"] == "measured every valid config"
    assert "tie set" in result.stdout and best["config_id"] in result.stdout
