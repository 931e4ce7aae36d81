"""`tritune sweep` end to end on real servers: files and columns, both strategies, a refused
config, an impossible budget, Ctrl-C and resume. (Spec errors need no server:
tests/unit/test_bad_input.py.)"""

from __future__ import annotations

import json
import math
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from analyzer.measure.levels import StopToken
from analyzer.report import level_meets
from analyzer.server.control import ServerControl
from analyzer.server.discovery import find_tritonserver
from analyzer.server.local import LocalServer
from analyzer.spec.spec import load_spec
from analyzer.store.rundir import MEASUREMENT_COLUMNS
from analyzer.sweep.loop import Events
from analyzer.sweep.setup import SweepOptions, run_sweep
from tests.helpers import FAST_LOAD, ROOT, cli_process, read_until, run_cli, spec_writer

# Further than FAST_LOAD, with a refinement: a sweep's whole level search runs end to end.
LOAD = {**FAST_LOAD, "max_level": 4, "refine_steps": 1}
write_spec = spec_writer(budget_ms=50, load=LOAD)


def only_run_dir(out: Path) -> Path:
    (run,) = [p for p in out.iterdir() if p.is_dir()]
    return run


def test_grid_end_to_end_local(tmp_path: Path, model_repo: Path) -> None:
    spec = write_spec(
        tmp_path,
        model="identity",
        model_repository=str(model_repo),
        inputs={"INPUT0": [16]},
        space={"instance_count": [1, 2], "max_batch_size": [1, 8], "max_queue_delay_us": [0]},
    )
    result = run_cli("sweep", str(spec), "--out", str(tmp_path / "out"), "--quiet")
    assert result.exit_code == 0, result.output
    run = only_run_dir(tmp_path / "out")
    for name in ("spec.yaml", "study.db", "measurements.csv", "configs.csv", "summary.json", "server.log"):
        assert (run / name).is_file(), name
    configs = pd.read_csv(run / "configs.csv")
    assert sorted(configs["config_id"]) == ["i1_b1_d0", "i1_b8_d0", "i2_b1_d0", "i2_b8_d0"]
    assert set(configs["status"]) <= {"ok", "pruned"}
    measurements = pd.read_csv(run / "measurements.csv")
    assert list(measurements.columns[: len(MEASUREMENT_COLUMNS)]) == MEASUREMENT_COLUMNS
    assert set(measurements["config_id"]) == set(configs["config_id"])
    assert (measurements["throughput_rps"] > 0).all() and (measurements["errors"] == 0).all()
    # Judged again from the stored numbers (as the report and dashboard do), every level gets
    # the sweep's own verdict at the sweep's budget.
    assert level_meets(measurements, 50.0).tolist() == measurements["meets_budget"].astype(bool).tolist()
    summary = json.loads((run / "summary.json").read_text())
    best = summary["best"]
    assert best is not None and summary["configs_tried"] == 4 and summary["strategy"] == "grid"
    # The pick's throughput is its config's capacity; it is the highest capacity, or (after the
    # confirmation round) one of the configs tied with the highest confirmed one.
    picked = configs.set_index("config_id").loc[best["config_id"]]
    assert best["throughput_rps"] == pytest.approx(picked["capacity_rps"])
    if summary.get("tie_set"):
        assert best["config_id"] in summary["tie_set"]
    else:
        assert picked["capacity_rps"] == configs["capacity_rps"].max()
    assert best["p99_ms"] <= 50 and best["load_mode"] == "concurrency"
    assert summary["pareto"] and all(p["p99_ms"] > 0 for p in summary["pareto"])
    # The CLI names the answer and where things are.
    assert best["config_id"] in result.stdout and "config.pbtxt" in result.stdout
    # The user's repository was not touched.
    assert (ROOT / "tests/models/identity/config.pbtxt").read_text().count("max_batch_size: 8") == 1

    # best/<model>/config.pbtxt loads in a fresh server and has the chosen knobs.
    pbtxt = Path(best["config_pbtxt"])
    assert pbtxt == run / "best" / "identity" / "config.pbtxt"
    repo = tmp_path / "deploy"
    shutil.copytree(ROOT / "tests/models/identity", repo / "identity")
    shutil.copy(pbtxt, repo / "identity" / "config.pbtxt")
    with LocalServer(find_tritonserver(), repo, tmp_path / "deploy.log") as server:
        assert server.endpoint is not None
        with ServerControl(server.endpoint, "grpc") as control:
            control.load_model("identity")
            control.require_ready("identity")
            loaded = control.model_config("identity")
    assert loaded["max_batch_size"] == best["max_batch_size"]
    assert sum(g["count"] for g in loaded["instance_group"]) == best["instance_count"]


