"""Scheduled load on a real server: the achieved rate per second follows the schedule, the
timeline CSV says so, and a capped open loop holds requests back. (Bad schedules exit 2 before
any load: tests/unit/test_bad_input.py.)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from analyzer.cli.main import main


def profile(*args: str) -> Any:
    return CliRunner().invoke(
        main, ["profile", "-m", "identity", "--shape", "INPUT0:16", "--format", "json", "-q", *args]
    )


def test_a_step_schedule_is_played_per_second_and_written_as_a_timeline(
    tmp_path: Path, triton_server: Any
) -> None:
    path = tmp_path / "timeline.csv"
    result = profile(
        "--url",
        triton_server.endpoint.url("grpc"),
        "--schedule",
        "step:100,400,200:2",
        "--arrival",
        "constant",
        "--timeline",
        str(path),
    )
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)
    assert row["errors"] == 0 and row["worst_minute_ms"] > 0
    t = pd.read_csv(path)
    assert t["second"].tolist() == [0, 1, 2, 3, 4, 5]
    due = np.array([100, 100, 400, 400, 200, 200])
    assert np.all(np.abs(t["due"] - due) <= 1), t["due"].tolist()
    # Sent on time: the achieved rate per second follows the schedule within a few percent.
    # (a few requests of slack: a send due just before a second's edge may go out just after it)
    assert np.all(np.abs(t["sent"] - due) <= 0.05 * due + 3), t["sent"].tolist()
    assert (t["p99_ms"] > 0).all() and (t["errors"] == 0).all()
    assert abs(row["requests"] - due.sum()) <= 2


def test_a_capped_open_loop_waits_instead_of_failing(tmp_path: Path, triton_server: Any) -> None:
    # sleepy serves one request per 5 ms (200/s); 400/s for 2 s with at most 2 in flight: the
    # excess waits, so latency from the schedule grows, and nothing is an error.
    result = CliRunner().invoke(
        main,
        [
            "profile",
            "-m",
            "sleepy",
            "--url",
            triton_server.endpoint.url("grpc"),
            "--schedule",
            "step:400:2",
            "--arrival",
            "constant",
            "--max-inflight",
            "2",
            "--timeline",
            str(tmp_path / "t.csv"),
            "--format",
            "json",
            "-q",
            "--request-timeout-s",
            "10",
        ],
    )
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)
    assert "client_backlog" not in row["error_kinds"]
    t = pd.read_csv(tmp_path / "t.csv")
    assert t["sent"].sum() < t["due"].sum()  # the cap held requests back past the end of the run
    # Waiting counts from the schedule: the median of second 0 is far above sleepy's 5 ms, and
    # the requests of second 1 were still held when the run ended (unfinished, not dropped).
    assert t["p50_ms"].iloc[0] > 50.0
    assert t["errors"].iloc[1] > 0 and "unfinished" in row["error_kinds"]


def test_a_sweep_against_a_schedule_finds_the_largest_scale_that_meets_the_budget(
    tmp_path: Path, triton_server: Any
) -> None:
    import yaml

    # sleepy serves about 200 requests/s. The schedule is 30/s for a second, then 100/s for a
    # second: at scale x1 it is served on time, above about x2 its second step overloads it.
    spec = {
        "model": "sleepy",
        "url": triton_server.endpoint.url("grpc"),
        "strategy": "grid",
        "budget_ms": 50,
        "percentile": 90,
        "confirm_top": 0,
        "space": {"instance_count": [1]},
        "load": {
            "schedule": "step:30,100:1",
            "arrival": "constant",
            "min_level": 1,
            "max_level": 4,
            "refine_steps": 2,
            "request_timeout_s": 10,
        },
    }
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    result = CliRunner().invoke(main, ["sweep", str(path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "schedule x1:" in result.output
    (run,) = (tmp_path / "out").iterdir()
    levels = pd.read_csv(run / "measurements.csv")
    assert levels["load_mode"].eq("schedule").all() and levels["worst_minute_ms"].notna().all()
    met = levels[levels["verdict"] == "meets"]["load_level"]
    broken = levels[levels["verdict"] != "meets"]["load_level"]
    assert len(met) and len(broken), levels[["load_level", "verdict", "verdict_reason"]]
    # The capacity is the largest scale that met the budget, below every scale that broke it,
    # and a scale sleepy can serve (x2 is 200/s in the second step: at or past its limit).
    assert 1 <= met.max() < broken.min() <= 2.5
    summary = json.loads((run / "summary.json").read_text())
    assert summary["best"]["load_level"] == met.max() and summary["schedule"] == "step:30,100:1"
    # The report draws the chosen config's timeline at its capacity.
    assert (
        f"Timeline of i1_b0 at its capacity, the schedule x{met.max():g}" in (run / "report.html").read_text()
    )
    # Each played level left its per-second timeline; the due counts follow the scaled schedule.
    for level in levels["load_level"]:
        t = pd.read_csv(run / "timelines" / f"i1_b0_x{level:g}.csv")
        assert np.all(np.abs(t["due"].to_numpy() - np.array([30, 100]) * level) <= 1), (
            level,
            t["due"].tolist(),
        )


@pytest.mark.parametrize("form", ["ramp:100:300:3", "burst:100:400:1:1:3", "daily:100:300:2:4", "gaps:FILE"])
def test_each_schedule_kinds_achieved_rate_per_second_follows_its_definition(
    tmp_path: Path, triton_server: Any, form: str
) -> None:
    from analyzer.load.shapes import parse_schedule

    if form == "gaps:FILE":
        # A trace: 50 req/s for a second, 250 req/s for a second, 100 req/s for a second.
        gaps = [0.02] * 50 + [0.004] * 250 + [0.01] * 100
        (tmp_path / "gaps.txt").write_text("\n".join(f"{g:g}" for g in gaps))
        form = f"gaps:{tmp_path / 'gaps.txt'}"
    schedule = parse_schedule(form)
    seconds = round(schedule.duration_s)
    # What each second should get by the definition: its rate integrated over the second.
    fine = np.arange(0, seconds, 0.0005)
    due = np.add.reduceat(schedule.rate(fine) * 0.0005, np.arange(seconds) * 2000)
    path = tmp_path / "timeline.csv"
    result = profile(
        "--url",
        triton_server.endpoint.url("grpc"),
        "--schedule",
        form,
        "--arrival",
        "constant",
        "--timeline",
        str(path),
    )
    assert result.exit_code == 0, result.output
    t = pd.read_csv(path)
    assert len(t) == seconds and (t["errors"] == 0).all()
    sent = t["sent"].to_numpy()
    assert np.all(np.abs(sent - due) <= 0.05 * due + 3), (sent.tolist(), due.round(1).tolist())
