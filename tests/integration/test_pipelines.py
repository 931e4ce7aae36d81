"""Pipelines on a real server: the example ensemble and BLS sweeps, their best configs loading
together into a fresh server, the per-step breakdown, resume, and the bad pipeline specs."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from analyzer.cli.main import main
from analyzer.config.modelconfig import from_dict, knobs_of, read_pbtxt, to_pbtxt
from analyzer.measure.levels import StopToken
from analyzer.server.control import ServerControl
from analyzer.server.discovery import find_tritonserver
from analyzer.server.local import LocalServer
from analyzer.spec.spec import load_spec
from analyzer.sweep.loop import Events
from analyzer.sweep.setup import SweepOptions, run_sweep
from tests.builders import BAD_PIPELINE_SPECS
from tests.helpers import ROOT, spec_writer

EXAMPLE = ROOT / "sweeps" / "examples" / "pipeline" / "models"
# Short levels: what these tests check is the pipeline plumbing, not the capacities. A p90
# budget needs 44 requests to prove (a p99 needs 459): Python backends on 2 busy CI cores serve
# about 120 req/s at low concurrency, too few for a p99 proof within these short levels.
PERCENTILE = 90
LOAD = {
    "mode": "concurrency",
    "min_level": 1,
    "max_level": 8,
    "window_s": 0.3,
    "warmup_s": 0.3,
    "max_windows": 6,
    "stability_pct": 40,
    "refine_steps": 1,
}


@pytest.fixture(scope="module")
def pipeline_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    """A server on a copy of the example repository (sweeps reload its models)."""
    repo = tmp_path_factory.mktemp("pipeline_repo")
    shutil.copytree(EXAMPLE, repo, dirs_exist_ok=True)
    server = LocalServer(find_tritonserver(), repo, repo.parent / "pipeline_server.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


spec_file = spec_writer(budget_ms=200, percentile=PERCENTILE, load=LOAD, inputs={"RAW": [16]})


def sweep(*args: str) -> Any:
    return CliRunner().invoke(main, ["sweep", *args])


def infer_once(server: LocalServer, model: str) -> np.ndarray:
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(server.endpoint.url("grpc"))
    try:
        x = grpcclient.InferInput("RAW", [1, 16], "FP32")
        x.set_data_from_numpy(np.arange(16, dtype=np.float32).reshape(1, 16))
        return client.infer(model, [x]).as_numpy("PROBS")
    finally:
        client.close()


def test_an_ensemble_sweep_tunes_its_steps_and_its_best_configs_load_together(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLE, repo)
    spec = spec_file(
        tmp_path,
        model="pipeline",
        model_repository=str(repo),
        models={
            "preprocess": {"instance_count": [1], "max_batch_size": [8], "max_queue_delay_us": [0]},
            "classifier": {"instance_count": [1, 2], "max_batch_size": [8], "max_queue_delay_us": [0]},
        },
    )
    result = sweep(str(spec), "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    assert "bottleneck step" in result.output
    (run,) = list((tmp_path / "out").iterdir())
    configs = pd.read_csv(run / "configs.csv")
    assert sorted(configs["config_id"]) == [
        "preprocess.i1_b8_d0+classifier.i1_b8_d0",
        "preprocess.i1_b8_d0+classifier.i2_b8_d0",
    ]
    assert (
        configs["classifier.instance_count"].tolist() in ([1, 2], [2, 1])
        and (configs["status"] == "ok").all()
    )
    levels = pd.read_csv(run / "measurements.csv")
    # Every level recorded both steps, and named the busiest.
    for step in ("preprocess", "classifier"):
        assert (levels[f"step.{step}.batch"] >= 1).all() and (levels[f"step.{step}.busy_pct"] > 0).all()
    assert (
        set(levels["bottleneck_step"]) <= {"preprocess", "classifier"}
        and levels["bottleneck_step"].notna().all()
    )
    summary = json.loads((run / "summary.json").read_text())
    models = summary["best"]["models"]
    assert set(models) == {"preprocess", "classifier"}
    assert summary["best"]["bottleneck_step"] in models
    html = (run / "report.html").read_text()
    assert "id='steps'" in html and "Bottleneck step: " in html and "best/classifier/config.pbtxt" in html

    # The best configs load together into a fresh server, which then serves the ensemble.
    fresh = tmp_path / "fresh"
    shutil.copytree(EXAMPLE, fresh)
    for name, knobs in models.items():
        written = Path(knobs["config_pbtxt"])
        assert written == run / "best" / name / "config.pbtxt"
        assert knobs_of(read_pbtxt(written)).instance_count == knobs["instance_count"]
        shutil.copy(written, fresh / name / "config.pbtxt")
    server = LocalServer(find_tritonserver(), fresh, tmp_path / "fresh.log")
    server.start()
    try:
        with ServerControl(server.endpoint, "grpc") as control:
            control.load_model("pipeline")
            loaded = knobs_of(control.model_config("classifier"))
            assert loaded.instance_count == models["classifier"]["instance_count"]
        probs = infer_once(server, "pipeline")
        assert probs.shape == (1, 4) and np.isclose(probs.sum(), 1.0, atol=1e-5)
    finally:
        server.stop()


def test_a_bls_sweep_loads_its_named_callees(tmp_path: Path, pipeline_server: LocalServer) -> None:
    spec = spec_file(
        tmp_path,
        model="pipeline_bls",
        url=pipeline_server.endpoint.url("grpc"),
        models={
            "preprocess": {},  # loaded as it is
            "classifier": {"instance_count": [1], "max_batch_size": [8, 32], "max_queue_delay_us": [0]},
        },
    )
    with ServerControl(pipeline_server.endpoint, "grpc") as control:
        control.unload_model("classifier")  # as a new user finds it: the callee not loaded
        control.load_model("pipeline_bls")
    result = sweep(str(spec), "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    (run,) = list((tmp_path / "out").iterdir())
    summary = json.loads((run / "summary.json").read_text())
    assert set(summary["best"]["models"]) == {"classifier"}  # preprocess was not tuned
    levels = pd.read_csv(run / "measurements.csv")
    assert levels["errors"].sum() == 0
    # The BLS model calls each callee once per request.
    assert np.allclose(
        levels["step.classifier.batch"] * levels["step.classifier.per_request"], 1.0, atol=0.05
    )
    assert (run / "best" / "classifier" / "config.pbtxt").is_file()
    assert not (run / "best" / "preprocess").exists()
    # tritune loaded the callee itself, so it unloaded it at the end: the server is as it was.
    with ServerControl(pipeline_server.endpoint, "grpc") as control:
        assert not control.is_ready("classifier") and control.is_ready("pipeline_bls")
    assert json.loads((run / "originals.json").read_text())["models"]["classifier"]["loaded"] is False


def test_a_stopped_pipeline_sweep_resumes(tmp_path: Path, pipeline_server: LocalServer) -> None:
    path = spec_file(
        tmp_path,
        model="pipeline",
        url=pipeline_server.endpoint.url("grpc"),
        models={
            "preprocess": {"instance_count": [1, 2], "max_batch_size": [8], "max_queue_delay_us": [0]},
            "classifier": {"instance_count": [1], "max_batch_size": [8], "max_queue_delay_us": [0]},
        },
    )
    with ServerControl(pipeline_server.endpoint, "grpc") as control:
        control.load_model("pipeline")  # a running server serves the model under load already
        before = served_configs(control)
    stop = StopToken()
    seen: list[str] = []

    def on_level(cand: Any, m: Any, verdict: Any) -> None:
        seen.append(cand.config_id)
        if len(set(seen)) == 2:
            stop.set()  # as Ctrl-C would, in the second config

    result, store = run_sweep(
        load_spec(path), SweepOptions(out=str(tmp_path / "out")), events=Events(level=on_level), stop=stop
    )
    assert result.interrupted and len(pd.read_csv(store.path("configs"))) == 1
    resumed = sweep("--resume", str(store.dir), "--quiet")
    assert resumed.exit_code == 0, resumed.output
    configs = pd.read_csv(store.path("configs"))
    assert sorted(configs["config_id"]) == [
        "preprocess.i1_b8_d0+classifier.i1_b8_d0",
        "preprocess.i2_b8_d0+classifier.i1_b8_d0",
    ]
    levels = pd.read_csv(store.path("measurements"))
    assert not levels.duplicated(["config_id", "load_level"]).any()
    # Both runs put every model back: the ensemble and its steps serve their own configs again.
    with ServerControl(pipeline_server.endpoint, "grpc") as control:
        assert served_configs(control) == before


def served_configs(control: ServerControl) -> dict[str, str]:
    """The example ensemble's models as the server serves them now (config.pbtxt text)."""
    return {
        name: to_pbtxt(from_dict(control.model_config(name)))
        for name in ("pipeline", "preprocess", "classifier")
    }


