"""A shared study's PostgreSQL stopped for 25 s while two workers measure (`pg_ctl stop -m fast`,
then started again on the same data directory and port): both workers wait it out and finish,
no config is measured twice, neither takes the other's config over (the outage is no sign that
a worker died), nothing ends in a traceback, the report agrees with the workers,
and the database password (given through TRITUNE_STORAGE) shows nowhere: not in their output,
not in their run directories, not in the study."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import optuna
import pytest
from click.testing import CliRunner
from sqlalchemy.engine import make_url

from analyzer.cli.main import main
from tests.helpers import opened, picked, shared_spec, shared_worker, study_rows, unfinished_claims, wait_for
from tests.pg import Postgres

# Two configs: each worker measures one, and the survivor of a fault takes the other over.
CONFIGS = {"i1_b8_d0", "i2_b8_d0"}
OUTAGE_S = 25.0
PASSWORD = "pw-never-shown"  # trust auth: the server accepts any password


def _text_files(root: Path) -> str:
    return "".join(p.read_text(errors="replace") for p in root.rglob("*") if p.is_file())


def test_two_workers_wait_out_a_database_outage(tmp_path: Path, model_repo: Path, postgres: Postgres) -> None:
    url = make_url(postgres.url).set(password=PASSWORD).render_as_string(hide_password=False)
    spec = shared_spec(tmp_path, model_repo, max_batch_size=[8])
    # Short heartbeats and grace: the outage is five grace periods long, so a worker that took
    # the database's silence for its peer's death would take its config over.
    env = {"TRITUNE_STORAGE": url, "TRITUNE_HEARTBEAT_S": "1", "TRITUNE_GRACE_S": "5"}
    workers = [shared_worker(spec, "outage", tmp_path / f"out{i}", env=env) for i in range(2)]
    try:
        wait_for(
            lambda: (
                all(unfinished_claims(url, "outage", w.pid) for w in workers)
                or any(w.poll() is not None for w in workers)
            ),
            120,
            "both workers to be measuring",
        )
        assert all(w.poll() is None for w in workers), [w.communicate()[0] for w in workers]
        postgres.stop()
        try:
            time.sleep(OUTAGE_S)  # the fault itself: the database is down this long
        finally:
            postgres.start()
        try:
            outputs = [w.communicate(timeout=180)[0] for w in workers]
        except subprocess.TimeoutExpired:
            pytest.fail("a worker did not finish after the outage")
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
                w.wait()
    assert [w.returncode for w in workers] == [0, 0], outputs
    assert not any("Traceback" in o for o in outputs), outputs
    # Nobody's work was lost to the outage: no config was taken over from a live worker.
    assert not any("taken over" in o or "dropped here" in o for o in outputs), outputs
    # The outage was seen (and waited out), with the URL shown without its password.
    assert any("database at postgresql+psycopg://tritune:***@" in o for o in outputs), outputs
    configs = study_rows(url, "outage", "config")
    assert sorted(configs["config_id"]) == sorted(CONFIGS)  # every config once
    levels = study_rows(url, "outage", "measurement")
    assert levels.groupby("config_id")["trial"].nunique().max() == 1  # each config's levels: one trial
    # Both workers and the report name the same pick (the report also reads TRITUNE_STORAGE).
    report = CliRunner().invoke(
        main,
        ["report", "--study", "outage", "--out", str(tmp_path / "reports")],
        env={"TRITUNE_STORAGE": url},
    )
    assert report.exit_code == 0, report.output
    assert {picked(o) for o in outputs} == {picked(report.output)}
    # No password anywhere: output, run directories (spec.yaml, summary.json, ...), the study.
    study = optuna.load_study(study_name="outage", storage=opened(optuna.storages.RDBStorage(url)))
    seen = "".join(outputs) + report.output + _text_files(tmp_path) + json.dumps(study.user_attrs)
    assert PASSWORD not in seen
