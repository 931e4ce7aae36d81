"""A sweep shared by two workers through a real PostgreSQL: each with its own local
tritonserver, every config measured exactly once, a killed worker's config taken over, the
study's report, and the errors for bad storage."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from analyzer.cli.main import main
from tests.helpers import (
    opened,
    picked,
    shared_spec,
    shared_worker,
    study_claims,
    study_rows,
    unfinished_claims,
)

CONFIGS = {f"i{i}_b{b}_d{d}" for i in (1, 2) for b in (1, 8) for d in (0, 500)}


def write_spec(tmp_path: Path, model_repo: Path, confirm_top: int = 0) -> Path:
    return shared_spec(tmp_path, model_repo, confirm_top=confirm_top, max_queue_delay_us=[0, 500])


@pytest.mark.parametrize("confirm_top", [0, 2])
def test_two_workers_share_one_sweep_and_the_report_agrees(
    tmp_path: Path, model_repo: Path, postgres_url: str, confirm_top: int
) -> None:
    spec = write_spec(tmp_path, model_repo, confirm_top)
    study = f"pair{confirm_top}"
    workers = [shared_worker(spec, study, tmp_path / f"out{i}", url=postgres_url) for i in range(2)]
    outputs = [w.communicate(timeout=600)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs
    configs = study_rows(postgres_url, study, "config")
    # Every config measured exactly once, and both workers did some of them.
    assert sorted(configs["config_id"]) == sorted(CONFIGS)
    assert configs["worker"].nunique() == 2
    # Each worker's run directory holds every worker's rows.
    for i in range(2):
        (run,) = (tmp_path / f"out{i}").iterdir()
        assert set(pd.read_csv(run / "configs.csv")["config_id"]) == CONFIGS
    if confirm_top:
        # One worker confirmed the top 2, three rounds each (confirmation rows carry no trial); the
        # other waited for it, so both print the confirmed pick.
        confirms = study_rows(postgres_url, study, "measurement").query("trial.isna()")
        assert confirms["worker"].nunique() == 1
        assert confirms.groupby("config_id").size().tolist() == [3, 3]
        assert sum("waiting for its answer" in o for o in outputs) == 1, outputs
    choices = {picked(o) for o in outputs}
    assert len(choices) == 1, outputs
    result = CliRunner().invoke(
        main, ["report", "--storage", postgres_url, "--study", study, "--out", str(tmp_path / "reports")]
    )
    assert result.exit_code == 0, result.output
    assert picked(result.output) == choices.pop()
    run = tmp_path / "reports" / f"identity-{study}"
    assert (run / "report.html").is_file() and (run / "best" / "identity" / "config.pbtxt").is_file()


def test_a_killed_worker_s_config_is_taken_over_and_measured_once(
    tmp_path: Path, model_repo: Path, postgres_url: str
) -> None:
    spec = write_spec(tmp_path, model_repo)
    victim = shared_worker(spec, "kill", tmp_path / "victim", url=postgres_url)
    survivor = shared_worker(spec, "kill", tmp_path / "survivor", url=postgres_url)
    # Kill the first worker while it holds a claim on a config it has not finished.
    deadline = time.monotonic() + 240
    held = None
    while held is None and time.monotonic() < deadline and victim.poll() is None:
        mine = unfinished_claims(postgres_url, "kill", victim.pid)
        if (
            mine
            and len([c for c, w in study_claims(postgres_url, "kill") if w.endswith(f":{victim.pid}")]) >= 2
        ):
            held = mine[0]
        else:
            time.sleep(0.2)
    assert held is not None, "the worker never held an unfinished claim"
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait(timeout=30)
    output = survivor.communicate(timeout=600)[0]
    assert survivor.returncode == 0, output
    configs = study_rows(postgres_url, "kill", "config")
    assert sorted(configs["config_id"]) == sorted(CONFIGS)
    # The killed config: one config row and measurement rows all from the worker that finished it.
    (row,) = configs[configs["config_id"] == held].itertuples()
    assert row.worker.endswith(f":{survivor.pid}")
    levels = study_rows(postgres_url, "kill", "measurement")
    assert set(levels[levels["config_id"] == held]["worker"]) == {row.worker}
    assert levels[levels["config_id"] == held]["trial"].nunique() == 1


@pytest.mark.parametrize(
    "url, study, message",
    [
        ("not a url", "s", "is not a database URL Optuna can use"),
        ("postgresql+psycopg://tritune@127.0.0.1:1/tritune", "s", "cannot reach the database at --storage"),
        (None, "no-such-study", "no study 'no-such-study' in the database"),
    ],
)
def test_bad_storage_exits_2(
    tmp_path: Path, postgres_url: str, url: str | None, study: str, message: str
) -> None:
    result = CliRunner().invoke(
        main, ["report", "--storage", url or postgres_url, "--study", study, "--out", str(tmp_path)]
    )
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_a_worker_on_a_different_server_is_refused(
    tmp_path: Path, model_repo: Path, postgres_url: str
) -> None:
    import optuna

    spec = write_spec(tmp_path, model_repo)
    # A study started on another kind of server: its recorded identity differs in Triton's version.
    storage = opened(optuna.storages.RDBStorage(postgres_url))
    study = optuna.create_study(study_name="elsewhere", storage=storage, direction="maximize")
    study.set_user_attr("server_identity", {"triton_version": "0.0.1", "host": "gpu-box-7"})
    study.set_user_attr("spec", {})
    result = CliRunner().invoke(
        main,
        [
            "sweep",
            str(spec),
            "--storage",
            postgres_url,
            "--study",
            "elsewhere",
            "--out",
            str(tmp_path / "out"),
        ],
    )
    assert result.exit_code == 2, result.output
    assert (
        "study 'elsewhere' was started on a different server (gpu-box-7): triton_version: this worker"
        in result.output
    )
    (run,) = (tmp_path / "out").iterdir()
    assert not (run / "measurements.csv").exists()  # refused before anything was measured