@pytest.mark.parametrize("model, extra, message", BAD_PIPELINE_SPECS)
def test_bad_pipeline_specs_exit_2_before_any_load(
    tmp_path: Path, pipeline_server: LocalServer, model: str, extra: dict[str, Any], message: str
) -> None:
    spec = spec_file(tmp_path, model=model, url=pipeline_server.endpoint.url("grpc"), **extra)
    with ServerControl(pipeline_server.endpoint, "grpc") as control:
        control.load_model(model)  # as the user serves it (other tests' sweeps put their models back)
    result = sweep(str(spec), "--out", str(tmp_path / "out"))
    assert result.exit_code == 2, result.output
    assert message in result.output
    runs = list((tmp_path / "out").iterdir()) if (tmp_path / "out").exists() else []
    assert all(not (r / "measurements.csv").exists() for r in runs)  # nothing was measured


def test_two_models_on_one_server_each_meet_their_own_budget(tmp_path: Path, triton_server: Any) -> None:
    spec = tmp_path / "targets.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "url": triton_server.endpoint.url("grpc"),
                "budget_ms": 100,
                "percentile": PERCENTILE,
                "strategy": "grid",
                "confirm_top": 0,
                "load": LOAD,
                "targets": {
                    "identity": {
                        "share": 3,
                        "budget_ms": 60,
                        "inputs": {"INPUT0": [16]},
                        "space": {"instance_count": [1, 2], "max_batch_size": [8], "max_queue_delay_us": [0]},
                    },
                    "demo_mlp": {
                        "share": 1,
                        "budget_ms": 90,
                        "space": {"instance_count": [1], "max_batch_size": [8], "max_queue_delay_us": [0]},
                    },
                },
            },
            sort_keys=False,
        )
    )
    result = sweep(str(spec), "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    assert "identity: " in result.output and "(its budget 60 ms)" in result.output
    (run,) = list((tmp_path / "out").iterdir())
    assert run.name.startswith("identity+demo_mlp-")
    summary = json.loads((run / "summary.json").read_text())
    outcome = summary["best"]["targets"]
    assert set(outcome) == {"identity", "demo_mlp"} and set(summary["best"]["models"]) == {
        "identity",
        "demo_mlp",
    }
    for name, budget in (("identity", 60), ("demo_mlp", 90)):
        assert (
            outcome[name]["meets"]
            and outcome[name]["throughput_rps"] > 0
            and outcome[name]["budget_ms"] == budget
        )
        assert outcome[name]["p50_ms"] <= budget
        assert (run / "best" / name / "config.pbtxt").is_file()
    levels = pd.read_csv(run / "measurements.csv")
    # Both models were measured at every level, each with its share of it (3 : 1 in flight).
    both = levels[levels["load_level"] >= 4]
    assert not both.empty
    assert (both["target.identity.load_level"] == (both["load_level"] * 0.75).round()).all()
    assert (both["target.demo_mlp.load_level"] == (both["load_level"] * 0.25).round().clip(lower=1)).all()
    # The level's throughput is both models' together.
    total = levels["target.identity.throughput_rps"] + levels["target.demo_mlp.throughput_rps"]
    assert np.allclose(levels["throughput_rps"], total)
    configs = pd.read_csv(run / "configs.csv")
    assert (
        sorted(configs["identity.instance_count"]) == [1, 2]
        and (configs["demo_mlp.instance_count"] == 1).all()
    )
    html = (run / "report.html").read_text()
    assert "id='targets'" in html and "<td>identity</td>" in html and "<td>demo_mlp</td>" in html
