"""The database URL of a shared study: it may come from TRITUNE_STORAGE instead of the command
line, and no error shows its password, whatever is wrong with it (no database is reached here:
every URL is refused before one would be)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from analyzer.cli.main import main
from analyzer.store.storage_url import redact
from tests.helpers import ROOT, free_port, write_spec

SECRET = "s3cr3t-pw"


def _unreachable() -> str:
    return f"postgresql+psycopg://tritune:{SECRET}@127.0.0.1:{free_port()}/tritune"


BAD_URLS = {
    "unknown driver": (f"nosuchdriver://u:{SECRET}@db-host/db", "nosuchdriver"),
    "unknown DBAPI": (f"postgresql+nosuchdbapi://u:{SECRET}@db-host/db", "nosuchdbapi"),
    "bad port": (f"postgresql+psycopg://u:{SECRET}@db-host:notaport/db", "notaport"),
    "unreachable": (None, "cannot reach the database"),
}


def _spec(tmp_path: Path) -> Path:
    # A repository without the model: without the storage check first, the sweep would stop
    # at the model check instead (exit 2 too, but naming the model).
    (tmp_path / "repo").mkdir()
    return write_spec(tmp_path, model="identity", model_repository=str(tmp_path / "repo"))


def _invoke(args: list[str], env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, args, env=env, catch_exceptions=False)


@pytest.mark.parametrize("command", ["sweep", "report"])
@pytest.mark.parametrize("case", list(BAD_URLS))
def test_a_bad_storage_url_is_refused_without_its_password(tmp_path: Path, command: str, case: str) -> None:
    url, named = BAD_URLS[case]
    url = url or _unreachable()
    args = [str(_spec(tmp_path))] if command == "sweep" else []
    result = _invoke([command, *args, "--storage", url, "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert named in result.stderr  # the message says what is wrong ...
    assert SECRET not in result.output + result.stderr  # ... and never shows the password
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists()  # refused before a run directory or a server


@pytest.mark.parametrize("command", ["sweep", "report"])
def test_the_storage_url_comes_from_tritune_storage(tmp_path: Path, command: str) -> None:
    args = [str(_spec(tmp_path))] if command == "sweep" else []
    result = _invoke(
        [command, *args, "--out", str(tmp_path / "out")], env={"TRITUNE_STORAGE": _unreachable()}
    )
    assert result.exit_code == 2, result.output
    assert (
        "cannot reach the database at --storage postgresql+psycopg://tritune:***@127.0.0.1" in result.stderr
    )
    assert SECRET not in result.output + result.stderr


def test_a_run_directory_given_wins_over_tritune_storage(tmp_path: Path) -> None:
    run = tmp_path / "run_demo"
    shutil.copytree(ROOT / "tests" / "data" / "run_demo", run)
    result = _invoke(["report", str(run)], env={"TRITUNE_STORAGE": _unreachable()})
    assert result.exit_code == 0, result.output
    assert (run / "report.html").is_file()


def test_resume_with_tritune_storage_set_names_the_variable(tmp_path: Path) -> None:
    result = _invoke(["sweep", "--resume", str(tmp_path)], env={"TRITUNE_STORAGE": _unreachable()})
    assert result.exit_code == 2, result.output
    assert "TRITUNE_STORAGE" in result.stderr and SECRET not in result.stderr


@pytest.mark.parametrize(
    "url, shown",
    [
        (f"postgresql+psycopg://u:{SECRET}@h:5432/db", "postgresql+psycopg://u:***@h:5432/db"),
        (f"postgresql+psycopg://u:{SECRET}@h:notaport/db", "postgresql+psycopg://u:***@h:notaport/db"),
        ("sqlite:///study.db", "sqlite:///study.db"),
        (f"weird u:{SECRET}@h", "<the --storage URL, which cannot be parsed>"),
    ],
)
def test_redact(url: str, shown: str) -> None:
    assert redact(url) == shown
