"""A sweep shared by two workers through a real PostgreSQL: each with its own local
tritonserver, every config measured exactly once, a killed worker's config taken over, the
study's report, and the errors for bad storage."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from analyzer.cli import main
from tests import helpers
from tests.helpers import FAST_LOAD, ROOT

pytestmark = pytest.mark.integration

CONFIGS = {f"i{i}_b{b}_d{d}" for i in (1, 2) for b in (1, 8) for d in (0, 500)}


def write_spec(tmp_path: Path, model_repo: Path, confirm_top: int = 0) -> Path:
    return helpers.write_spec(
        tmp_path,
        model="identity",
        model_repository=str(model_repo),
        budget_ms=50,
        confirm_top=confirm_top,
        inputs={"INPUT0": [16]},
        space={"instance_count": [1, 2], "max_batch_size": [1, 8], "max_queue_delay_us": [0, 500]},
        load={**FAST_LOAD, "max_level": 4, "refine_steps": 1},
    )


def start_worker(spec: Path, url: str, study: str, out: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "analyzer.cli",
            "sweep",
            str(spec),
            "--storage",
            url,
            "--study",
            study,
            "--out",
            str(out),
        ],
        cwd=ROOT,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def rows(url: str, study: str, kind: str) -> pd.DataFrame:
    with sa.create_engine(url).connect() as conn:
        return pd.read_sql(
            sa.text("select config_id, trial, worker from tritune_rows where study = :s and kind = :k"),
            conn,
            params={"s": study, "k": kind},
        )


def picked(output: str) -> str:
    match = re.search(r"^best config: (\S+)", output, re.M)
    assert match, output
    return match.group(1)


@pytest.mark.parametrize("confirm_top", [0, 2])
def test_two_workers_share_one_sweep_and_the_report_agrees(
    tmp_path: Path, model_repo: Path, postgres_url: str, confirm_top: int
) -> None:
    spec = write_spec(tmp_path, model_repo, confirm_top)
    study = f"pair{confirm_top}"
    workers = [start_worker(spec, postgres_url, study, tmp_path / f"out{i}") for i in range(2)]
    outputs = [w.communicate(timeout=600)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs
    configs = rows(postgres_url, study, "config")
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
        confirms = rows(postgres_url, study, "measurement").query("trial.isna()")
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
    victim = start_worker(spec, postgres_url, "kill", tmp_path / "victim")
    survivor = start_worker(spec, postgres_url, "kill", tmp_path / "survivor")
    engine = sa.create_engine(postgres_url)
    # Kill the first worker while it holds a claim on a config it has not finished.
    deadline = time.monotonic() + 240
    held = None
    while held is None and time.monotonic() < deadline and victim.poll() is None:
        with engine.connect() as conn:
            claims = conn.execute(
                sa.text("select config_id, worker from tritune_claims where study = 'kill'")
            ).all()
        done = set(rows(postgres_url, "kill", "config")["config_id"])
        mine = [c for c, w in claims if w.endswith(f":{victim.pid}") and c not in done]
        if mine and len([c for c, w in claims if w.endswith(f":{victim.pid}")]) >= 2:
            held = mine[0]
        else:
            time.sleep(0.2)
    assert held is not None, "the worker never held an unfinished claim"
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait(timeout=30)
    output = survivor.communicate(timeout=600)[0]
    assert survivor.returncode == 0, output
    configs = rows(postgres_url, "kill", "config")
    assert sorted(configs["config_id"]) == sorted(CONFIGS)
    # The killed config: one config row and measurement rows all from the worker that finished it.
    (row,) = configs[configs["config_id"] == held].itertuples()
    assert row.worker.endswith(f":{survivor.pid}")
    levels = rows(postgres_url, "kill", "measurement")
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
    study = optuna.create_study(study_name="elsewhere", storage=postgres_url, direction="maximize")
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
