"""The run directory and its tables (README, "Sweeping a model": the run directory).

Everything is written as the sweep goes: a row is appended (and flushed to disk) the moment a
measurement or a config finishes, and summary.json is replaced atomically after every config,
so a run killed at any point keeps all it had finished. measurements.csv has one row per
(config, load level) measurement; its column names are a contract shared with
`tritune profile --format csv|json`, the report and the dashboard.
"""

from __future__ import annotations

import csv
import fcntl
import io
import json
import math
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

import pandas as pd

from analyzer.errors import UsageError, WriteError
from analyzer.files import write_atomic
from analyzer.names import RULE as NAME_RULE
from analyzer.names import bad_name

# Contract columns first (what reports and downstream users rely on), then the rest of what a
# measurement holds.
MEASUREMENT_COLUMNS = [
    "config_id",
    "instance_count",
    "max_batch_size",
    "max_queue_delay_us",
    "load_mode",
    "load_level",
    "throughput_rps",
    "p50_ms",
    "p90_ms",
    "p95_ms",
    "p99_ms",
    "requests",
    "errors",
    "avg_batch_size",
    "server_queue_ms",
    "server_compute_ms",
    "meets_budget",
    "max_ms",
    "mean_ms",
    "p99_ci_low_ms",
    "p99_ci_high_ms",
    "error_kinds",
    "windows",
    "stable",
    "duration_s",
    "offered_rps",
    "send_lag_p99_ms",
    "server_requests",
    "server_compute_input_ms",
    "server_compute_infer_ms",
    "server_compute_output_ms",
    "server_cpu_pct",
    "server_rss_mb",
    "gpu_util_pct",
    "gpu_mem_mb",
    "over_budget",
    "budget_bound_ms",
    "over_bound_ms",
    "stalled",
    "verdict",
    "verdict_reason",
    "verdict_proven",  # the verdict was proven (met, or over the budget with the sweep's confidence)
    "phase",  # search | confirm (the confirmation round's re-measurements)
    "confirm_round",
    "send_lag_p50_ms",
    "client_workers",  # load-generator processes
    "client_cpu_pct",  # the generator's CPU, % of one core
    "client_loop_pct",  # the busiest worker's event loop, % of one core
    "client_bound",  # the generator could not hold the load: never capacity (see client_bound_reason)
    "client_bound_reason",
    "bottleneck_step",  # pipelines: the step whose instances were busiest (analyzer.config.pipeline)
    "worst_minute_ms",  # schedules: the budget percentile over the run's worst minute
]

CONFIG_COLUMNS = [
    "config_id",
    "instance_count",
    "max_batch_size",
    "max_queue_delay_us",
    "preferred_batch_size",
    "instance_kind",
    "status",  # ok | failed | pruned
    "error",
    "capacity_rps",
    "capacity_level",
    # met the budget at load.max_level, or the next level was client bound: at least this
    "capacity_lower_bound",
    "p99_ms",  # at the capacity level
    "p50_ms",
    "meets_budget",
    "closest_p99_ms",  # lowest tail latency seen at any level (what to name when nothing meets)
    "levels_measured",
    "load_mode",
    "trial",
    "wall_s",
    "finished_at",
    "bottleneck_step",  # pipelines: the busiest step at the capacity level
]

DEFAULT_ROOT = Path("reports")  # where run directories go when no --out is given