def test_optuna_on_a_running_server(tmp_path: Path, triton_server: Any) -> None:
    url = triton_server.endpoint.url("grpc")
    with ServerControl(triton_server.endpoint, "grpc") as control:
        before = control.model_config("identity")
    spec = write_spec(
        tmp_path,
        model="identity",
        url=url,
        strategy="optuna",
        max_trials=4,
        inputs={"INPUT0": [16]},
        space={"instance_count": [1, 2], "max_batch_size": [1, 4, 8], "max_queue_delay_us": [0, 500]},
    )
    result = run_cli("sweep", str(spec), "--out", str(tmp_path / "out"), "--quiet", "--workers", "2")
    assert result.exit_code == 0, result.output
    run = only_run_dir(tmp_path / "out")
    configs = pd.read_csv(run / "configs.csv")
    assert len(configs) == 4 and configs["config_id"].is_unique
    # Two load workers on every level that has two requests to share, across config reloads.
    levels = pd.read_csv(run / "measurements.csv")
    assert (levels["client_workers"] == levels["load_level"].clip(upper=2)).all()
    assert (levels["client_cpu_pct"] > 0).all()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["strategy"] == "optuna" and summary["best"] is not None
    import optuna

    study = optuna.load_study(study_name="tritune", storage=f"sqlite:///{run / 'study.db'}")
    measured = [t for t in study.trials if t.user_attrs.get("measured")]
    assert sorted(t.user_attrs["config_id"] for t in measured) == sorted(configs["config_id"])
    # The first trial is the model's current config (1 instance, max batch 8, delay 0).
    assert measured[0].user_attrs["config_id"] == "i1_b8_d0"
    # A remote server gets its original config back.
    with ServerControl(triton_server.endpoint, "grpc") as control:
        after = control.model_config("identity")
    assert after["max_batch_size"] == before["max_batch_size"]
    assert after["instance_group"][0]["count"] == before["instance_group"][0]["count"]


def test_refused_config_is_recorded_and_the_sweep_goes_on(tmp_path: Path, triton_server: Any) -> None:
    spec = write_spec(
        tmp_path,
        model="picky",
        url=triton_server.endpoint.url("grpc"),
        space={"instance_count": [1], "max_batch_size": [4, 16], "max_queue_delay_us": [0]},
    )
    result = run_cli("sweep", str(spec), "--out", str(tmp_path / "out"), "--quiet")
    assert result.exit_code == 0, result.output
    configs = pd.read_csv(only_run_dir(tmp_path / "out") / "configs.csv").set_index("config_id")
    assert configs.loc["i1_b16_d0", "status"] == "failed"
    assert "picky: max_batch_size above 8 is not supported" in configs.loc["i1_b16_d0", "error"]
    assert configs.loc["i1_b4_d0", "status"] in ("ok", "pruned")
    assert configs.loc["i1_b4_d0", "capacity_rps"] > 0


def test_impossible_budget_exits_3_and_names_the_closest(tmp_path: Path, triton_server: Any) -> None:
    spec = write_spec(
        tmp_path,
        model="sleepy",
        url=triton_server.endpoint.url("grpc"),
        budget_ms=1,
        space={"instance_count": [1]},
    )
    result = run_cli("sweep", str(spec), "--out", str(tmp_path / "out"), "--quiet")
    assert result.exit_code == 3, result.output
    run = only_run_dir(tmp_path / "out")
    summary = json.loads((run / "summary.json").read_text())
    assert summary["best"] is None
    assert summary["closest"]["config_id"] == "i1_b0" and summary["closest"]["best_p99_ms"] > 1
    assert "no config met the budget of 1 ms; closest: i1_b0" in result.stdout
    assert not (run / "best").exists()


