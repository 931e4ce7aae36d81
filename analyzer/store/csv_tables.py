"""The run directory's result tables as CSV files (analyzer.store.tables' `ResultTables`): one
worker's run, and the local copy a shared study's worker keeps.

A row is appended (and flushed to disk) the moment a measurement or a config finishes, in one
write with its newline last, so a run killed at any point keeps every whole row; `repair` cuts a
row a kill left half-written. `RunTables` is the sweep's view of the same files: what it
appended, kept in memory, so the runner reads its answer back without re-reading what it has
just written.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

import pandas as pd

from analyzer.errors import UsageError, WriteError
from analyzer.files import write_atomic
from analyzer.store.columns import FIXED_COLUMNS, TABLE_FILES


def complete_prefix(data: bytes) -> bytes:
    """The longest prefix of a CSV file's bytes that ends with a whole row.

    A row is appended in one write, newline last, so a write cut short (a full disk, a kill)
    leaves a last line without its newline. A newline inside a quoted field (an error message)
    is not a row's end: csv doubles the quotes inside a quoted field, so a line ends a row only
    where the count of quotes so far is even."""
    quotes, start, end = 0, 0, 0
    while (i := data.find(b"\n", start)) >= 0:
        quotes += data.count(b'"', start, i + 1)
        if quotes % 2 == 0:
            end = i + 1
        start = i + 1
    return data[:end]


def _clean(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return ""
    return value


def write_rows(fh: IO[str], columns: list[str], rows: Iterable[dict[str, Any]], header: bool) -> None:
    """Rows as CSV lines under `columns` (NaN blank, other keys ignored): how a run's tables
    are written, to their files and to the copy a sweep keeps in memory (RunTables)."""
    writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
    if header:
        writer.writeheader()
    for row in rows:
        writer.writerow({k: _clean(row.get(k)) for k in columns})


class CsvTables:
    """measurements.csv and configs.csv of one run directory."""

    def __init__(self, run_dir: str | Path) -> None:
        self.dir = Path(run_dir)
        self._columns: dict[str, list[str]] = {}  # each table's header, once known

    def path(self, name: str) -> Path:
        """The file of a table ('measurements' or 'configs')."""
        return self.dir / TABLE_FILES[name]

    def append(self, name: str, rows: Iterable[dict[str, Any]]) -> None:
        """Append rows to a table (durable when this returns)."""
        path = self.path(name)
        columns = FIXED_COLUMNS[name]
        new = not path.exists() or path.stat().st_size == 0
        rows = list(rows)
        if new:
            # The fixed columns, then any the first row adds: a pipeline's per-model knobs
            # ('<model>.<knob>') and per-step figures ('step.<model>.<field>').
            extra = [k for row in rows[:1] for k in row if k not in columns and "." in k]
            self._columns[name] = columns + extra
        elif name not in self._columns:
            # Keep an existing file's columns (a run started by another tritune version):
            # rows must line up with the header already written. Read it once per store.
            with open(path, newline="") as fh:
                header = next(csv.reader(fh), None)
            self._columns[name] = header or columns
        # One write per call, newline last: a write cut short leaves a last line without its
        # newline, which repair() cuts back on resume.
        buf = io.StringIO()
        write_rows(buf, self._columns[name], rows, header=new)
        try:
            with open(path, "ab") as fh:
                fh.write(buf.getvalue().encode())
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            raise WriteError(path, exc) from None

    def columns(self, name: str) -> list[str]:
        """The columns of a table this object has appended to (its header, in order)."""
        return self._columns[name]

    def append_measurement(self, row: dict[str, Any], trial: int | None = None) -> None:
        """Append one measurements.csv row (the trial is the row's business: not kept apart)."""
        self.append("measurements", [row])

    def append_config(self, row: dict[str, Any], trial: int | None = None) -> None:
        """Append one configs.csv row."""
        self.append("configs", [row])

    def read(self, name: str) -> pd.DataFrame:
        """A table's file as a DataFrame (empty with the fixed columns when absent); UsageError
        when it is not a readable tritune table."""
        path = self.path(name)
        if not path.exists() or path.stat().st_size == 0:
            return pd.DataFrame(columns=FIXED_COLUMNS[name])
        try:
            frame = pd.read_csv(path)
        except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
            raise UsageError(f"{path} is not a readable table: {exc}") from None
        missing = [c for c in ("config_id",) if c not in frame.columns]
        if missing:
            raise UsageError(f"{path} has no column {missing[0]!r}: not a tritune table")
        return frame

    def measurements(self) -> pd.DataFrame:
        """measurements.csv as a DataFrame."""
        return self.read("measurements")

    def configs(self) -> pd.DataFrame:
        """configs.csv as a DataFrame."""
        return self.read("configs")

    def count(self, name: str) -> int:
        """How many rows a table's file holds."""
        return len(self.read(name))

    def writer_view(self) -> RunTables:
        """The files as their one writer sees them: what it appended, kept in memory."""
        return RunTables(self)

    def replace(self, name: str, frame: pd.DataFrame) -> None:
        """Replace a table's file by a frame (atomically); its header is read again on the next
        append, as it may differ."""
        write_atomic(self.path(name), frame.to_csv(index=False))
        self._columns.pop(name, None)

    def export(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The files already hold every row of a one-worker run: read, not written."""
        return self.configs(), self.measurements()

    def repair(self) -> list[str]:
        """Cut each table back to its last whole row (a run stopped by a full disk or a kill can
        leave half a row, which the next append would glue to a new one); a note per table cut."""
        notes = []
        for name in FIXED_COLUMNS:
            path = self.path(name)
            if not path.is_file():
                continue
            data = path.read_bytes()
            keep = complete_prefix(data)
            if len(keep) < len(data):
                write_atomic(path, keep)
                notes.append(
                    f"{TABLE_FILES[name]}: its last row was cut short when the previous run stopped "
                    f"({len(data) - len(keep)} bytes); removed it (its config is measured again)"
                )
        return notes

    def keep_only_configs(self, finished: Iterable[str]) -> int:
        """Drop measurement and config rows of configs not in `finished` (a config that was in
        flight when a run died is measured again on resume); returns rows dropped."""
        finished = set(finished)
        dropped = 0
        for name in FIXED_COLUMNS:
            frame = self.read(name)
            if frame.empty:
                continue
            keep = frame[frame["config_id"].astype(str).isin(finished)]
            if name == "configs":
                keep = keep.drop_duplicates("config_id", keep="last")
            dropped += len(frame) - len(keep)
            if len(keep) != len(frame):
                self.replace(name, keep)
        return dropped

    def report_outages(self, say: Callable[[str], None]) -> None:
        """Files have no outages to tell."""

    def claims(self) -> None:
        """A run directory's tables have one worker: nothing is claimed."""
        return None

    def close(self) -> None:
        """Nothing is held open: each append opens and closes its file."""


class RunTables:
    """The sweep's view of a run directory's tables: appended through CsvTables, read from a copy
    of the files' text kept in memory.

    The copy is written by the same `write_rows` and read by `pandas.read_csv`, so a frame from
    here is exactly what `tritune report` reads from the files (the same NaNs, bools, ints and
    strings)."""

    def __init__(self, files: CsvTables) -> None:
        self.files = files
        # A resumed run starts from the rows on disk.
        self._text = {name: self._load(name) for name in FIXED_COLUMNS}

    def _load(self, name: str) -> io.StringIO:
        path = self.files.path(name)
        buf = io.StringIO()
        buf.write(path.read_text() if path.exists() else "")
        return buf

    def _append(self, name: str, row: dict[str, Any]) -> None:
        self.files.append(name, [row])
        buf = self._text[name]
        # The files have just taken the row, so they know its columns (a new file's header, or
        # the one already on disk).
        write_rows(buf, self.files.columns(name), [row], header=buf.tell() == 0)

    def append_measurement(self, row: dict[str, Any], trial: int | None = None) -> None:
        """Append one measurements.csv row (durable in the run directory when this returns)."""
        self._append("measurements", row)

    def append_config(self, row: dict[str, Any], trial: int | None = None) -> None:
        """Append one configs.csv row (durable in the run directory when this returns)."""
        self._append("configs", row)

    def _frame(self, name: str) -> pd.DataFrame:
        text = self._text[name].getvalue()
        if not text.strip():
            return pd.DataFrame(columns=FIXED_COLUMNS[name])
        return pd.read_csv(io.StringIO(text))

    def measurements(self) -> pd.DataFrame:
        """Every measurement row of the run."""
        return self._frame("measurements")

    def configs(self) -> pd.DataFrame:
        """Every config row of the run."""
        return self._frame("configs")

    def count(self, name: str) -> int:
        """How many rows a table holds."""
        return len(self._frame(name))

    def writer_view(self) -> RunTables:
        """Already the writer's view."""
        return self

    def export(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The files already hold every row: read from memory, not written."""
        return self.configs(), self.measurements()

    def repair(self) -> list[str]:
        """Repair the files, then read them again."""
        notes = self.files.repair()
        self._text = {name: self._load(name) for name in FIXED_COLUMNS}
        return notes

    def keep_only_configs(self, finished: Iterable[str]) -> int:
        """Drop unfinished configs' rows from the files, then read them again."""
        dropped = self.files.keep_only_configs(finished)
        self._text = {name: self._load(name) for name in FIXED_COLUMNS}
        return dropped

    def report_outages(self, say: Callable[[str], None]) -> None:
        """Files have no outages to tell."""

    def claims(self) -> None:
        """One worker: nothing is claimed."""
        return None

    def close(self) -> None:
        """Nothing is held open."""
