"""The run's two tables as the sweep writes them, kept in memory: every row goes to the run
directory (RunStore) and to a copy of the file's text here, so the runner reads back its answer
without re-reading the CSV files it has just written.

The copy is written by the store's own `write_rows` and read by `pandas.read_csv`, so a frame
from here is exactly what `tritune report` reads from the files (the same NaNs, bools, ints and
strings). A shared study's tables hold every worker's rows: those are read from its database
each time.
"""

from __future__ import annotations

import io
from typing import Any

import pandas as pd

from analyzer.store.rundir import CONFIG_COLUMNS, MEASUREMENT_COLUMNS, RunStore, write_rows

_FIXED = {"measurements": MEASUREMENT_COLUMNS, "configs": CONFIG_COLUMNS}


class RunTables:
    """measurements.csv and configs.csv of one run: appended through the store, read from memory."""

    def __init__(self, store: RunStore) -> None:
        self.store = store
        # A resumed run starts from the rows on disk.
        self._text = {name: self._load(name) for name in _FIXED}

    def _load(self, name: str) -> io.StringIO:
        path = self.store.path(name)
        text = path.read_text() if path.exists() else ""
        buf = io.StringIO()
        buf.write(text)
        return buf

    def _append(self, name: str, row: dict[str, Any]) -> None:
        buf = self._text[name]
        # The store has just written the row, so it knows the file's columns (a new file's
        # header, or the one already on disk).
        write_rows(buf, self.store.columns(name), [row], header=buf.tell() == 0)

    def append_measurement(self, row: dict[str, Any]) -> None:
        """Append one measurements.csv row (durable in the run directory when this returns)."""
        self.store.append_measurement(row)
        self._append("measurements", row)

    def append_config(self, row: dict[str, Any]) -> None:
        """Append one configs.csv row (durable in the run directory when this returns)."""
        self.store.append_config(row)
        self._append("configs", row)

    def _frame(self, name: str) -> pd.DataFrame:
        text = self._text[name].getvalue()
        if not text.strip():
            return pd.DataFrame(columns=_FIXED[name])
        return pd.read_csv(io.StringIO(text))

    def measurements(self) -> pd.DataFrame:
        """Every measurement row of the run (a shared study's: every worker's, from its database)."""
        if self.store.shared is not None:
            return self.store.measurements()
        return self._frame("measurements")

    def configs(self) -> pd.DataFrame:
        """Every config row of the run (a shared study's: every worker's, from its database)."""
        if self.store.shared is not None:
            return self.store.configs()
        return self._frame("configs")