def test_stop_then_resume_measures_each_config_once(tmp_path: Path, triton_server: Any) -> None:
    spec_path = write_spec(
        tmp_path,
        model="identity",
        url=triton_server.endpoint.url("grpc"),
        inputs={"INPUT0": [16]},
        space={"instance_count": [1, 2], "max_batch_size": [1, 8], "max_queue_delay_us": [0]},
    )
    spec = load_spec(spec_path)
    stop = StopToken()
    seen: list[str] = []

    def first_level_of_second_config(cand: Any, m: Any, verdict: Any) -> None:
        seen.append(cand.config_id)
        if len(set(seen)) == 2:
            stop.set()  # as Ctrl-C would: in the middle of the second config

    result, store = run_sweep(
        spec,
        SweepOptions(out=str(tmp_path / "out")),
        events=Events(level=first_level_of_second_config),
        stop=stop,
    )
    assert result.interrupted
    done_first = pd.read_csv(store.path("configs"))
    assert len(done_first) == 1
    partial = pd.read_csv(store.path("measurements"))
    assert set(partial["config_id"]) == set(seen)  # the in-flight config's rows were written too

    resumed = run_cli("sweep", "--resume", str(store.dir), "--quiet")
    assert resumed.exit_code == 0, resumed.output
    configs = pd.read_csv(store.path("configs"))
    assert len(configs) == 4 and configs["config_id"].is_unique
    measurements = pd.read_csv(store.path("measurements"))
    # Rows per (config, level) are unique: the interrupted config was measured again from scratch.
    assert not measurements.duplicated(["config_id", "load_level"]).any()
    first = done_first["config_id"].iloc[0]
    assert (measurements["config_id"] == first).sum() == (partial["config_id"] == first).sum()
    summary = json.loads(store.path("summary").read_text())
    assert summary["finished"] and summary["configs_tried"] == 4


def test_ctrl_c_stops_cleanly_and_says_how_to_resume(tmp_path: Path, triton_server: Any) -> None:
    spec = write_spec(
        tmp_path,
        model="identity",
        url=triton_server.endpoint.url("grpc"),
        inputs={"INPUT0": [16]},
        space={"instance_count": [1, 2], "max_batch_size": [1, 8], "max_queue_delay_us": [0]},
    )
    out = tmp_path / "out"
    proc = cli_process("sweep", spec, "--out", out, stdout=subprocess.PIPE)
    read_until(proc, lambda line: "concurrency" in line and "req/s" in line, 120)  # a level measured
    proc.send_signal(signal.SIGINT)
    _stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "stopping after the current window" in stderr
    assert "continue with: tritune sweep --resume" in stderr
    assert "Traceback" not in stderr
    run = only_run_dir(out)
    assert (run / "measurements.csv").stat().st_size > 0
    assert json.loads((run / "summary.json").read_text())["finished"] is False


def test_the_model_strategy_predicts_before_it_measures(tmp_path: Path, triton_server: Any) -> None:
    spec = write_spec(
        tmp_path,
        model="identity",
        url=triton_server.endpoint.url("grpc"),
        strategy="model",
        confirm_top=0,
        inputs={"INPUT0": [16]},
        space={"instance_count": [1, 2, 3], "max_batch_size": [1, 4, 8, 16], "max_queue_delay_us": [0]},
    )
    result = run_cli("sweep", str(spec), "--out", str(tmp_path / "out"), "--quiet")
    assert result.exit_code == 0, result.output
    run = only_run_dir(tmp_path / "out")
    configs = pd.read_csv(run / "configs.csv")
    summary = json.loads((run / "summary.json").read_text())
    assert summary["strategy"] == "model" and summary["best"] is not None
    # The first config (the base, i1_b8_d0) is measured with no model yet; every later one had
    # its capacity predicted, with an interval, before it was measured.
    assert configs["config_id"].iloc[0] == "i1_b8_d0"
    assert math.isnan(configs["predicted_capacity_rps"].iloc[0])
    predicted = configs.iloc[1:]
    assert len(predicted) >= 3
    assert predicted["predicted_capacity_rps"].notna().all()
    assert (predicted["predicted_low_rps"] <= predicted["predicted_capacity_rps"]).all()
    assert (predicted["predicted_capacity_rps"] <= predicted["predicted_high_rps"]).all()
    params = summary["server_model"]["parameters"]
    assert params["fixed_ms"] > 0 and params["levels"] >= len(configs)
    assert summary["stopped_reason"].startswith(("no unmeasured config's upper bound", "measured every"))
