"""A sweep shared by many workers: the result tables and the config claims, in the database
that holds the Optuna study (any SQLAlchemy URL; PostgreSQL for many machines).

Optuna's RDB storage already shares the search (trials, heartbeats, the retry of a dead
worker's trial; analyzer.store.shared_storage). This module adds what the study does not hold, through
SQLAlchemy Core (no hand-written SQL dialect):

- `tritune_rows`: every measurements.csv and configs.csv row each worker writes, as JSON, as it
  measures (the run directory's CSV files stay the local export format). A row is written only
  while its worker still holds the config's claim (or the confirmation round's), checked in the
  same transaction: a worker whose claim was taken over gets ClaimLostError, and writes nothing.
- `tritune_claims`: which trial measures which config. The primary key (study, config_id) makes
  a claim exclusive; a claim whose trial failed (its worker died and the heartbeat noticed) is
  taken over by compare-and-set on the old trial number, so exactly one worker wins it. The
  confirmation round's claim (`CONFIRM_CLAIM`) has no trial; its holder keeps its `beat` fresh
  instead, and a waiting worker takes over a claim whose beat stopped (analyzer.sweep.confirm).

Every call is retried while the database is briefly down (analyzer.store.db_retry).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from typing import Any, TypeVar

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from analyzer.errors import ClaimLostError, UsageError
from analyzer.store.db_retry import DbRetry
from analyzer.store.shared_timing import SharedTimings, timings_from_env
from analyzer.store.storage_url import redact, scrub

# The claims of the confirmation round: which worker runs it, and that it ended.
CONFIRM_CLAIM, CONFIRMED_CLAIM = "__confirm__", "__confirmed__"
CONNECT_TIMEOUT_S = 10  # PostgreSQL: a host that does not answer fails a connection this fast
_LIBPQ_DRIVERS = ("psycopg", "psycopg2")  # the drivers that take libpq's connect_timeout

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
    # When its holder last showed it is alive (the database's clock): the confirmation round's.
    sa.Column("beat", sa.DateTime),
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


def engine_options(url: str) -> dict[str, Any]:
    """SQLAlchemy engine settings for a shared database: connections are checked before use
    (a database restart cuts them all), and on PostgreSQL a host that does not answer fails in
    seconds instead of the system's TCP timeout (the retry then takes over)."""
    options: dict[str, Any] = {"pool_pre_ping": True}
    try:
        driver = make_url(url).get_driver_name()
    except Exception:  # noqa: BLE001 - a bad URL is engine_for's to report
        return options
    if driver in _LIBPQ_DRIVERS:
        options["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_S}
    return options


def engine_for(url: str) -> sa.Engine:
    """A SQLAlchemy engine for a storage URL, or UsageError naming what is wrong (exit 2; the
    URL shown without its password)."""
    try:
        return sa.create_engine(url, **engine_options(url))
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ValueError) as exc:
        raise UsageError(
            f"--storage {redact(url)} is not a database URL Optuna can use: {scrub(str(exc), url)}",
            hint="for example sqlite:///sweep.db or postgresql+psycopg://user:pass@host:5432/db",
        ) from None
    except ImportError as exc:
        raise UsageError(
            f"--storage {redact(url)}: its database driver is not installed ({scrub(str(exc), url)})"
        ) from None


def _add_missing_columns(engine: sa.Engine) -> None:
    """Bring a study's tables made by an earlier tritune up to this one's (a column added since:
    tritune_claims.beat), through Alembic, which Optuna's own schema migrations use."""
    with engine.begin() as conn:
        have = {c["name"] for c in sa.inspect(conn).get_columns(CLAIMS.name)}
        if "beat" not in have:
            from alembic.migration import MigrationContext
            from alembic.operations import Operations

            Operations(MigrationContext.configure(conn)).add_column(
                CLAIMS.name, sa.Column("beat", sa.DateTime)
            )


