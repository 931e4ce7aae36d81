"""Windows sized by requests, and the interim records a mid-level verdict judges."""

from __future__ import annotations

import math

import numpy as np

from analyzer.load.generator import IN_FLIGHT, OK, Records
from analyzer.measure.levels import MeasureSettings, interim_records, window_closes, window_requests_for


def test_window_requests_hold_the_claim_over_three_windows() -> None:
    assert window_requests_for(99.0, 0.99) == 153  # 3 x 153 = 459, the p99 claim at 99 %
    assert window_requests_for(95.0, 0.99) == 30  # 90 for a p95
    assert window_requests_for(99.0, 0.99, windows=1) == 459


def test_window_needs_both_its_minimum_time_and_its_requests() -> None:
    s = MeasureSettings(window_requests=153, min_window_s=0.25, max_window_s=2.0)
    assert not window_closes(0.10, 5000, s)  # a fast model: plenty of requests, too short
    assert window_closes(0.25, 153, s)
    assert not window_closes(0.5, 152, s)  # a slow model: long enough, too few requests
    assert not window_closes(1.99, 100, s)
    assert window_closes(2.0, 100, s)  # never past the maximum


def test_a_fixed_window_overrides_the_sizing() -> None:
    s = MeasureSettings(window_s=1.0, window_requests=153)
    assert not window_closes(0.9, 10_000, s)
    assert window_closes(1.0, 0, s)
    assert s.longest_window_s == 1.0 and MeasureSettings(max_window_s=3.0).longest_window_s == 3.0


def test_interim_records_count_late_requests_in_flight_as_unfinished() -> None:
    rec = Records(
        np.array([0.0, 0.1]),
        np.array([0.0, 0.1]),
        np.array([0.005, 0.106]),
        np.array([0, 0], dtype=np.int32),
        (OK,),
    )
    # (scheduled, sent): in flight since 0.05 (sent 0.09: late) and 0.15; 0.30 is after the span
    pending = np.array([[0.05, 0.09], [0.15, 0.15], [0.30, 0.30]])
    out = interim_records(rec, pending, before=0.2)
    assert len(out) == 4 and out.kinds == (OK, IN_FLIGHT)
    assert out.error.tolist() == [0, 0, 1, 1] and np.isnan(out.done[2:]).all()
    assert out.scheduled[2:].tolist() == [0.05, 0.15] and out.sent[2:].tolist() == [0.09, 0.15]
    assert interim_records(rec, np.array([[0.3, 0.3]]), before=0.2) is rec  # nothing in flight: unchanged


def test_requests_in_flight_count_against_the_claim_but_are_not_errors() -> None:
    from analyzer.stats.measurement import summarize

    n = 600
    sched = np.linspace(0.0, 0.6, n, endpoint=False)
    rec = Records(sched, sched, sched + 0.002, np.zeros(n, dtype=np.int32), (OK,))
    out = interim_records(rec, np.array([[0.1, 0.1], [0.2, 0.2], [0.3, 0.3]]), before=0.6)
    m = summarize(
        out, 0.0, 0.6, load_mode="concurrency", load_level=4, windows=3, stable=True, budget_ms=10.0
    )
    assert m.errors == 0 and m.error_kinds == ""
    assert m.over_budget == 3 and m.requests == n + 3
    # 3 over of 603 prove no p99 under any budget: only 0 over passes at 99 %, and the slowest is in flight.
    assert m.budget_bound_ms == math.inf
