"""The run's tables kept in memory (analyzer.store.csv_tables.RunTables): typed as pandas reads
the files back, and read without the files."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from analyzer.config.modelconfig import Candidate
from analyzer.config.pipeline import JointCandidate
from analyzer.judge.levelsearch import CapacityResult
from analyzer.judge.verdict import Verdict
from analyzer.stats.measurement import Measurement
from analyzer.store.rows import config_row, level_row
from analyzer.store.rundir import RunStore
from analyzer.store.tables import ResultTables
from tests.helpers import measurement

MEETS, OVER = Verdict(True, "meets", "p99 1 ms <= 10 ms"), Verdict(False, "over_budget", "p99 50 ms", False)


def _m(level: float, p99_ms: float, **kw: object) -> Measurement:
    return measurement(
        p99_ms,
        load_level=level,
        throughput_rps=97.3 * level,
        p90_ms=p99_ms,
        p95_ms=p99_ms,
        max_ms=p99_ms * 1.7,
        mean_ms=p99_ms / 2.9,
        p99_ci_high_ms=math.inf,
        requests=1234,
        windows=4,
        duration_s=1.25,
        **kw,
    )


def _fill(tables: ResultTables) -> None:
    """Rows like a sweep's: knobs with and without batching and preferred sizes, a failed config,
    confirmation rounds, a client-bound level, errors."""
    cands = [Candidate(1, 8, 0, (4,)), Candidate(2, 8, None), Candidate(1, 32, 500, (8, 16), "KIND_GPU")]
    for i, cand in enumerate(cands):
        measured = [(_m(2.0, 1.5), MEETS), (_m(4.0, 50.0, errors=3, error_kinds="timeout=3"), OVER)]
        for m, verdict in measured:
            tables.append_measurement(level_row(cand.config_id, cand, m, verdict, "search"))
        result = CapacityResult(194.6, 2.0, measured, pruned=i == 1)
        status = "failed" if i == 2 else ("pruned" if result.pruned else "ok")
        tables.append_config(
            config_row(
                cand,
                None if i == 2 else result,
                status=status,
                error="boom, with a comma" if i == 2 else "",
                mode="concurrency",
                trial=i,
                wall_s=3.14159,
                percentile=99.0,
            )
        )
    m = _m(2.0, 1.2, client_bound=True, client_bound_reason="the generator fell behind")
    tables.append_measurement(level_row(cands[0].config_id, cands[0], m, MEETS, "confirm", 1))


def _read(store: RunStore, name: str) -> pd.DataFrame:
    return pd.read_csv(store.path(name))


def test_the_tables_in_memory_are_the_files_as_pandas_reads_them(tmp_path: Path) -> None:
    store = RunStore.create(None, "m", run_dir=tmp_path / "run")
    tables = store.tables.writer_view()
    assert tables.configs().empty and list(tables.configs().columns) == list(store.configs().columns)
    _fill(tables)
    pd.testing.assert_frame_equal(tables.configs(), _read(store, "configs"))
    pd.testing.assert_frame_equal(tables.measurements(), _read(store, "measurements"))


def test_a_resumed_run_starts_from_the_rows_on_disk(tmp_path: Path) -> None:
    store = RunStore.create(None, "m", run_dir=tmp_path / "run")
    _fill(store.tables.writer_view())
    store.keep_only_configs({"i1_b8_d0_p4", "i2_b8"})  # as a resume does: the rewritten files
    resumed = RunStore(store.dir).tables.writer_view()  # a new store: nothing of the first one cached
    _fill(resumed)
    pd.testing.assert_frame_equal(resumed.configs(), _read(store, "configs"))
    pd.testing.assert_frame_equal(resumed.measurements(), _read(store, "measurements"))


def test_a_pipelines_per_model_columns_follow_the_first_rows_header(tmp_path: Path) -> None:
    store = RunStore.create(None, "m", run_dir=tmp_path / "run")
    tables = store.tables.writer_view()
    cand = JointCandidate((("pre", Candidate(1, 8, 0)), ("cls", Candidate(2, 32, 1000, (16,)))))
    m = _m(2.0, 1.5)
    m.extra["step.pre.busy_pct"] = 40.0
    tables.append_measurement(
        level_row(cand.config_id, Candidate(3, 0, None), m, MEETS, "search", steps=["pre", "cls"])
    )
    tables.append_config(
        config_row(
            cand,
            CapacityResult(194.6, 2.0, [(m, MEETS)], pruned=False),
            status="ok",
            error="",
            mode="concurrency",
            trial=0,
            wall_s=1.0,
            percentile=99.0,
        )
    )
    assert "cls.preferred_batch_size" in tables.configs() and "step.cls.queue_ms" in tables.measurements()
    pd.testing.assert_frame_equal(tables.configs(), _read(store, "configs"))
    pd.testing.assert_frame_equal(tables.measurements(), _read(store, "measurements"))


def test_reading_the_tables_does_not_read_the_files(tmp_path: Path) -> None:
    store = RunStore.create(None, "m", run_dir=tmp_path / "run")
    tables = store.tables.writer_view()
    _fill(tables)
    before = tables.configs()
    store.path("configs").write_text("config_id\n")  # what is on disk no longer matters
    pd.testing.assert_frame_equal(tables.configs(), before)
    assert len(before) == 3
