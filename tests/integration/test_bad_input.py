"""The bad-input matrix of a sweep, for the cases a server (or a first sweep) tells apart: each
with a clear message, its exit code and no traceback. The cases refused before any server
starts are in tests/unit/test_bad_input.py."""

from __future__ import annotations

import json
from pathlib import Path

from analyzer.server.discovery import find_tritonserver
from analyzer.server.local import LocalServer
from tests.helpers import quiet_sweep, write_spec


def test_max_batch_size_0_model_tunes_instances_only(tmp_path: Path, model_repo: Path) -> None:
    r = quiet_sweep(
        write_spec(
            tmp_path, model="nobatch", model_repository=str(model_repo), space={"instance_count": [1, 2]}
        ),
        "--out",
        str(tmp_path / "o"),
    )
    assert r.exit_code == 0, r.output
    run = next((tmp_path / "o").iterdir())
    import pandas as pd

    assert sorted(pd.read_csv(run / "configs.csv")["config_id"]) == ["i1_b0", "i2_b0"]


def test_variable_dims_without_shape(tmp_path: Path, model_repo: Path) -> None:
    r = quiet_sweep(
        write_spec(tmp_path, model="identity", model_repository=str(model_repo)), "--out", str(tmp_path / "o")
    )
    assert r.exit_code == 2
    assert "variable dimensions" in r.stderr and "inputs:" in r.stderr


def test_resume_with_an_incompatible_spec(tmp_path: Path, model_repo: Path) -> None:
    first = write_spec(
        tmp_path, model="sleepy", model_repository=str(model_repo), space={"instance_count": [1]}
    )
    r = quiet_sweep(first, "--out", str(tmp_path / "o"))
    run = next((tmp_path / "o").iterdir())
    # The first sweep finished: exit 0 with a pick, or 3 when no level could prove the budget
    # (sleepy's few requests per level make that close); the exit code says which.
    summary = json.loads((run / "summary.json").read_text())
    assert summary["finished"] and r.exit_code == (0 if summary["best"] else 3), r.output
    other = tmp_path / "other"
    other.mkdir()
    changed = write_spec(
        other, model="sleepy", model_repository=str(model_repo), budget_ms=5, space={"instance_count": [1, 2]}
    )
    r = quiet_sweep(changed, "--resume", str(run))
    assert r.exit_code == 2
    assert "measured with a different budget_ms, space" in r.stderr
    r = quiet_sweep("--resume", str(tmp_path / "nowhere"))
    assert r.exit_code == 2 and "is not a directory" in r.stderr


def test_remote_server_not_in_explicit_mode(tmp_path: Path, model_repo: Path) -> None:
    # A server that loads its whole repository at start and refuses model control.
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "sleepy").symlink_to(model_repo / "sleepy")
    with LocalServer(find_tritonserver(), repo, tmp_path / "none.log", control_mode="none") as server:
        assert server.endpoint is not None
        r = quiet_sweep(
            write_spec(
                tmp_path, model="sleepy", url=server.endpoint.url("grpc"), space={"instance_count": [1]}
            ),
            "--out",
            str(tmp_path / "o"),
        )
    assert r.exit_code == 2
    assert "not in explicit model-control mode" in r.stderr and "--model-control-mode=explicit" in r.stderr
