"""A sweep shared by many workers: the result tables and the config claims, in the database
that holds the Optuna study (any SQLAlchemy URL; PostgreSQL for many machines).

Optuna's RDB storage already shares the search (trials, heartbeats, the retry of a dead
worker's trial). This module adds what the study does not hold, through SQLAlchemy Core (no
hand-written SQL dialect):

- `tritune_rows`: every measurements.csv and configs.csv row each worker writes, as JSON, as it
  measures (the run directory's CSV files stay the local export format);
- `tritune_claims`: which trial measures which config. The primary key (study, config_id) makes
  a claim exclusive; a claim whose trial failed (its worker died and the heartbeat noticed) is
  taken over by compare-and-set on the old trial number, so exactly one worker wins it.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any, Callable, TypeVar

import pandas as pd
import sqlalchemy as sa

from analyzer.errors import UsageError
from analyzer.storage_url import redact, scrub

_META = sa.MetaData()
ROWS = sa.Table(
    "tritune_rows",
    _META,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("study", sa.String(255), nullable=False, index=True),
    sa.Column("kind", sa.String(16), nullable=False),  # measurement | config
    sa.Column("config_id", sa.String(255), nullable=False),
    sa.Column("trial", sa.Integer),  # the Optuna trial number that measured it (None: confirmation)
    sa.Column("worker", sa.String(255)),
    sa.Column("row", sa.Text, nullable=False),
)
CLAIMS = sa.Table(
    "tritune_claims",
    _META,
    sa.Column("study", sa.String(255), primary_key=True),
    sa.Column("config_id", sa.String(255), primary_key=True),
    sa.Column("trial", sa.Integer, nullable=False),
    sa.Column("worker", sa.String(255), nullable=False),
)


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value


T = TypeVar("T")


def retry_schema_race(make: Callable[[], T], attempts: int = 5) -> T:
    """Run `make`, which creates tables if they are missing, again when it loses a race:
    workers started together on an empty database all try to create the same schema (Optuna's
    or ours), and the losers find it made on the next try."""
    for attempt in range(attempts):
        try:
            return make()
        except (sa.exc.IntegrityError, sa.exc.ProgrammingError):
            if attempt == attempts - 1:
                raise
            time.sleep(0.5 + attempt)
    raise AssertionError("unreachable")


def engine_for(url: str) -> sa.Engine:
    """A SQLAlchemy engine for a storage URL, or UsageError naming what is wrong (exit 2; the
    URL shown without its password)."""
    try:
        return sa.create_engine(url, pool_pre_ping=True)
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ValueError) as exc:
        raise UsageError(
            f"--storage {redact(url)} is not a database URL Optuna can use: {scrub(str(exc), url)}",
            hint="for example sqlite:///sweep.db or postgresql+psycopg://user:pass@host:5432/db",
        ) from None
    except ImportError as exc:
        raise UsageError(
            f"--storage {redact(url)}: its database driver is not installed ({scrub(str(exc), url)})"
        ) from None


class SharedTables:
    """The shared result tables and claims of one study."""

    def __init__(self, url: str, study: str, worker: str) -> None:
        self.url, self.study, self.worker = url, study, worker
        self.engine = engine_for(url)
        retry_schema_race(lambda: _META.create_all(self.engine))

    def append(self, kind: str, row: dict[str, Any], trial: int | None) -> None:
        """Add one table row (durable when this returns)."""
        with self.engine.begin() as conn:
            conn.execute(
                ROWS.insert().values(
                    study=self.study,
                    kind=kind,
                    config_id=str(row.get("config_id")),
                    trial=trial,
                    worker=self.worker,
                    row=json.dumps({k: _json_value(v) for k, v in row.items()}),
                )
            )

    def rows(self, kind: str, columns: list[str]) -> pd.DataFrame:
        """Every worker's rows of one kind, in the order written, with at least `columns`."""
        with self.engine.connect() as conn:
            result = conn.execute(
                sa.select(ROWS.c.row, ROWS.c.worker)
                .where(ROWS.c.study == self.study, ROWS.c.kind == kind)
                .order_by(ROWS.c.id)
            )
            records = [{**json.loads(r.row), "worker": r.worker} for r in result]
        frame = pd.DataFrame.from_records(records)
        for col in columns:
            if col not in frame.columns:
                frame[col] = math.nan
        return frame[columns + [c for c in frame.columns if c not in columns]]

    def count(self, kind: str) -> int:
        """How many rows of one kind the study holds (a cheap sign of a worker's progress)."""
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    sa.select(sa.func.count())
                    .select_from(ROWS)
                    .where(ROWS.c.study == self.study, ROWS.c.kind == kind)
                ).scalar_one()
            )

    def drop_trial_rows(self, config_id: str, trial: int) -> None:
        """Forget the rows a dead worker wrote for a config it never finished."""
        with self.engine.begin() as conn:
            conn.execute(
                ROWS.delete().where(
                    ROWS.c.study == self.study, ROWS.c.config_id == config_id, ROWS.c.trial == trial
                )
            )

    def claim(self, config_id: str, trial: int) -> bool:
        """Claim a config for a trial; False when another trial holds it."""
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    CLAIMS.insert().values(
                        study=self.study, config_id=config_id, trial=trial, worker=self.worker
                    )
                )
            return True
        except sa.exc.IntegrityError:
            return False

    def holder(self, config_id: str) -> tuple[int, str] | None:
        """The trial and worker holding a config's claim (None: unclaimed)."""
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(CLAIMS.c.trial, CLAIMS.c.worker).where(
                    CLAIMS.c.study == self.study, CLAIMS.c.config_id == config_id
                )
            ).first()
        return None if row is None else (int(row.trial), str(row.worker))

    def take_over(self, config_id: str, old_trial: int, trial: int) -> bool:
        """Move a claim from a dead trial to ours; True for exactly one caller."""
        with self.engine.begin() as conn:
            result = conn.execute(
                CLAIMS.update()
                .where(
                    CLAIMS.c.study == self.study, CLAIMS.c.config_id == config_id, CLAIMS.c.trial == old_trial
                )
                .values(trial=trial, worker=self.worker)
            )
        return result.rowcount == 1