RUN_FILES = {
    "spec": "spec.yaml",
    "study": "study.db",
    "measurements": "measurements.csv",
    "configs": "configs.csv",
    "summary": "summary.json",
    "report": "report.html",
    "server_log": "server.log",
    "base_config": "base_config.pbtxt",  # the model's config before the sweep (what candidates modify)
    "originals": "originals.json",  # a running server's models as they were before tritune changed them
    "lock": ".lock",  # held (flock) by the one tritune that writes the run; holds its pid
}
TABLES = ("measurements", "configs")


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
    are written, to their files and to the copy a sweep keeps in memory (analyzer.store.tables)."""
    writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
    if header:
        writer.writeheader()
    for row in rows:
        writer.writerow({k: _clean(row.get(k)) for k in columns})


class RunStore:
    """One run directory: its files, appended tables and atomically replaced summary."""

    def __init__(self, run_dir: str | Path) -> None:
        self.dir = Path(run_dir)
        self._columns: dict[str, list[str]] = {}  # each table's header, once known
        self._lock_fd: int | None = None
        # A shared study (analyzer.store.shared.SharedTables): rows also go to its database, and the
        # tables are read from there (every worker's rows). `trial` tags the rows written.
        self.shared: Any = None
        self.trial: int | None = None

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
    def create(out_root: str | Path | None, model: str, run_dir: str | Path | None = None) -> RunStore:
        """Make a new run directory (default reports/<model>-<YYYYmmdd-HHMMSS>/ under out_root).

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
        return RunStore(path)

    @staticmethod
    def for_study(out_root: str | Path | None, model: str, study_name: str) -> RunStore:
        """A shared study's run directory, <out_root>/<model>-<study> (default under reports/):
        made on its first export, reused (and refreshed by the caller) after that."""
        root = Path(out_root) if out_root is not None else DEFAULT_ROOT
        for name, kind in ((model, "model"), (study_name, "study")):
            if bad_name(name, kind):
                raise UsageError(f"cannot name a run directory: {bad_name(name, kind)}", hint=NAME_RULE)
        run_dir = root / f"{model}-{study_name}"
        return RunStore(run_dir) if run_dir.is_dir() else RunStore.create(None, model, run_dir=run_dir)

    @staticmethod
    def open(run_dir: str | Path) -> RunStore:
        """An existing run directory to resume; UsageError when it is not one or not writable."""
        store = RunStore.open_readonly(run_dir)
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

    def repair_tables(self) -> list[str]:
        """Cut each table back to its last whole row (a run stopped by a full disk or a kill can
        leave half a row, which the next append would glue to a new one); a note per table cut."""
        notes = []
        for name in TABLES:
            path = self.path(name)
            if not path.is_file():
                continue
            data = path.read_bytes()
            keep = complete_prefix(data)
            if len(keep) < len(data):
                write_atomic(path, keep)
                notes.append(
                    f"{RUN_FILES[name]}: its last row was cut short when the previous run stopped "
                    f"({len(data) - len(keep)} bytes); removed it (its config is measured again)"
                )
        return notes

    # -- tables --------------------------------------------------------------------------------
    def _append(self, name: str, columns: list[str], rows: Iterable[dict[str, Any]]) -> None:
        path = self.path(name)
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
        # newline, which repair_tables() cuts back on resume.
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
        """The columns of a table this store has appended to (its header, in order)."""
        return self._columns[name]

    def append_measurement(self, row: dict[str, Any]) -> None:
        """Append one measurements.csv row (durable when this returns). A shared study's row
        goes to its database first: that write refuses a row whose claim this worker lost
        (ClaimLostError), and then the file gets none either."""
        if self.shared is not None:
            self.shared.append("measurement", row, self.trial)
        self._append("measurements", MEASUREMENT_COLUMNS, [row])

    def append_config(self, row: dict[str, Any]) -> None:
        """Append one configs.csv row (durable when this returns; a shared study's goes to its
        database first, as in append_measurement)."""
        if self.shared is not None:
            self.shared.append("config", row, self.trial)
        self._append("configs", CONFIG_COLUMNS, [row])

    def _read(self, name: str, columns: list[str]) -> pd.DataFrame:
        path = self.path(name)
        if not path.exists() or path.stat().st_size == 0:
            return pd.DataFrame(columns=columns)
        try:
            frame = pd.read_csv(path)
        except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
            raise UsageError(f"{path} is not a readable table: {exc}") from None
        missing = [c for c in ("config_id",) if c not in frame.columns]
        if missing:
            raise UsageError(f"{path} has no column {missing[0]!r}: not a tritune table")
        return frame

    def measurements(self) -> pd.DataFrame:
        """measurements.csv as a DataFrame (empty with the right columns when absent); a shared
        study's: every worker's rows."""
        if self.shared is not None:
            return self.shared.rows("measurement", MEASUREMENT_COLUMNS)
        return self._read("measurements", MEASUREMENT_COLUMNS)

    def configs(self) -> pd.DataFrame:
        """configs.csv as a DataFrame (empty with the right columns when absent); a shared
        study's: every worker's rows."""
        if self.shared is not None:
            return self.shared.rows("config", CONFIG_COLUMNS)
        return self._read("configs", CONFIG_COLUMNS)

    def export_shared(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Write a shared study's tables (every worker's rows) as this run directory's CSVs;
        returns them (configs, measurements)."""
        configs, measurements = self.configs(), self.measurements()
        for name, frame in (("measurements", measurements), ("configs", configs)):
            write_atomic(self.path(name), frame.to_csv(index=False))
        self._columns.clear()
        return configs, measurements

    def keep_only_configs(self, finished: set[str]) -> int:
        """Drop measurement and config rows of configs not in `finished` (a config that was in
        flight when a run died is measured again on resume); returns rows dropped."""
        dropped = 0
        for name, columns in (("measurements", MEASUREMENT_COLUMNS), ("configs", CONFIG_COLUMNS)):
            frame = self._read(name, columns)
            if frame.empty:
                continue
            keep = frame[frame["config_id"].astype(str).isin(finished)]
            if name == "configs":
                keep = keep.drop_duplicates("config_id", keep="last")
            dropped += len(frame) - len(keep)
            if len(keep) != len(frame):
                write_atomic(self.path(name), keep.to_csv(index=False))
                self._columns.pop(name, None)  # the rewrite may have a different header
        return dropped

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
