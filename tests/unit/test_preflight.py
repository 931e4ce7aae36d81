"""What a sweep refuses before its server starts (analyzer.plan.preflight): no server runs here."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from analyzer.errors import ModelNotFoundError, UsageError
from analyzer.plan.preflight import check_before_server
from analyzer.spec.spec import SweepSpec, parse_spec
from analyzer.sweep.setup import SweepOptions, run_sweep
from tests.builders import BAD_PIPELINE_SPECS
from tests.helpers import ROOT

PIPELINE_MODELS = ROOT / "sweeps" / "examples" / "pipeline" / "models"


def _spec(tmp_path: Path, **data: Any) -> SweepSpec:
    return parse_spec({"budget_ms": 100, **data}, str(tmp_path / "spec.yaml"), tmp_path)


@pytest.mark.parametrize(
    "model, space, message",
    [
        ("sleepy", {"max_batch_size": [1, 8]}, "has max_batch_size 0 (it cannot batch)"),
        ("sleepy", {"max_queue_delay_us": [0, 500]}, "cannot use dynamic batching"),
        (
            "demo_mlp",
            {"max_batch_size": [2], "max_queue_delay_us": [0], "preferred_batch_size": [[4]]},
            "the search space has no valid config",
        ),
    ],
)
def test_a_space_the_model_cannot_take_is_refused(
    tmp_path: Path, model_repo: Path, model: str, space: dict[str, Any], message: str
) -> None:
    with pytest.raises(UsageError) as err:
        check_before_server(_spec(tmp_path, model=model, model_repository=str(model_repo), space=space))
    assert message in err.value.message


def test_a_model_not_in_the_repository_is_refused_with_what_it_has(tmp_path: Path, model_repo: Path) -> None:
    with pytest.raises(ModelNotFoundError) as err:
        check_before_server(_spec(tmp_path, model="nosuch", model_repository=str(model_repo)))
    assert err.value.message.startswith(
        f"model 'nosuch' not found in the model repository {model_repo}; it has: "
    )
    assert "demo_mlp" in err.value.message and "identity" in err.value.message
    assert err.value.exit_code == 2


@pytest.mark.parametrize("model, extra, message", BAD_PIPELINE_SPECS)
def test_a_bad_pipeline_spec_is_refused(
    tmp_path: Path, model: str, extra: dict[str, Any], message: str
) -> None:
    with pytest.raises(UsageError) as err:
        check_before_server(_spec(tmp_path, model=model, model_repository=str(PIPELINE_MODELS), **extra))
    assert message in err.value.message


def test_several_models_each_have_their_space_checked(tmp_path: Path, model_repo: Path) -> None:
    targets = {
        "identity": {"space": {"instance_count": [1, 2]}},
        "sleepy": {"space": {"max_batch_size": [8]}},
    }
    with pytest.raises(UsageError) as err:
        check_before_server(_spec(tmp_path, targets=targets, model_repository=str(model_repo)))
    assert "targets.sleepy" in err.value.message and "cannot batch" in err.value.message


@pytest.mark.parametrize(
    "spec",
    [
        {"model": "identity"},
        {"model": "pipeline", "models": {"classifier": {"instance_count": [1, 2]}}},
        {"model": "pipeline_bls", "models": {"preprocess": {}, "classifier": {"instance_count": [1, 2]}}},
        {"targets": {"identity": {"space": {"instance_count": [1, 2]}}, "demo_mlp": {}}},
    ],
)
def test_good_specs_pass(tmp_path: Path, model_repo: Path, spec: dict[str, Any]) -> None:
    repo = PIPELINE_MODELS if spec.get("model", "").startswith("pipeline") else model_repo
    check_before_server(_spec(tmp_path, model_repository=str(repo), **spec))


def test_a_model_whose_config_the_server_completes_waits_for_the_server(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "auto" / "1").mkdir(parents=True)  # no config.pbtxt: nothing to check it against yet
    check_before_server(
        _spec(tmp_path, model="auto", model_repository=str(repo), space={"max_batch_size": [8]})
    )


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("bad.json", "{not json", "bad.json: not valid JSON"),
        ("empty.json", json.dumps({"data": []}), "expected perf_analyzer's format"),
        ("bad.npy", "not numpy", "cannot read"),
        ("missing.json", None, "cannot read"),
    ],
)
def test_a_data_file_that_does_not_parse_is_refused_even_for_a_running_server(
    tmp_path: Path, name: str, text: str | None, message: str
) -> None:
    if text is not None:
        (tmp_path / name).write_text(text)
    spec = _spec(tmp_path, model="tokens", url="localhost:1", input_data=name)
    with pytest.raises(UsageError) as err:
        check_before_server(spec)
    assert message in err.value.message and err.value.exit_code == 2


def test_a_sweep_refuses_a_bad_spec_before_its_run_directory_and_server(
    tmp_path: Path, model_repo: Path
) -> None:
    spec = _spec(tmp_path, model="sleepy", model_repository=str(model_repo), space={"max_batch_size": [1, 8]})
    with pytest.raises(UsageError, match="cannot batch"):
        run_sweep(spec, SweepOptions(out=str(tmp_path / "out")))
    assert not (tmp_path / "out").exists()  # set-up stopped before the run directory (and the server)
