"""Both result-table backends (analyzer.store.tables' ResultTables) keep the same contract, as
optuna/testing/pytest_storages.py runs one set of storage tests over every storage: the run
directory's CSV files, and a shared study's database on SQLite (a file in tmp_path) and on a
real PostgreSQL (tests/pg.py's session server, where Debian's package is installed).

Where the backends differ by design it is said: a database row keeps an empty string that a CSV
file reads back as NaN, and the database's frames add a `worker` column after the schema's."""

from __future__ import annotations

import glob
import math
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from analyzer.config.modelconfig import Candidate
from analyzer.judge.levelsearch import CapacityResult
from analyzer.judge.verdict import Verdict
from analyzer.store.columns import CONFIG_COLUMNS, MEASUREMENT_COLUMNS
from analyzer.store.csv_tables import CsvTables
from analyzer.store.db_tables import database_tables
from analyzer.store.rows import config_row, level_row
from analyzer.store.rundir import RunStore
from analyzer.store.study_tables import CONFIRM_CLAIM
from analyzer.store.tables import TablesFactory
from tests.helpers import measurement

MEETS, OVER = Verdict(True, "meets", "p99 1 ms <= 10 ms"), Verdict(False, "over_budget", "p99 50 ms", False)
A, B = Candidate(1, 8, 0, (4,)), Candidate(2, 8, None)
HAVE_POSTGRES = bool(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
BACKENDS = [
    "csv",
    "sqlite",
    pytest.param("postgres", marks=pytest.mark.skipif(not HAVE_POSTGRES, reason="no PostgreSQL package")),
]


@dataclass
class Backend:
    """A run directory built with one backend, and how a row's claim is held there."""

    name: str
    store: RunStore
    hold: Callable[[str, int | None], None]  # (config_id, trial): the claim its rows are written under


def _no_claims(config_id: str, trial: int | None) -> None:
    """The run directory's files: one worker, nothing to claim."""


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """Each backend in turn, on a new run directory (and a new study in the database)."""
    name = request.param
    factory: TablesFactory | None = None
    if name == "sqlite":
        factory = database_tables(f"sqlite:///{tmp_path / 'study.db'}", "s", "w:1")
    elif name == "postgres":
        url = request.getfixturevalue("postgres_url")
        factory = database_tables(url, f"conformance-{uuid.uuid4().hex[:8]}", "w:1")
    store = RunStore.create(None, "m", run_dir=tmp_path / "run", tables=factory)
    claims = store.tables.claims()
    hold = _no_claims
    if claims is not None:

        def hold(config_id: str, trial: int | None) -> None:
            # A confirmation row (trial None) is written under the round's claim.
            key, number = (config_id, trial) if trial is not None else (CONFIRM_CLAIM, -1)
            assert claims.claim(key, number)

    yield Backend(name, store, hold)
    store.tables.close()  # a database's pooled connections, before its fixture stops it


def _level(cand: Candidate, level: float, p99: float, verdict: Verdict, **kw: Any) -> dict[str, Any]:
    m = measurement(p99, load_level=level, throughput_rps=97.3 * level, p90_ms=p99, requests=1234, **kw)
    return level_row(cand.config_id, cand, m, verdict, "search")


def _config(cand: Candidate, trial: int, failed: bool = False) -> dict[str, Any]:
    m = measurement(1.5, load_level=2.0)
    result = None if failed else CapacityResult(194.6, 2.0, [(m, MEETS)], pruned=False)
    return config_row(
        cand,
        result,
        status="failed" if failed else "ok",
        error="boom, with a comma" if failed else "",
        mode="concurrency",
        trial=trial,
        wall_s=3.14159,
        percentile=99.0,
    )


def _fill(b: Backend) -> None:
    """Two trials' rows: A measured at two levels (trial 0), B failed (trial 1)."""
    b.hold(A.config_id, 0)
    b.store.tables.append_measurement(_level(A, 2.0, 1.5, MEETS), 0)
    b.store.tables.append_measurement(_level(A, 4.0, 50.0, OVER, errors=3, error_kinds="timeout=3"), 0)
    b.store.tables.append_config(_config(A, 0), 0)
    b.hold(B.config_id, 1)
    b.store.tables.append_measurement(_level(B, 2.0, math.nan, OVER), 1)
    b.store.tables.append_config(_config(B, 1, failed=True), 1)


def _blank(value: Any) -> bool:
    """Empty as either backend reads it back: NaN (a CSV file's blank) or '' (the database's)."""
    return value == "" or bool(pd.isna(value))


def test_empty_tables_have_the_schemas_columns(backend: Backend) -> None:
    tables = backend.store.tables
    assert list(tables.measurements().columns) == MEASUREMENT_COLUMNS and tables.measurements().empty
    assert list(tables.configs().columns) == CONFIG_COLUMNS and tables.configs().empty
    assert tables.count("measurements") == 0 and tables.count("configs") == 0


def test_rows_come_back_in_order_under_the_schemas_columns(backend: Backend) -> None:
    _fill(backend)
    tables = backend.store.tables
    measurements, configs = tables.measurements(), tables.configs()
    assert list(measurements.columns[: len(MEASUREMENT_COLUMNS)]) == MEASUREMENT_COLUMNS
    assert list(configs.columns[: len(CONFIG_COLUMNS)]) == CONFIG_COLUMNS
    assert list(measurements["config_id"]) == [A.config_id, A.config_id, B.config_id]
    assert list(measurements["load_level"]) == [2.0, 4.0, 2.0]
    assert list(measurements["p99_ms"][:2]) == [1.5, 50.0] and list(measurements["errors"]) == [0, 3, 0]
    assert list(measurements["verdict"]) == ["meets", "over_budget", "over_budget"]
    assert list(configs["config_id"]) == [A.config_id, B.config_id]
    assert list(configs["status"]) == ["ok", "failed"] and list(configs["trial"]) == [0, 1]
    assert configs["capacity_rps"].tolist() == [194.6, 0.0] and configs["error"][1] == "boom, with a comma"
    assert tables.count("measurements") == 3 and tables.count("configs") == 2
    # The store reads through its tables, and the writer's view reads the same rows.
    pd.testing.assert_frame_equal(backend.store.measurements(), measurements)
    view = tables.writer_view()
    assert list(view.measurements()["config_id"]) == list(measurements["config_id"])
    assert list(view.configs()["config_id"]) == list(configs["config_id"])


def test_nan_and_empty_values_read_back_as_blank(backend: Backend) -> None:
    _fill(backend)
    measurements, configs = backend.store.tables.measurements(), backend.store.tables.configs()
    assert pd.isna(measurements["p99_ms"][2])  # a NaN figure
    assert pd.isna(measurements["max_queue_delay_us"][2])  # B has no queue delay
    assert _blank(measurements["error_kinds"][0]) and measurements["error_kinds"][1] == "timeout=3"
    assert _blank(configs["error"][0]) and pd.isna(configs["p99_ms"][1])  # the failed config's


def test_confirmation_rows_belong_to_no_trial(backend: Backend) -> None:
    _fill(backend)
    backend.hold(A.config_id, None)
    m = measurement(1.2, load_level=2.0)
    backend.store.tables.append_measurement(level_row(A.config_id, A, m, MEETS, "confirm", 1), None)
    measurements = backend.store.tables.measurements()
    assert list(measurements["phase"]) == ["search"] * 3 + ["confirm"]
    assert measurements["confirm_round"].iloc[-1] == 1


def test_this_workers_rows_are_in_the_run_directory_and_export_writes_them_all(backend: Backend) -> None:
    _fill(backend)
    files = CsvTables(backend.store.dir)  # what the run directory's files hold
    assert list(files.measurements()["config_id"]) == [A.config_id, A.config_id, B.config_id]
    configs, measurements = backend.store.tables.export()
    assert list(configs["config_id"]) == list(files.configs()["config_id"]) == [A.config_id, B.config_id]
    assert len(measurements) == len(files.measurements()) == 3
    assert list(files.measurements().columns[: len(MEASUREMENT_COLUMNS)]) == MEASUREMENT_COLUMNS


def test_a_resume_keeps_only_finished_configs_and_repairs_the_files(backend: Backend) -> None:
    _fill(backend)
    path = backend.store.path("measurements")
    path.write_bytes(path.read_bytes() + b"half,a,row")  # a kill mid-write
    assert len(backend.store.repair_tables()) == 1
    assert backend.store.keep_only_configs({A.config_id}) == 2  # B's measurement and config rows
    files = CsvTables(backend.store.dir)
    assert set(files.measurements()["config_id"]) == {A.config_id} and len(files.configs()) == 1


def test_outages_are_told_and_claims_are_the_databases_alone(backend: Backend) -> None:
    told: list[str] = []
    backend.store.tables.report_outages(told.append)  # nothing is down: nothing told
    assert told == []
    claims = backend.store.tables.claims()
    assert (claims is None) == (backend.name == "csv")
    if claims is not None:
        assert claims.claim(A.config_id, 7) and claims.holder(A.config_id) == (7, "w:1")
