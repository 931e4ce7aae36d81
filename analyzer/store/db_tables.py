"""A shared study's result tables (analyzer.store.tables' `ResultTables`): every worker's rows in
the study's database (analyzer.store.study_tables.SharedTables: SQLite or PostgreSQL), and this
worker's rows also in its run directory's CSV files as it writes them.

A row goes to the database first: that write refuses a row whose claim this worker lost
(ClaimLostError), and then the files get none either. Reads are the database's (every worker's
rows, with a `worker` column); `export` makes the run directory's files hold them all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from analyzer.store.columns import FIXED_COLUMNS
from analyzer.store.csv_tables import CsvTables
from analyzer.store.db_retry import DbRetry
from analyzer.store.shared_timing import SharedTimings
from analyzer.store.study_tables import SharedTables
from analyzer.store.tables import TablesFactory

KINDS = {"measurements": "measurement", "configs": "config"}  # a table -> the database's row kind


class DatabaseTables:
    """The tables of one shared study as one worker writes and reads them."""

    def __init__(self, shared: SharedTables, files: CsvTables) -> None:
        self.shared = shared
        self.files = files  # this worker's copy in its run directory

    def _append(self, name: str, row: dict[str, Any], trial: int | None) -> None:
        self.shared.append(KINDS[name], row, trial)
        self.files.append(name, [row])

    def append_measurement(self, row: dict[str, Any], trial: int | None = None) -> None:
        """Append one measurement row of `trial` (None: the confirmation round's), while this
        worker holds its claim (ClaimLostError otherwise: nothing written)."""
        self._append("measurements", row, trial)

    def append_config(self, row: dict[str, Any], trial: int | None = None) -> None:
        """Append one config row of `trial`, as append_measurement."""
        self._append("configs", row, trial)

    def _read(self, name: str) -> pd.DataFrame:
        return self.shared.rows(KINDS[name], FIXED_COLUMNS[name])

    def measurements(self) -> pd.DataFrame:
        """Every worker's measurement rows."""
        return self._read("measurements")

    def configs(self) -> pd.DataFrame:
        """Every worker's config rows."""
        return self._read("configs")

    def count(self, name: str) -> int:
        """How many rows of a table the study holds (every worker's)."""
        return self.shared.count(KINDS[name])

    def writer_view(self) -> DatabaseTables:
        """Other workers write too: every read goes to the database."""
        return self

    def export(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Write every worker's rows as the run directory's CSV files; returns them."""
        configs, measurements = self.configs(), self.measurements()
        self.files.replace("measurements", measurements)
        self.files.replace("configs", configs)
        return configs, measurements

    def repair(self) -> list[str]:
        """Repair this worker's files (the database's rows are whole: one transaction each)."""
        return self.files.repair()

    def keep_only_configs(self, finished: Iterable[str]) -> int:
        """Drop unfinished configs' rows from this worker's files (the database drops a trial's
        rows when its claim is given up or taken over: SharedTables.drop_trial_rows)."""
        return self.files.keep_only_configs(finished)

    def report_outages(self, say: Callable[[str], None]) -> None:
        """Tell a database outage and its end through `say`."""
        self.shared.retry.say = say

    def claims(self) -> SharedTables:
        """The study's claims (the same SharedTables)."""
        return self.shared

    def close(self) -> None:
        """Close the database connections."""
        self.shared.close()


def database_tables(
    url: str, study: str, worker: str, *, retry: DbRetry | None = None, timings: SharedTimings | None = None
) -> TablesFactory:
    """A RunStore's tables factory for a shared study (SharedTables' arguments): it connects to
    the database when the run directory is made, not before (a refused name or directory leaves
    the database untouched)."""

    def tables(run_dir: Path) -> DatabaseTables:
        shared = SharedTables(url, study, worker, retry=retry, timings=timings)
        return DatabaseTables(shared, CsvTables(run_dir))

    return tables
