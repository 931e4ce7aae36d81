"""The run directory's tables: rows appended durably and lined up with the header on disk, also
for a run directory written by an older tritune with other columns, and after resume drops the
rows of a config that was in flight; the store names every file of a run directory."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import pandas as pd

from analyzer.config.modelconfig import Candidate
from analyzer.judge.verdict import budget_verdict
from analyzer.stats.measurement import Measurement
from analyzer.store.rows import level_row
from analyzer.store.rundir import CONFIG_COLUMNS, MEASUREMENT_COLUMNS, RunStore
from tests.helpers import measurement


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_appends_follow_the_header_on_disk(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    store.append_measurement({"config_id": "a", "load_level": 1, "p99_ms": 2.5, "not_a_column": 1})
    store.append_measurement({"config_id": "a", "load_level": 2, "p99_ms": float("nan")})
    with open(store.path("measurements"), newline="") as fh:
        assert next(csv.reader(fh)) == MEASUREMENT_COLUMNS
    rows = _rows(store.path("measurements"))
    assert [(r["config_id"], r["load_level"], r["p99_ms"]) for r in rows] == [
        ("a", "1", "2.5"),
        ("a", "2", ""),
    ]
    # A pipeline's first row brings its per-model and per-step columns into the header.
    store.append_config({"config_id": "p", "pre.instance_count": 2, "step.pre.busy_pct": 40.0, "junk": 1})
    store.append_config({"config_id": "q", "pre.instance_count": 1})
    with open(store.path("configs"), newline="") as fh:
        assert next(csv.reader(fh)) == [*CONFIG_COLUMNS, "pre.instance_count", "step.pre.busy_pct"]
    assert [(r["config_id"], r["pre.instance_count"]) for r in _rows(store.path("configs"))] == [
        ("p", "2"),
        ("q", "1"),
    ]


def test_an_older_header_is_kept(tmp_path: Path) -> None:
    old = ["config_id", "load_level", "p99_ms"]  # a run directory from an older tritune
    (tmp_path / "measurements.csv").write_text(",".join(old) + "\na,1,2.0\n")
    store = RunStore(tmp_path)
    store.append_measurement({"config_id": "b", "load_level": 4, "p99_ms": 3.0, "budget_bound_ms": 3.5})
    store.append_measurement({"config_id": "b", "load_level": 8, "p99_ms": 4.0})
    lines = (tmp_path / "measurements.csv").read_text().splitlines()
    assert lines == ["config_id,load_level,p99_ms", "a,1,2.0", "b,4,3.0", "b,8,4.0"]


def test_rows_of_an_unfinished_config_are_dropped_and_appends_still_line_up(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    for cid in ("a", "b"):
        store.append_measurement({"config_id": cid, "load_level": 1, "p99_ms": 1.0})
    store.append_config({"config_id": "a", "status": "ok", "capacity_rps": 10.0})
    assert store.keep_only_configs({"a"}) == 1  # b's measurement: it was in flight
    store.append_measurement({"config_id": "b", "load_level": 1, "p99_ms": 1.5})
    rows = _rows(store.path("measurements"))
    assert [(r["config_id"], r["p99_ms"]) for r in rows] == [("a", "1.0"), ("b", "1.5")]
    assert [r["config_id"] for r in _rows(store.path("configs"))] == ["a"]
    with open(store.path("configs"), newline="") as fh:
        assert next(csv.reader(fh)) == CONFIG_COLUMNS


def test_run_files_are_named_by_the_store(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "run")
    assert store.read_best_config("m") is None and store.read_timeline("i1_b8", 2.0) is None
    path = store.write_best_config("m", "max_batch_size: 8\n")
    assert path == tmp_path / "run" / "best" / "m" / "config.pbtxt"
    assert store.read_best_config("m") == "max_batch_size: 8\n"
    table = pd.DataFrame({"second": [0.0, 1.0], "due": [10, 12]})
    written = store.write_timeline("i1_b8", 2.0, table, phase="confirm1")
    assert written == tmp_path / "run" / "timelines" / "i1_b8_x2_confirm1.csv"
    assert store.read_timeline("i1_b8", 2.0) is None  # the search's timeline is another file
    assert store.read_timeline("i1_b8", 2.0, phase="confirm1").equals(table)


def test_a_shared_studys_run_directory_is_made_once(tmp_path: Path) -> None:
    first = RunStore.for_study(tmp_path, "m", "s1")
    assert first.dir == tmp_path / "m-s1" and first.dir.is_dir()
    first.write_json("summary", {"finished": False})
    again = RunStore.for_study(tmp_path, "m", "s1")  # a refresh: the same directory, kept
    assert again.dir == first.dir and again.read_summary() == {"finished": False}


def test_version_changes_when_a_sweep_writes(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    empty = store.version()
    assert empty == (0,) * 9  # no tables, no summary yet
    store.append_measurement({"config_id": "a", "load_level": 1, "p99_ms": 1.0})
    grown = store.version()
    assert grown != empty and grown[3:] == empty[3:]  # only measurements.csv changed
    store.write_json("summary", {"finished": True})
    assert store.version()[:6] == grown[:6] and store.version()[6:] != grown[6:]


def test_measurement_columns_are_the_measurement_fields_plus_the_rows_own() -> None:
    """measurements.csv's columns and `Measurement` are two lists: a field added to one and not
    the other fails here, not in a user's report."""
    fields = {f.name for f in dataclasses.fields(Measurement)} - {"extra"}  # extra: per-run columns
    # What a row adds to the measurement: the config, the verdict and the phase.
    row_own = {"config_id", "instance_count", "max_batch_size", "max_queue_delay_us"}
    row_own |= {"meets_budget", "verdict", "verdict_reason", "verdict_proven", "phase", "confirm_round"}
    assert set(MEASUREMENT_COLUMNS) == fields | row_own
    assert len(MEASUREMENT_COLUMNS) == len(set(MEASUREMENT_COLUMNS))
    m, cand = measurement(5.0), Candidate(1, 8, 0)
    assert list(level_row(cand.config_id, cand, m, budget_verdict(m, 10.0), "search")) == MEASUREMENT_COLUMNS
