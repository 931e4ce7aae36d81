"""A worker whose claim was taken over writes and tells nothing more for that config: its
heartbeat went stale (here it beats once a minute while the other worker's grace period is 2 s;
in life, a worker paused or cut off for longer than the grace period), the other worker took the
config over, and the first one's next row and its tell are refused with ClaimLostError (which
the runner turns into a progress message), never Optuna's error for a finished trial."""

from __future__ import annotations

import time

import pytest

from analyzer.config.modelconfig import Candidate
from analyzer.errors import ClaimLostError
from analyzer.search.base import Search
from analyzer.search.claims import SharedAsk
from analyzer.search.registry import make_search
from analyzer.search.study import Outcome
from analyzer.store.shared_storage import open_shared_storage
from analyzer.store.shared_timing import SharedTimings
from analyzer.store.study_tables import SharedTables
from tests.helpers import opened

ONE = Candidate(1, 8, 0)


def _worker(url: str, name: str, timings: SharedTimings) -> tuple[Search, SharedTables]:
    storage = opened(open_shared_storage(url, timings))
    tables = opened(SharedTables(url, "lost", name, retry=storage.retry, timings=timings))
    search = make_search(
        "grid", candidates=[ONE], storage=storage, study_name="lost", claims=SharedAsk(tables), budget_ms=10
    )
    return search, tables


def test_a_worker_that_lost_its_claim_writes_and_tells_nothing(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import analyzer.search.claims

    monkeypatch.setattr(analyzer.search.claims, "SHARED_POLL_S", 0.2)
    a, a_rows = _worker(postgres_url, "a:1", SharedTimings(heartbeat_s=60, grace_s=120))
    b, b_rows = _worker(postgres_url, "b:2", SharedTimings(heartbeat_s=1, grace_s=2))
    assert a.ask() == ONE
    a_trial = a.trial_number
    a_rows.append("measurement", {"config_id": ONE.config_id, "load_level": 1}, a_trial)  # while it holds it
    # B finds A's trial stale, fails it (Optuna queues the config again) and takes the claim over,
    # dropping A's rows.
    deadline = time.monotonic() + 20
    assert b.ask(keep_waiting=lambda: time.monotonic() < deadline) == ONE
    assert b_rows.holder(ONE.config_id) == (b.trial_number, "b:2")
    with pytest.raises(ClaimLostError, match="was taken over by b:2"):
        a_rows.append("measurement", {"config_id": ONE.config_id, "load_level": 2}, a_trial)
    with pytest.raises(ClaimLostError, match=f"config {ONE.config_id} was taken over by b:2"):
        a.tell(ONE, Outcome(100.0, 1.0))
    a.drop_lost()
    # B measures it; what the study holds is B's alone.
    b_trial = b.trial_number
    b_rows.append("measurement", {"config_id": ONE.config_id, "load_level": 1}, b_trial)
    b.tell(ONE, Outcome(90.0, 1.0))
    rows = b_rows.rows("measurement", ["config_id", "load_level"])
    assert list(rows["worker"]) == ["b:2"]
    done = [t for t in b.study.get_trials() if t.user_attrs.get("measured")]
    assert [(t.number, t.user_attrs["capacity_rps"]) for t in done] == [(b_trial, 90.0)]
