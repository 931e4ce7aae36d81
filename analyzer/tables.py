"""The run's two tables as the sweep writes them, kept in memory: every row goes to the run
directory (RunStore) and stays here, so the runner reads back its answer without re-reading the
CSV files it has just written.

A frame from here is typed as `pandas.read_csv` would type the file (the same NaNs, bools, ints
and strings), so the answer built from it is the one `tritune report` builds from the files. A
shared study's tables hold every worker's rows: those are read from its database each time.
"""

from __future__ import annotations

import csv
import math
from typing import Any

import pandas as pd

from analyzer.store import CONFIG_COLUMNS, MEASUREMENT_COLUMNS, RunStore

# Cells pandas.read_csv reads as missing by default.
_NA = {
    "",
    "#N/A",
    "#N/A N/A",
    "#NA",
    "-1.#IND",
    "-1.#QNAN",
    "-NaN",
    "-nan",
    "1.#IND",
    "1.#QNAN",
    "<NA>",
    "N/A",
    "NA",
    "NULL",
    "NaN",
    "None",
    "n/a",
    "nan",
    "null",
}
_TRUE, _FALSE = {"True", "TRUE", "true"}, {"False", "FALSE", "false"}
_FIXED = {"measurements": MEASUREMENT_COLUMNS, "configs": CONFIG_COLUMNS}


def cell(value: Any) -> str:
    """A value as RunStore writes it to a CSV cell (NaN and None blank)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


def _number(text: str, kind: type) -> int | float | None:
    """`text` as read_csv reads a number, else None (Python's int() and float() take more)."""
    stripped = text.strip()
    if "_" in text or (stripped != text and stripped.lstrip("+-").lower() in ("inf", "infinity")):
        return None
    try:
        return kind(text)
    except ValueError:
        return None


def typed_column(cells: list[str]) -> pd.Series:
    """One column of CSV cells, typed as pandas.read_csv types it: int64 (no blanks), float64
    (numbers with blanks, or none at all), bool (no blanks; object with them), else strings."""
    present = [c for c in cells if c not in _NA]
    if not present:
        return pd.Series([math.nan] * len(cells), dtype="float64")
    if all(_number(c, int) is not None for c in present) and len(present) == len(cells):
        return pd.Series([int(c) for c in cells], dtype="int64")
    if all(_number(c, float) is not None for c in present):
        return pd.Series([math.nan if c in _NA else float(c) for c in cells], dtype="float64")
    if all(c in _TRUE or c in _FALSE for c in present):
        values = [math.nan if c in _NA else c in _TRUE for c in cells]
        return pd.Series(values, dtype="bool" if len(present) == len(cells) else "object")
    return pd.Series([math.nan if c in _NA else c for c in cells], dtype="str")


class RunTables:
    """measurements.csv and configs.csv of one run: appended through the store, read from memory."""

    def __init__(self, store: RunStore) -> None:
        self.store = store
        self._header: dict[str, list[str] | None] = {}
        self._cells: dict[str, list[list[str]]] = {}
        for name in _FIXED:
            self._header[name], self._cells[name] = self._load(name)

    def _load(self, name: str) -> tuple[list[str] | None, list[list[str]]]:
        """The file's header and cells as they are now (a resumed run's rows)."""
        path = self.store.path(name)
        if not path.exists() or path.stat().st_size == 0:
            return None, []
        with open(path, newline="") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            return header, [row for row in reader if row]

    def _append(self, name: str, row: dict[str, Any]) -> None:
        header = self._header[name]
        if header is None:
            # As RunStore writes a new file's header: the fixed columns, then the first row's
            # per-model and per-step ones ('<model>.<knob>', 'step.<model>.<field>').
            fixed = _FIXED[name]
            header = self._header[name] = fixed + [k for k in row if k not in fixed and "." in k]
        self._cells[name].append([cell(row.get(k)) for k in header])

    def append_measurement(self, row: dict[str, Any]) -> None:
        """Append one measurements.csv row (durable in the run directory when this returns)."""
        self.store.append_measurement(row)
        self._append("measurements", row)

    def append_config(self, row: dict[str, Any]) -> None:
        """Append one configs.csv row (durable in the run directory when this returns)."""
        self.store.append_config(row)
        self._append("configs", row)

    def _frame(self, name: str) -> pd.DataFrame:
        header, rows = self._header[name], self._cells[name]
        if header is None:
            return pd.DataFrame(columns=_FIXED[name])
        if not rows:
            return pd.DataFrame(columns=header)
        width = len(header)
        padded = [r[:width] + [""] * (width - len(r)) for r in rows]
        return pd.DataFrame({col: typed_column([r[i] for r in padded]) for i, col in enumerate(header)})

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
