"""A running trial's heartbeat survives a failed write: with the study's PostgreSQL stopped, the
heartbeat thread keeps trying, and once the database is back it beats again, so the trial stays
alive (another worker does not fail it) and its worker tells its result. The thread is a daemon:
it never keeps a worker's process alive."""

from __future__ import annotations

import threading
from datetime import datetime

import optuna
import sqlalchemy as sa
from optuna.storages import fail_stale_trials
from optuna.trial import TrialState

from analyzer.config.modelconfig import Candidate
from analyzer.search.claims import SharedAsk
from analyzer.search.registry import make_search
from analyzer.search.study import Outcome
from analyzer.store.shared_storage import open_shared_storage
from analyzer.store.shared_timing import SharedTimings
from analyzer.store.study_tables import SharedTables
from tests.helpers import opened, wait_for
from tests.pg import Postgres

ONE = Candidate(1, 8, 0)
TIMINGS = SharedTimings(heartbeat_s=1, grace_s=3, retry_s=30)


def last_beat(url: str, study: str, number: int) -> datetime | None:
    """When the study's trial `number` last beat (Optuna's own table; the database's clock)."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(
                sa.text(
                    "select h.heartbeat from trial_heartbeats h join trials t on t.trial_id = h.trial_id "
                    "join studies s on s.study_id = t.study_id where s.study_name = :s and t.number = :n"
                ),
                {"s": study, "n": number},
            ).scalar()
    finally:
        engine.dispose()


def test_a_heartbeat_outlives_a_failed_write(postgres: Postgres) -> None:
    storage = opened(open_shared_storage(postgres.url, TIMINGS))
    shared = opened(SharedTables(postgres.url, "heartbeat", "a:1", retry=storage.retry, timings=TIMINGS))
    search = make_search(
        "grid",
        candidates=[ONE],
        storage=storage,
        study_name="heartbeat",
        claims=SharedAsk(shared),
        budget_ms=10,
    )
    assert search.ask() == ONE
    number = search.trial_number
    assert number is not None
    beat = search.heartbeat
    assert beat is not None and beat.alive
    others = [t for t in threading.enumerate() if t is not threading.main_thread()]
    assert others and all(t.daemon for t in others)  # nothing here can keep the process alive
    wait_for(lambda: last_beat(postgres.url, "heartbeat", number) is not None, 10, "the first beat")
    postgres.stop()
    try:
        wait_for(lambda: beat.failures >= 2, 20, "a heartbeat write to fail twice")
    finally:
        postgres.start()
    before = last_beat(postgres.url, "heartbeat", number)
    wait_for(lambda: last_beat(postgres.url, "heartbeat", number) != before, 15, "a beat after the restart")
    assert beat.alive
    # Another worker looking for dead workers now finds none: the trial still runs.
    fail_stale_trials(
        optuna.load_study(study_name="heartbeat", storage=opened(open_shared_storage(postgres.url, TIMINGS)))
    )
    search.tell(ONE, Outcome(100.0, 1.0))  # and its worker tells its result
    (trial,) = search.study.get_trials()
    assert trial.state == TrialState.COMPLETE
    assert not beat.alive
