"""Scheduled load on a real server: the achieved rate per second follows the schedule, the
timeline CSV says so, a capped open loop holds requests back, and bad schedules exit 2."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from analyzer.cli import main

pytestmark = pytest.mark.integration


def profile(*args: str) -> Any:
    return CliRunner().invoke(main, ["profile", "-m", "identity", "--shape", "INPUT0:16", "--format", "json", "-q", *args])


def test_a_step_schedule_is_played_per_second_and_written_as_a_timeline(tmp_path: Path, triton_server: Any) -> None:
    path = tmp_path / "timeline.csv"
    result = profile("--url", triton_server.endpoint.url("grpc"), "--schedule", "step:100,400,200:2",
                     "--arrival", "constant", "--timeline", str(path))
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)
    assert row["errors"] == 0 and row["worst_minute_p99_ms"] > 0
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
    result = CliRunner().invoke(main, ["profile", "-m", "sleepy", "--url", triton_server.endpoint.url("grpc"),
                                       "--schedule", "step:400:2", "--arrival", "constant", "--max-inflight", "2",
                                       "--timeline", str(tmp_path / "t.csv"), "--format", "json", "-q",
                                       "--request-timeout-s", "10"])
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)
    assert "client_backlog" not in row["error_kinds"]
    t = pd.read_csv(tmp_path / "t.csv")
    assert t["sent"].sum() < t["due"].sum()  # the cap held requests back past the end of the run
    # Waiting counts from the schedule: the median of second 0 is far above sleepy's 5 ms, and
    # the requests of second 1 were still held when the run ended (unfinished, not dropped).
    assert t["p50_ms"].iloc[0] > 50.0
    assert t["errors"].iloc[1] > 0 and "unfinished" in row["error_kinds"]


@pytest.mark.parametrize("args, message", [
    (["--schedule", "ramp:1:2"], "--schedule: bad schedule 'ramp:1:2': expected one of"),
    (["--schedule", "trace:/nonexistent/t.txt"], "cannot read"),
    (["--schedule", "ramp:1:2:3", "--rate", "5"], "not both"),
    (["--timeline", "x.csv", "--rate", "5"], "--timeline needs --schedule"),
    (["--schedule", "ramp:1:2:3", "--scale", "0"], "--scale"),
])
def test_bad_schedules_exit_2_before_any_load(args: list[str], message: str) -> None:
    result = CliRunner().invoke(main, ["profile", "-m", "identity", "--url", "127.0.0.1:1", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output
