"""The run directory and its tables (README, "Sweeping a model": the run directory).

Everything is written as the sweep goes: a row is appended (and flushed to disk) the moment a
measurement or a config finishes, and summary.json is replaced atomically after every config,
so a run killed at any point keeps all it had finished. measurements.csv has one row per
(config, load level) measurement; its column names are a contract shared with
`tritune profile --format csv|json`, the report and the dashboard (analyzer.store.columns).
The tables are kept by the backend the store is built with (analyzer.store.tables: the CSV
files, or a shared study's database and the files).
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from analyzer.errors import UsageError, WriteError
from analyzer.files import write_atomic
from analyzer.names import RULE as NAME_RULE
from analyzer.names import bad_name
from analyzer.store.columns import CONFIG_COLUMNS as CONFIG_COLUMNS
from analyzer.store.columns import MEASUREMENT_COLUMNS as MEASUREMENT_COLUMNS
from analyzer.store.columns import TABLE_FILES
from analyzer.store.csv_tables import CsvTables
from analyzer.store.tables import ResultTables, TablesFactory

DEFAULT_ROOT = Path("reports")  # where run directories go when no --out is given

RUN_FILES = {
    "spec": "spec.yaml",
    "study": "study.db",
    **TABLE_FILES,  # measurements.csv, configs.csv
    "summary": "summary.json",
    "report": "report.html",
    "server_log": "server.log",
    "base_config": "base_config.pbtxt",  # the model's config before the sweep (what candidates modify)
    "originals": "originals.json",  # a running server's models as they were before tritune changed them
    "lock": ".lock",  # held (flock) by the one tritune that writes the run; holds its pid
}


class RunStore:
    """One run directory: its files, appended tables and atomically replaced summary."""

    def __init__(self, run_dir: str | Path, tables: TablesFactory | None = None) -> None:
        self.dir = Path(run_dir)
        self._lock_fd: int | None = None
        # The result tables: the run directory's CSV files, unless the run is a shared study's
        # (analyzer.store.db_tables). Fixed for the store's life.
        self.tables: ResultTables = (tables or CsvTables)(self.dir)

    def path(self, name: str) -> Path:
        """Path of a run file by its key in RUN_FILES (e.g. 'measurements')."""
        return self.dir / RUN_FILES[name]

    def write_base_config(self, pbtxt: str) -> Path:
        """Write base_config.pbtxt (atomically); returns its path."""
        return write_atomic(self.path("base_config"), pbtxt)

    def model_base_path(self, model: str) -> Path:
        """base/<model>/config.pbtxt: a pipeline model's config before the sweep (what its
        candidates modify; the dashboard builds any config's config.pbtxt from it)."""
        return self.dir / "base" / model / "config.pbtxt"

    def write_model_base(self, model: str, pbtxt: str) -> Path:
        """Write base/<model>/config.pbtxt; returns its path."""
        return write_atomic(self.model_base_path(model), pbtxt)

    def read_model_base(self, model: str) -> str | None:
        """base/<model>/config.pbtxt's text as recorded when the run started (None: not written)."""
        path = self.model_base_path(model)
        return path.read_text() if path.is_file() else None

    def version(self) -> tuple[int, ...]:
        """Identity, size and modification time of the files a sweep keeps writing (the tables and
        summary.json): changes whenever it writes, so a reader (the dashboard) knows when to read
        again. Size and inode catch what a coarse-grained mtime would miss (the tables only grow;
        summary.json is replaced by rename, so it gets a new inode)."""
        stamps: list[int] = []
        for name in ("measurements", "configs", "summary"):
            try:
                st = self.path(name).stat()
            except FileNotFoundError:
                stamps.extend((0, 0, 0))
                continue
            # Microseconds: nanoseconds since 1970 overflow a browser's exact integers.
            stamps.extend((st.st_ino, st.st_size, st.st_mtime_ns // 1000))
        return tuple(stamps)

    def timeline_path(self, config_id: str, level: float, phase: str = "search") -> Path:
        """timelines/<config>_x<scale>[_<phase>].csv: the per-second timeline of one scheduled
        run of a config (analyzer.stats.timeline)."""
        suffix = "" if phase == "search" else f"_{phase}"
        return self.dir / "timelines" / f"{config_id}_x{level:g}{suffix}.csv"

    def write_timeline(self, config_id: str, level: float, table: Any, phase: str = "search") -> Path:
        """Write one scheduled run's timeline table (a DataFrame); returns its path."""
        return write_atomic(self.timeline_path(config_id, level, phase), table.to_csv(index=False))

    def read_timeline(self, config_id: str, level: float, phase: str = "search") -> pd.DataFrame | None:
        """One scheduled run's timeline table, or None when the run has none."""
        path = self.timeline_path(config_id, level, phase)
        return pd.read_csv(path) if path.is_file() else None

    @property
    def storage_url(self) -> str:
        """Optuna storage URL of the run's study."""
        return f"sqlite:///{self.path('study').resolve()}"

    @staticmethod
    def create(
        out_root: str | Path | None,
        model: str,
        run_dir: str | Path | None = None,
        tables: TablesFactory | None = None,
    ) -> RunStore:
        """Make a new run directory (default reports/<model>-<YYYYmmdd-HHMMSS>/ under out_root),
        its result tables made by `tables` (default: its CSV files).

        Raises UsageError when the place is not writable, before anything is measured.
        """
        explicit = run_dir is not None
        if not explicit and bad_name(model):  # the directory is named after it: one component
            raise UsageError(f"cannot name a run directory: {bad_name(model)}", hint=NAME_RULE)
        root = Path(out_root) if out_root is not None else DEFAULT_ROOT
        stamp = time.strftime("%Y%m%d-%H%M%S")
        for n in range(1, 1000):
            path = (
                Path(run_dir)
                if run_dir is not None
                else root / (f"{model}-{stamp}" + (f"-{n}" if n > 1 else ""))
            )
            try:
                path.mkdir(parents=True, exist_ok=False)
                probe = path / ".write-test"  # a directory can exist and still refuse files
                probe.write_text("ok")
                probe.unlink()
            except FileExistsError:
                if explicit:
                    raise UsageError(
                        f"run directory {path} already exists",
                        hint="use --resume to continue it, or another --out",
                    ) from None
                continue  # another sweep started this second: take the next name
            except OSError as exc:
                raise UsageError(
                    f"cannot write the run directory {path}: {exc.strerror}",
                    hint="pass --out with a directory you can write to",
                ) from None
            break
        return RunStore(path, tables)

    @staticmethod
    def for_study(
        out_root: str | Path | None, model: str, study_name: str, tables: TablesFactory | None = None
    ) -> RunStore:
        """A shared study's run directory, <out_root>/<model>-<study> (default under reports/):
        made on its first export, reused (and refreshed by the caller) after that; its tables
        made by `tables` (analyzer.store.db_tables.database_tables)."""
        root = Path(out_root) if out_root is not None else DEFAULT_ROOT
        for name, kind in ((model, "model"), (study_name, "study")):
            if bad_name(name, kind):
                raise UsageError(f"cannot name a run directory: {bad_name(name, kind)}", hint=NAME_RULE)
        run_dir = root / f"{model}-{study_name}"
        if run_dir.is_dir():
            return RunStore(run_dir, tables)
        return RunStore.create(None, model, run_dir=run_dir, tables=tables)

    @staticmethod
    def open(run_dir: str | Path, tables: TablesFactory | None = None) -> RunStore:
        """An existing run directory to resume, its tables made by `tables` (default: its CSV
        files); UsageError when it is not one or not writable."""
        RunStore.open_readonly(run_dir)
        store = RunStore(run_dir, tables)
        if not os.access(store.dir, os.W_OK):
            raise UsageError(f"run directory {store.dir} is not writable")
        return store

    @staticmethod
    def open_readonly(run_dir: str | Path) -> RunStore:
        """An existing run directory to read (report, dashboard); UsageError when it is not one."""
        store = RunStore(run_dir)
        if not store.dir.is_dir():
            raise UsageError(
                f"{store.dir} is not a directory", hint="pass a run directory written by `tritune sweep`"
            )
        if not store.path("spec").is_file():
            raise UsageError(
                f"{store.dir} is not a tritune run directory (no {RUN_FILES['spec']})",
                hint="pass a run directory written by `tritune sweep`",
            )
        return store

    # -- the writer's lock ----------------------------------------------------------------------
    def lock(self) -> None:
        """Hold the run directory for writing until release() or this process ends (a kill -9
        included: the kernel drops the lock with the process). A second writer (a second
        `--resume`, a `restore` during a sweep) gets a UsageError (exit 2) naming the holder's pid."""
        path = self.path("lock")
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise WriteError(path, exc) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise UsageError(
                f"run directory {self.dir} is in use by another tritune (pid {holder})",
                hint=f"wait for it to end, or stop it (kill {holder}: it stops after the current window, "
                "puts the server's configs back and keeps its results)",
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd

    def release(self) -> None:
        """Let another tritune write the run directory."""
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            os.close(fd)  # closing the only descriptor drops the flock

    # -- tables (analyzer.store.tables: the backend does the work) ----------------------------
    def repair_tables(self) -> list[str]:
        """Cut each table's file back to its last whole row (a run stopped by a full disk or a
        kill can leave half a row, which the next append would glue to a new one); a note per
        table cut."""
        return self.tables.repair()

    def append_measurement(self, row: dict[str, Any], trial: int | None = None) -> None:
        """Append one measurements.csv row of `trial` (durable when this returns)."""
        self.tables.append_measurement(row, trial)

    def append_config(self, row: dict[str, Any], trial: int | None = None) -> None:
        """Append one configs.csv row of `trial` (durable when this returns)."""
        self.tables.append_config(row, trial)

    def measurements(self) -> pd.DataFrame:
        """measurements.csv as a DataFrame (empty with the right columns when absent); a shared
        study's: every worker's rows."""
        return self.tables.measurements()

    def configs(self) -> pd.DataFrame:
        """configs.csv as a DataFrame (empty with the right columns when absent); a shared
        study's: every worker's rows."""
        return self.tables.configs()

    def keep_only_configs(self, finished: Iterable[str]) -> int:
        """Drop measurement and config rows of configs not in `finished` (a config that was in
        flight when a run died is measured again on resume); returns rows dropped."""
        return self.tables.keep_only_configs(finished)

    # -- documents -----------------------------------------------------------------------------
    def write_json(self, name: str, data: Any) -> None:
        """Replace a JSON file atomically (a reader never sees half of it)."""
        write_atomic(self.path(name), json.dumps(data, indent=2, default=_json_default) + "\n")

    def read_summary(self) -> dict[str, Any] | None:
        """summary.json, or None when it is missing or unreadable."""
        try:
            return json.loads(self.path("summary").read_text())
        except (OSError, ValueError):
            return None

    def best_config_path(self, model: str) -> Path:
        """best/<model>/config.pbtxt: the chosen config of a model."""
        return self.dir / "best" / model / "config.pbtxt"

    def read_best_config(self, model: str) -> str | None:
        """best/<model>/config.pbtxt's text, or None when it is not written (yet)."""
        path = self.best_config_path(model)
        return path.read_text() if path.is_file() else None

    def write_best_config(self, model: str, pbtxt: str) -> Path:
        """Write best/<model>/config.pbtxt; returns its path."""
        return write_atomic(self.best_config_path(model), pbtxt)


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()  # numpy scalars
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
