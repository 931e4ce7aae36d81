"""Splitting a load level among worker processes, merging their records, and the self-check
that marks a level client bound (all pure)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from analyzer.judge.levelsearch import FAILS, MEETS, LevelSearch, outcome_of
from analyzer.judge.verdict import Status, budget_verdict, judge, row_verdict
from analyzer.load.generator import OK, Records
from analyzer.load.selfcheck import ClientLoad, client_bound_reason
from analyzer.load.shapes import LoadSpec, arrival_offsets
from analyzer.load.split import active_workers, auto_workers, share_offsets, split_concurrency
from analyzer.stats.measurement import Measurement
from tests.helpers import measurement


@pytest.mark.parametrize("level,workers", [(16, 2), (7, 3), (1, 1), (5, 8), (1024, 7)])
def test_concurrency_shares_add_up_and_differ_by_at_most_one(level: int, workers: int) -> None:
    shares = split_concurrency(level, workers)
    assert len(shares) == workers and sum(shares) == level
    assert max(shares) - min(shares) <= 1


def test_constant_arrivals_split_into_exactly_the_single_schedule() -> None:
    load = LoadSpec("rate", 1000, arrival="constant")
    whole = arrival_offsets(1000, 2.0, "constant")
    parts = [share_offsets(load, 2.0, i, 3) for i in range(3)]
    assert np.array_equal(np.sort(np.concatenate(parts)), whole)


def test_poisson_streams_are_independent_and_add_up_to_the_rate() -> None:
    load = LoadSpec("rate", 3000, seed=5)
    parts = [share_offsets(load, 20.0, i, 4) for i in range(4)]
    # Each stream has its own seed (no two share send times) and about rate/4 requests.
    assert len(set(np.round(parts[0], 9)) & set(np.round(parts[1], 9))) == 0
    for part in parts:
        assert abs(len(part) / 20.0 / 750.0 - 1) < 0.05
    merged = np.sort(np.concatenate(parts))
    assert abs(len(merged) / 20.0 / 3000.0 - 1) < 0.03
    # The merge is Poisson at the full rate: exponential gaps, mean 1/3000 s and CV 1.
    gaps = np.diff(merged)
    assert abs(gaps.mean() * 3000 - 1) < 0.03 and abs(gaps.std() / gaps.mean() - 1) < 0.05
    # One worker keeps the load's own seed: the single-process schedule is unchanged.
    assert np.array_equal(share_offsets(load, 1.0, 0, 1), arrival_offsets(3000, 1.0, "poisson", 5))


def test_active_and_automatic_workers() -> None:
    assert active_workers(LoadSpec("concurrency", 3), 8) == 3  # never a worker with nothing in flight
    assert active_workers(LoadSpec("rate", 10), 8) == 8
    assert auto_workers(LoadSpec("concurrency", 16), cores=8) == 1
    assert auto_workers(LoadSpec("concurrency", 200), cores=8) == 7
    assert auto_workers(LoadSpec("concurrency", 2000), cores=8) == 8
    assert auto_workers(LoadSpec("rate", 30000), cores=4) == 4
    assert (
        auto_workers(LoadSpec("rate", 30000), cores=4, local_server=True) == 2
    )  # the server needs cores too
    assert auto_workers(LoadSpec("rate", 100), cores=64) == 1
    assert auto_workers(LoadSpec("rate", 30000), cores=2, local_server=True) == 1


def test_records_merge_maps_each_workers_error_codes() -> None:
    a = Records(
        np.array([1.0, 2.0]),
        np.array([1.0, 2.0]),
        np.array([1.5, 2.5]),
        np.array([0, 1], dtype=np.int32),
        (OK, "timeout"),
    )
    b = Records(
        np.array([3.0, 4.0, 5.0]),
        np.array([3.0, 4.0, 5.0]),
        np.array([3.5, math.nan, 5.5]),
        np.array([2, 1, 0], dtype=np.int32),
        (OK, "unavailable", "timeout"),
    )
    merged = Records.merge([a, b])
    assert len(merged) == 5 and merged.kinds == (OK, "timeout", "unavailable")
    named = [merged.kinds[c] for c in merged.error]
    assert named == [OK, "timeout", "timeout", "unavailable", OK]
    assert np.array_equal(merged.scheduled, [1.0, 2.0, 3.0, 4.0, 5.0])
    assert len(Records.merge([])) == 0


def test_open_loop_is_client_bound_when_sends_fall_behind() -> None:
    behind = ClientLoad(workers=1, cpu_s=0.7, busiest_loop_s=0.7, span_s=1.0, send_lag_p50_ms=52.8)
    reason = client_bound_reason("rate", 20000, behind)
    assert "52.8 ms late" in reason and "--workers" in reason and "separate load machine" in reason
    # A worker that keeps up lags a fraction of a millisecond (the loop's wake-up).
    assert client_bound_reason("rate", 2000, ClientLoad(1, 0.4, 0.4, 1.0, 0.41)) == ""
    # Large against a slow schedule's gap is what counts: 3 ms late at 10/s is on time.
    assert client_bound_reason("rate", 10, ClientLoad(1, 0.01, 0.01, 1.0, 3.0)) == ""
    assert client_bound_reason("rate", 1000, ClientLoad(1, 0.3, 0.3, 1.0, 3.0)) != ""


def test_closed_loop_is_client_bound_when_a_loop_is_saturated() -> None:
    assert client_bound_reason("concurrency", 64, ClientLoad(2, 1.9, 0.95, 1.0)) != ""
    assert client_bound_reason("concurrency", 64, ClientLoad(2, 1.2, 0.6, 1.0)) == ""
    # Unknown CPU (no sample) never marks a level.
    assert client_bound_reason("concurrency", 64, ClientLoad(1, math.nan, math.nan, 1.0)) == ""


def _m(p99: float, client_bound: str = "") -> Measurement:
    return measurement(
        p99,
        load_mode="rate",
        load_level=20000,
        throughput_rps=5000.0,
        requests=5000,
        over_budget=0,
        client_bound=bool(client_bound),
        client_bound_reason=client_bound,
    )


def test_a_client_bound_level_is_never_capacity_nor_a_break() -> None:
    v = budget_verdict(_m(5.0, "requests went out 40 ms late"), 10)
    assert not v.meets and v.status == Status.CLIENT_BOUND and v.decided and "40 ms late" in v.reason
    assert outcome_of(v) == Status.CLIENT_BOUND
    # Even latencies far over the budget are the client's, not the model's.
    assert budget_verdict(_m(500.0, "late"), 10).status == Status.CLIENT_BOUND
    assert budget_verdict(_m(5.0), 10).meets
    # A stored row is judged the same way.
    row = {**_m(5.0, "late").row(), "budget_bound_ms": 6.0, "over_bound_ms": 1.0}
    assert row_verdict(row, 10).status == Status.CLIENT_BOUND
    row["client_bound"] = "False"
    assert row_verdict(row, 10).meets
    # A generator behind schedule fills its own backlog: those errors are the client's too.
    assert (
        judge(
            budget_ms=10,
            percentile=99,
            value_ms=5,
            upper_ms=6,
            lower_ms=1,
            errors=3,
            stable=True,
            requests=100,
            error_kinds="client_backlog=3",
            client_bound="late",
        ).status
        == Status.CLIENT_BOUND
    )
    assert (
        judge(
            budget_ms=10,
            percentile=99,
            value_ms=5,
            upper_ms=6,
            lower_ms=1,
            errors=3,
            stable=True,
            requests=100,
            error_kinds="client_backlog=3",
        ).status
        == "errors"
    )


def test_level_search_treats_a_client_bound_level_as_a_ceiling_and_a_lower_bound() -> None:
    s = LevelSearch("rate", 100, 100000, start=1000, budget_ms=50.0)
    s.record(1000, 1000.0, MEETS, 5.0)
    s.record(2000, 2000.0, MEETS, 6.0)
    s.record(8000, 4000.0, Status.CLIENT_BOUND, 900.0)
    assert s.broken == [8000] and s.unbroken == [1000, 2000]
    level = s.next_level()
    assert level is not None and 2000 < level < 8000  # refines below it; never confirms above it
    s.record(level, level, MEETS, 7.0)
    while (nxt := s.next_level()) is not None:
        assert nxt < 8000
        s.record(nxt, nxt, Status.CLIENT_BOUND, 100.0)
    _capacity, at = s.capacity()
    assert at is not None and at < 8000 and s.client_limited and not s.at_cap
    ordinary = LevelSearch("rate", 100, 100000, start=1000, budget_ms=50.0)
    ordinary.record(1000, 1000.0, MEETS, 5.0)
    ordinary.record(2000, 1500.0, FAILS, 80.0)
    assert not ordinary.client_limited
