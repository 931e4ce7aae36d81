"""Faults during a sweep, on real servers: the server killed mid-measurement, a model that
crashes at load or at its first request, a model that hangs, a remote server going away, the
tool itself killed with SIGKILL, and two sweeps at once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import psutil
import pytest
from click.testing import CliRunner

from analyzer.cli.main import main
from analyzer.server.control import ServerControl
from analyzer.server.discovery import find_tritonserver
from analyzer.server.local import LocalServer, free_port_block
from analyzer.spec.spec import load_spec
from analyzer.sweep.loop import Events
from analyzer.sweep.setup import SweepOptions, run_sweep
from tests.helpers import FAST_LOAD, ROOT, cli_process, read_until, spec_writer

# Short request and load timeouts: a hung model or a stuck server is told within seconds.
write_spec = spec_writer(load={**FAST_LOAD, "request_timeout_s": 2.0}, load_timeout_s=20)


def servers_serving(repo: Path) -> list[psutil.Process]:
    """tritonserver processes (and their stubs) running on a repository."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmd = " ".join(proc.info.get("cmdline") or [])
        if str(repo) in cmd and ("tritonserver" in cmd or "triton_python_backend_stub" in cmd):
            found.append(proc)
    return found


def wait_until(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def configs_of(run: Path) -> pd.DataFrame:
    return pd.read_csv(run / "configs.csv").set_index("config_id")


def own_repo(tmp_path: Path, model_repo: Path, *models: str) -> Path:
    """A repository path of this test's own, so its server processes can be told apart."""
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in models:
        os.symlink(model_repo / name, repo / name)
    return repo


def test_server_killed_mid_measurement_is_restarted(tmp_path: Path, model_repo: Path) -> None:
    repo = own_repo(tmp_path, model_repo, "identity")
    spec = load_spec(
        write_spec(
            tmp_path,
            model="identity",
            model_repository=str(repo),
            inputs={"INPUT0": [16]},
            space={"instance_count": [1], "max_batch_size": [1, 8], "max_queue_delay_us": [0]},
        )
    )
    killed: list[int] = []

    def kill_on_first_level(cand: Any, m: Any, verdict: Any) -> None:
        if not killed:
            (server,) = [p for p in servers_serving(repo) if p.name() == "tritonserver"]
            killed.append(server.pid)
            os.kill(server.pid, signal.SIGKILL)

    result, store = run_sweep(
        spec, SweepOptions(out=str(tmp_path / "out")), events=Events(level=kill_on_first_level)
    )
    configs = configs_of(store.dir)
    assert configs.loc["i1_b1_d0", "status"] == "failed"
    assert "tritonserver exited (code -9)" in configs.loc["i1_b1_d0", "error"]
    assert (
        configs.loc["i1_b8_d0", "status"] in ("ok", "pruned") and configs.loc["i1_b8_d0", "capacity_rps"] > 0
    )
    assert result.exit_code == 0 and result.summary["best"]["config_id"] == "i1_b8_d0"
    assert (store.dir / "server.log").read_text().count("==== tritune: starting") == 2
    assert not psutil.pid_exists(killed[0]) or psutil.Process(killed[0]).status() == psutil.STATUS_ZOMBIE


def test_model_crashing_at_load_or_first_request_does_not_stop_the_sweep(
    tmp_path: Path, model_repo: Path
) -> None:
    spec = write_spec(
        tmp_path,
        model="fragile",
        model_repository=str(model_repo),
        space={"instance_count": [1], "max_batch_size": [16, 2, 8], "max_queue_delay_us": [0]},
    )
    result = CliRunner().invoke(main, ["sweep", str(spec), "--out", str(tmp_path / "out"), "--quiet"])
    assert result.exit_code == 0, result.output
    run = next((tmp_path / "out").iterdir())
    configs = configs_of(run)
    assert configs.loc["i1_b16_d0", "status"] == "failed"
    assert "fragile: refusing to start with max_batch_size 16" in configs.loc["i1_b16_d0", "error"]
    # When the stub dies mid-request, Triton 2.51's python backend leaves the request unanswered
    # (seen here): it shows up as a server that stopped answering, or as failed requests.
    assert configs.loc["i1_b2_d0", "status"] == "failed"
    error = configs.loc["i1_b2_d0", "error"]
    assert "stopped answering" in error or "no request succeeded" in error
    assert (
        configs.loc["i1_b8_d0", "status"] in ("ok", "pruned") and configs.loc["i1_b8_d0", "capacity_rps"] > 0
    )
    measurements = pd.read_csv(run / "measurements.csv")
    crashed = measurements[measurements["config_id"] == "i1_b2_d0"]
    assert not crashed["meets_budget"].any()


def test_hung_model_is_detected_by_timeouts(tmp_path: Path, model_repo: Path) -> None:
    spec = write_spec(
        tmp_path,
        model="fragile",
        model_repository=str(model_repo),
        space={"instance_count": [1], "max_batch_size": [4, 8], "max_queue_delay_us": [0]},
        # What is tested is the hang's detection and the restart. The config measured after the
        # restart met 100 ms with p99 about 1 ms here, but once in a clean-clone CI run its p99
        # was 252 ms (exit 3): a generous budget keeps the test on topic.
        budget_ms=1000,
    )
    started = time.monotonic()
    result = CliRunner().invoke(main, ["sweep", str(spec), "--out", str(tmp_path / "out"), "--quiet"])
    took = time.monotonic() - started
    assert result.exit_code == 0, result.output
    run = next((tmp_path / "out").iterdir())
    configs = configs_of(run)
    assert configs.loc["i1_b4_d0", "status"] == "failed"
    assert "the server stopped answering" in configs.loc["i1_b4_d0", "error"]
    assert "time out" in configs.loc["i1_b4_d0", "error"]
    assert configs.loc["i1_b8_d0", "status"] in ("ok", "pruned")
    assert took < 120  # bounded by the request timeout and windows, not by the hang


def test_remote_server_going_away_ends_cleanly_and_resumes(tmp_path: Path, model_repo: Path) -> None:
    base = free_port_block(3)
    server = LocalServer(find_tritonserver(), model_repo, tmp_path / "remote.log", base_port=base)
    server.start()
    with ServerControl(server.endpoint, "grpc") as control:
        control.load_model("identity")
    spec = write_spec(
        tmp_path,
        model="identity",
        url=f"127.0.0.1:{base + 1}",
        inputs={"INPUT0": [16]},
        space={"instance_count": [1], "max_batch_size": [1, 8], "max_queue_delay_us": [0, 100]},
    )
    spec_obj = load_spec(spec)
    done: list[str] = []

    def kill_after_first_config(cand: Any, row: Any) -> None:
        done.append(cand.config_id)
        if len(done) == 1:
            server.stop(graceful=False)

    from analyzer.errors import RestoreError

    try:
        # A server that went away cannot have its original config put back either: exit 4, which
        # says so and how to restore later, with the sweep's own error and its resume hint.
        with pytest.raises(RestoreError) as info:
            run_sweep(
                spec_obj,
                SweepOptions(out=str(tmp_path / "out")),
                events=Events(config_done=kill_after_first_config),
            )
        text = str(info.value)
        assert info.value.exit_code == 4 and "could not put back the original config of identity" in text
        assert "tritune restore" in text and "the sweep itself had stopped" in text and "--resume" in text
        run = next((tmp_path / "out").iterdir())
        assert len(pd.read_csv(run / "configs.csv")) == 1
        assert json.loads((run / "summary.json").read_text())["finished"] is False
        # The server comes back on the same port: the sweep resumes and finishes.
        server.start()
        with ServerControl(server.endpoint, "grpc") as control:
            control.load_model("identity")
        resumed = CliRunner().invoke(main, ["sweep", "--resume", str(run), "--quiet"])
        assert resumed.exit_code == 0, resumed.output
        configs = pd.read_csv(run / "configs.csv")
        assert len(configs) == 4 and configs["config_id"].is_unique
    finally:
        server.stop()


def test_sigkill_of_the_tool_leaves_no_server_and_resume_finishes(tmp_path: Path, model_repo: Path) -> None:
    repo = own_repo(tmp_path, model_repo, "identity")
    spec = write_spec(
        tmp_path,
        model="identity",
        model_repository=str(repo),
        inputs={"INPUT0": [16]},
        space={"instance_count": [1, 2], "max_batch_size": [1, 8], "max_queue_delay_us": [0]},
    )
    out = tmp_path / "out"
    proc = cli_process("sweep", spec, "--out", out)
    read_until(proc, "[config 2/", 180)  # kill it while the second config is being measured:
    read_until(proc, lambda line: line.lstrip().startswith("concurrency "), 60)  # its first level is done
    assert servers_serving(repo), "the sweep's server should be running"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    wait_until(lambda: not servers_serving(repo), 30, "the orphaned server and its stubs to exit")

    run = next(out.iterdir())
    before = pd.read_csv(run / "configs.csv")
    assert len(before) == 1
    first = before["config_id"].iloc[0]  # noqa: F841 - used by the query strings below
    first_rows = pd.read_csv(run / "measurements.csv").query("config_id == @first")
    resumed = CliRunner().invoke(main, ["sweep", "--resume", str(run), "--quiet"])
    assert resumed.exit_code == 0, resumed.output
    configs = pd.read_csv(run / "configs.csv")
    assert sorted(configs["config_id"]) == ["i1_b1_d0", "i1_b8_d0", "i2_b1_d0", "i2_b8_d0"]
    measurements = pd.read_csv(run / "measurements.csv")
    assert not measurements.duplicated(["config_id", "load_level"]).any()
    # The finished config was not measured again: its rows are the very same.
    pd.testing.assert_frame_equal(
        measurements.query("config_id == @first").reset_index(drop=True), first_rows.reset_index(drop=True)
    )
    assert not servers_serving(repo)


def test_two_sweeps_at_once_do_not_collide(tmp_path: Path, model_repo: Path) -> None:
    spec = write_spec(
        tmp_path,
        model="identity",
        model_repository=str(model_repo),
        inputs={"INPUT0": [16]},
        space={"instance_count": [1], "max_batch_size": [8], "max_queue_delay_us": [0]},
    )
    out = tmp_path / "out"
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "analyzer.cli", "sweep", str(spec), "--out", str(out), "-q"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for _ in range(2)
    ]
    results = [p.communicate(timeout=240) for p in procs]
    for p, (_stdout, stderr) in zip(procs, results):
        assert p.returncode == 0, stderr
    runs = sorted(out.iterdir())
    assert len(runs) == 2  # same model, same second: two run directories all the same
    ports = set()
    for run in runs:
        log = (run / "server.log").read_text()
        ports.add(log.split("--http-port=")[1].split()[0])
        assert json.loads((run / "summary.json").read_text())["best"] is not None
    assert len(ports) == 2
