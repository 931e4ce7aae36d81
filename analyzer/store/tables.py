"""The run's result tables behind one interface, as Optuna keeps its storages behind BaseStorage:
`ResultTables` is what the sweep, the resume and the export need of measurements.csv and
configs.csv, whoever keeps them. Two implementations:

- analyzer.store.csv_tables.CsvTables: the run directory's CSV files (one worker's run);
- analyzer.store.db_tables.DatabaseTables: a shared study's database (every worker's rows,
  through SharedTables), mirrored into the run directory's files as this worker writes.

A RunStore (analyzer.store.rundir) is built with its tables (a `TablesFactory`); nothing outside
the implementations asks which one it has. Rows are appended with the Optuna trial that
measured them (None: the confirmation round's), which only the database keeps.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pandas as pd

if TYPE_CHECKING:
    from analyzer.store import study_tables as shared_db  # the claims' type only


class ResultTables(Protocol):
    """measurements.csv and configs.csv of one run, read with the schema's columns first
    (analyzer.store.columns) and empty frames with those columns when there are no rows."""

    def append_measurement(self, row: dict[str, Any], trial: int | None = None) -> None:
        """Append one measurement row, measured by `trial` (durable when this returns)."""
        ...

    def append_config(self, row: dict[str, Any], trial: int | None = None) -> None:
        """Append one config row, of `trial` (durable when this returns)."""
        ...

    def measurements(self) -> pd.DataFrame:
        """Every measurement row of the run, in the order written."""
        ...

    def configs(self) -> pd.DataFrame:
        """Every config row of the run, in the order written."""
        ...

    def count(self, name: str) -> int:
        """How many rows a table ('measurements' or 'configs') holds."""
        ...

    def writer_view(self) -> ResultTables:
        """The tables as the run's writer reads them back while it writes (the runner's answer
        after every config): cheap to read again and again."""
        ...

    def export(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Make the run directory's files hold every row of the run; returns (configs,
        measurements)."""
        ...

    def repair(self) -> list[str]:
        """Cut the run directory's files back to their last whole row; a note per file cut."""
        ...

    def keep_only_configs(self, finished: Iterable[str]) -> int:
        """Drop the rows of configs not in `finished` (in flight when a run died: measured again
        on resume); returns rows dropped."""
        ...

    def report_outages(self, say: Callable[[str], None]) -> None:
        """Have a database outage, and its end, told through `say` (nothing to tell for files)."""
        ...

    def close(self) -> None:
        """Release what the tables hold open (a database's connections; nothing for files)."""
        ...

    def claims(self) -> shared_db.SharedTables | None:
        """The study's claims, which the search and the confirmation round share with other
        workers (SharedTables); None when this worker is the run's only one."""
        ...


TablesFactory = Callable[[Path], ResultTables]  # a run directory -> its tables
