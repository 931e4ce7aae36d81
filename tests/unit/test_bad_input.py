"""Bad input to `tritune sweep` and `tritune profile` that is refused before any server starts
(and before any is reached): a clear message, exit code 2 and no traceback. The cases that need
a server to be told apart are in tests/integration (test_bad_input.py, test_profile.py, ...)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from click.testing import CliRunner

from analyzer.cli.main import main
from tests.helpers import expect_error, free_port, quiet_sweep, run_cli, write_spec

# -- sweep: the spec and the command line --------------------------------------------------------


@pytest.mark.parametrize(
    "content, message",
    [
        ("model: x\nspace: [1, 2\n", "not valid YAML at line"),
        ("model: x\nmodel_repository: .\nbogus: 3\n", "key 'bogus': unknown key"),
        ("model: x\nmodel_repository: .\nbudget_ms: -1\n", "key 'budget_ms': must be > 0"),
    ],
)
def test_spec_errors_exit_2(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    result = run_cli("sweep", str(path))
    assert result.exit_code == 2
    assert message in result.stderr and "Traceback" not in result.output


def test_budget_must_be_positive(tmp_path: Path, model_repo: Path) -> None:
    r = quiet_sweep(write_spec(tmp_path, model="identity", model_repository=str(model_repo), budget_ms=0))
    assert r.exit_code == 2 and "key 'budget_ms': must be > 0" in r.stderr


def test_budget_override_must_be_positive(tmp_path: Path, model_repo: Path) -> None:
    spec = write_spec(tmp_path, model="identity", model_repository=str(model_repo), budget_ms=50)
    result = run_cli("sweep", str(spec), "--budget-ms", "0")
    # Click checks the range: its message names the option and the bad value.
    assert result.exit_code == 2 and "'--budget-ms': 0.0 is not in the range x>0" in result.stderr


def test_an_empty_value_list_is_refused(tmp_path: Path, model_repo: Path) -> None:
    r = quiet_sweep(
        write_spec(tmp_path, model="identity", model_repository=str(model_repo), space={"instance_count": []})
    )
    assert r.exit_code == 2 and "key 'space.instance_count'" in r.stderr


def test_unwritable_output_directory(tmp_path: Path, model_repo: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    r = quiet_sweep(
        write_spec(tmp_path, model="identity", model_repository=str(model_repo)),
        "--out",
        str(blocker / "runs"),
    )
    assert r.exit_code == 2 and "cannot write the run directory" in r.stderr and "--out" in r.stderr


def test_a_sweep_with_an_unreachable_database_exits_2_before_starting_a_server(
    tmp_path: Path, model_repo: Path
) -> None:
    spec = write_spec(tmp_path, model="identity", model_repository=str(model_repo), inputs={"INPUT0": [16]})
    unreachable = "postgresql+psycopg://x@127.0.0.1:1/db"
    result = CliRunner().invoke(
        main, ["sweep", str(spec), "--storage", unreachable, "--out", str(tmp_path / "out")]
    )
    assert result.exit_code == 2, result.output
    assert "cannot reach the database" in result.output
    assert not (tmp_path / "out").exists()  # nothing was started or written


# -- profile -------------------------------------------------------------------------------------


def test_unreachable_url() -> None:
    err = expect_error(2, "profile", "--url", f"127.0.0.1:{free_port()}", "-m", "x", "--quiet")
    assert "cannot reach a Triton server" in err


def test_tritonserver_not_found(model_repo: Path, tmp_path: Path) -> None:
    err = expect_error(
        2,
        "profile",
        "--model-repository",
        str(model_repo),
        "-m",
        "sleepy",
        "--triton-server-path",
        str(tmp_path / "missing"),
        "--quiet",
    )
    assert "no executable tritonserver" in err and "tritune[server]" in err


def test_port_in_use(model_repo: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        err = expect_error(
            2,
            "profile",
            "--model-repository",
            str(model_repo),
            "-m",
            "sleepy",
            "--server-port",
            str(port),
            "--quiet",
        )
    assert f"port {port}" in err and "in use" in err


def test_missing_repository(tmp_path: Path) -> None:
    err = expect_error(2, "profile", "--model-repository", str(tmp_path / "nope"), "-m", "x", "--quiet")
    assert "does not exist" in err


def test_both_or_neither_server_source() -> None:
    assert "exactly one of --url" in expect_error(2, "profile", "-m", "x", "--quiet")


def test_bad_levels() -> None:
    url = f"127.0.0.1:{free_port()}"  # never reached: the levels are refused first
    assert "whole numbers > 0" in expect_error(
        2, "profile", "--url", url, "-m", "sleepy", "--concurrency", "1.5"
    )
    assert "not both" in expect_error(
        2, "profile", "--url", url, "-m", "sleepy", "--concurrency", "1", "--rate", "5"
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["--schedule", "ramp:1:2"], "--schedule: bad schedule 'ramp:1:2': expected one of"),
        (["--schedule", "trace:/nonexistent/t.txt"], "cannot read"),
        (["--schedule", "ramp:1:2:3", "--rate", "5"], "not both"),
        (["--timeline", "x.csv", "--rate", "5"], "--timeline needs --schedule"),
        (["--schedule", "ramp:1:2:3", "--scale", "0"], "--scale"),
    ],
)
def test_bad_schedules_exit_2_before_any_load(args: list[str], message: str) -> None:
    result = CliRunner().invoke(main, ["profile", "-m", "identity", "--url", "127.0.0.1:1", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_unknown_model_lists_the_repository(tmp_path: Path, model_repo: Path) -> None:
    r = quiet_sweep(
        write_spec(tmp_path, model="nosuch", model_repository=str(model_repo)), "--out", str(tmp_path / "o")
    )
    assert r.exit_code == 2
    assert "model 'nosuch' not found" in r.stderr and "demo_mlp" in r.stderr and "identity" in r.stderr


def test_non_batching_model_asked_to_batch(tmp_path: Path, model_repo: Path) -> None:
    r = quiet_sweep(
        write_spec(
            tmp_path, model="sleepy", model_repository=str(model_repo), space={"max_batch_size": [1, 8]}
        ),
        "--out",
        str(tmp_path / "o"),
    )
    assert r.exit_code == 2
    assert "has max_batch_size 0 (it cannot batch)" in r.stderr and "space.max_batch_size" in r.stderr
    r = quiet_sweep(
        write_spec(
            tmp_path, model="sleepy", model_repository=str(model_repo), space={"max_queue_delay_us": [0, 500]}
        ),
        "--out",
        str(tmp_path / "o2"),
    )
    assert r.exit_code == 2 and "cannot use dynamic batching" in r.stderr


def test_empty_search_space(tmp_path: Path, model_repo: Path) -> None:
    # (An empty list of values is a spec error: tests/unit/test_bad_input.py.)
    r = quiet_sweep(
        write_spec(
            tmp_path,
            model="demo_mlp",
            model_repository=str(model_repo),
            space={"max_batch_size": [2], "max_queue_delay_us": [0], "preferred_batch_size": [[4]]},
        ),
        "--out",
        str(tmp_path / "o"),
    )
    assert r.exit_code == 2 and "the search space has no valid config" in r.stderr