class SharedTables:
    """The shared result tables and claims of one study, as one worker sees them."""

    def __init__(
        self,
        url: str,
        study: str,
        worker: str,
        *,
        retry: DbRetry | None = None,
        timings: SharedTimings | None = None,
    ) -> None:
        self.url, self.study, self.worker = url, study, worker
        self.timings = timings or timings_from_env()
        self.retry = retry or DbRetry(url, self.timings.retry_s)
        self.engine = engine_for(url)

        def make_schema() -> None:
            _META.create_all(self.engine)
            _add_missing_columns(self.engine)

        self._call("creating the study's tables", lambda: retry_schema_race(make_schema))

    def close(self) -> None:
        """Close the database connections of these tables."""
        self.engine.dispose()

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        return self.retry.call(fn, what)

    def _claim_is(self, config_id: str, trial: int | None) -> Any:
        """Whose the claim is that a row of this trial is written under: the config's (a search
        row), or the confirmation round's (trial None)."""
        key = config_id if trial is not None else CONFIRM_CLAIM
        return sa.select(CLAIMS.c.trial, CLAIMS.c.worker).where(
            CLAIMS.c.study == self.study, CLAIMS.c.config_id == key
        )

    def append(self, kind: str, row: dict[str, Any], trial: int | None) -> None:
        """Add one table row (durable when this returns), if this worker still holds the claim
        it belongs to: the config's for `trial`, or the confirmation round's for trial None.
        ClaimLostError otherwise (another worker took it over; nothing is written).

        The claim is read FOR SHARE in the row's own transaction, so a worker taking it over
        (take_over updates the claim, then drops the old trial's rows) waits for this row and
        then drops it too: no row of a lost claim outlives the takeover."""
        config_id = str(row.get("config_id"))

        def write() -> None:
            with self.engine.begin() as conn:
                held = conn.execute(self._claim_is(config_id, trial).with_for_update(read=True)).first()
                mine = held is not None and str(held.worker) == self.worker
                if trial is not None:
                    mine = mine and held is not None and int(held.trial) == trial
                if not mine:
                    what = f"config {config_id}" if trial is not None else "the confirmation round"
                    by = f"by {held.worker}" if held is not None else "(released)"
                    raise ClaimLostError(
                        f"{what} was taken over {by} while this worker measured it: its heartbeat "
                        "was stale for longer than the grace period"
                    )
                conn.execute(
                    ROWS.insert().values(
                        study=self.study,
                        kind=kind,
                        config_id=config_id,
                        trial=trial,
                        worker=self.worker,
                        row=json.dumps({k: _json_value(v) for k, v in row.items()}),
                    )
                )

        self._call("writing a row", write)

    def rows(self, kind: str, columns: list[str]) -> pd.DataFrame:
        """Every worker's rows of one kind, in the order written, with at least `columns`."""

        def read() -> list[dict[str, Any]]:
            with self.engine.connect() as conn:
                result = conn.execute(
                    sa.select(ROWS.c.row, ROWS.c.worker)
                    .where(ROWS.c.study == self.study, ROWS.c.kind == kind)
                    .order_by(ROWS.c.id)
                )
                return [{**json.loads(r.row), "worker": r.worker} for r in result]

        frame = pd.DataFrame.from_records(self._call("reading the rows", read))
        for col in columns:
            if col not in frame.columns:
                frame[col] = math.nan
        return frame[columns + [c for c in frame.columns if c not in columns]]

    def count(self, kind: str) -> int:
        """How many rows of one kind the study holds (a cheap sign of a worker's progress)."""

        def read() -> int:
            with self.engine.connect() as conn:
                return int(
                    conn.execute(
                        sa.select(sa.func.count())
                        .select_from(ROWS)
                        .where(ROWS.c.study == self.study, ROWS.c.kind == kind)
                    ).scalar_one()
                )

        return self._call("counting the rows", read)

    def drop_trial_rows(self, config_id: str, trial: int) -> None:
        """Forget the rows a trial wrote for a config it never finished (a dead worker's, or
        this worker's own when it leaves mid-config)."""

        def drop() -> None:
            with self.engine.begin() as conn:
                conn.execute(
                    ROWS.delete().where(
                        ROWS.c.study == self.study, ROWS.c.config_id == config_id, ROWS.c.trial == trial
                    )
                )

        self._call("dropping an unfinished config's rows", drop)

    def claim(self, config_id: str, trial: int) -> bool:
        """Claim a config for a trial; False when another trial holds it."""

        def insert() -> None:
            with self.engine.begin() as conn:
                conn.execute(
                    CLAIMS.insert().values(
                        study=self.study,
                        config_id=config_id,
                        trial=trial,
                        worker=self.worker,
                        beat=sa.func.now(),
                    )
                )

        try:
            self._call("claiming a config", insert)
            return True
        except sa.exc.IntegrityError:
            # Taken; or ours already, when a retried insert had in fact been committed.
            return self.holder(config_id) == (trial, self.worker)

    def holder(self, config_id: str) -> tuple[int, str] | None:
        """The trial and worker holding a config's claim (None: unclaimed)."""
        held = self.holding(config_id)
        return None if held is None else (held[0], held[1])

    def holding(self, config_id: str) -> tuple[int, str, Any] | None:
        """The trial and worker holding a claim, and its last beat (None: unclaimed)."""

        def read() -> Any:
            with self.engine.connect() as conn:
                return conn.execute(
                    sa.select(CLAIMS.c.trial, CLAIMS.c.worker, CLAIMS.c.beat).where(
                        CLAIMS.c.study == self.study, CLAIMS.c.config_id == config_id
                    )
                ).first()

        row = self._call("reading a claim", read)
        return None if row is None else (int(row.trial), str(row.worker), row.beat)

    def take_over(self, config_id: str, old_trial: int, trial: int, old_worker: str | None = None) -> bool:
        """Move a claim from a dead holder (its trial, and its worker when given) to ours;
        True for exactly one caller."""

        def update() -> int:
            match = [
                CLAIMS.c.study == self.study,
                CLAIMS.c.config_id == config_id,
                CLAIMS.c.trial == old_trial,
            ]
            if old_worker is not None:
                match.append(CLAIMS.c.worker == old_worker)
            with self.engine.begin() as conn:
                result = conn.execute(
                    CLAIMS.update().where(*match).values(trial=trial, worker=self.worker, beat=sa.func.now())
                )
            return int(result.rowcount)

        return self._call("taking a claim over", update) == 1

    def release(self, config_id: str, trial: int) -> bool:
        """Give up a claim this worker holds (a config it leaves unfinished, or the confirmation
        round), so that another worker can claim it at once; False when it was not ours."""

        def delete() -> int:
            with self.engine.begin() as conn:
                result = conn.execute(
                    CLAIMS.delete().where(
                        CLAIMS.c.study == self.study,
                        CLAIMS.c.config_id == config_id,
                        CLAIMS.c.trial == trial,
                        CLAIMS.c.worker == self.worker,
                    )
                )
            return int(result.rowcount)

        return self._call("releasing a claim", delete) == 1

    def touch(self, config_id: str) -> bool:
        """Refresh the beat of a claim this worker holds; False when it is no longer ours.
        Called from a heartbeat thread, which tries again on its own: not retried here."""
        with self.engine.begin() as conn:
            result = conn.execute(
                CLAIMS.update()
                .where(
                    CLAIMS.c.study == self.study,
                    CLAIMS.c.config_id == config_id,
                    CLAIMS.c.worker == self.worker,
                )
                .values(beat=sa.func.now())
            )
        return int(result.rowcount) == 1
