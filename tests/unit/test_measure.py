"""Percentiles, their confidence intervals, the stability rule and span summaries."""

from __future__ import annotations

import math

import numpy as np
import pytest

from analyzer.load.generator import Records
from analyzer.stats.measurement import (
    WindowStat,
    binom_cdf_table,
    is_stable,
    percentile,
    quantile_ci,
    quantile_ci_ranks,
    summarize,
    window_stat,
)


def test_percentile_is_nearest_rank() -> None:
    values = np.arange(1, 101, dtype=float)
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile(values, 99.5) == 100
    assert percentile(values, 100) == 100
    assert percentile(np.array([7.0]), 99) == 7
    assert math.isnan(percentile(np.array([]), 99))


def test_binomial_cdf_matches_direct_sum() -> None:
    n, p = 40, 0.23
    table = binom_cdf_table(n, p)
    direct = np.cumsum([math.comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(n + 1)])
    assert np.allclose(table, direct, rtol=1e-9, atol=1e-12)
    assert table[-1] == pytest.approx(1.0)


def test_ci_ranks_bracket_the_quantile_rank() -> None:
    lower, upper = quantile_ci_ranks(1000, 99)
    assert lower is not None and upper is not None
    assert lower < 990 < upper
    # Normal approximation: 990 +- 1.96*sqrt(1000*0.99*0.01) ~ 990 +- 6.2
    assert 981 <= lower <= 985 and 995 <= upper <= 998


def test_ci_upper_bound_unknown_with_too_few_samples() -> None:
    lower, upper = quantile_ci_ranks(100, 99)
    assert upper is None  # 100 samples cannot bound a p99 from above
    assert lower is not None
    lo, hi = quantile_ci(np.sort(np.random.default_rng(0).exponential(size=100)), 99)
    assert math.isnan(hi) and lo > 0


def test_ci_coverage_is_at_least_nominal() -> None:
    # The true p99 of Exp(1) is ln(100); a 95% interval must contain it about 95% of the time.
    rng = np.random.default_rng(42)
    truth = math.log(100)
    trials, hits = 600, 0
    for _ in range(trials):
        sample = np.sort(rng.exponential(size=800))
        lo, hi = quantile_ci(sample, 99, 0.95)
        hits += lo <= truth <= hi
    assert 0.93 <= hits / trials <= 0.995


def _win(tp: float, p99: float, n: int = 5000, ci: float = 0.02) -> WindowStat:
    # A window whose p99 is known to +-2 % unless said otherwise.
    return WindowStat(0.0, 1.0, n, tp, p99, p99 * (1 - ci), p99 * (1 + ci))


def test_stability_rule() -> None:
    assert is_stable([_win(100, 10), _win(105, 10.5), _win(97, 9.6)], 0.10)
    assert not is_stable([_win(100, 10), _win(105, 10.5)], 0.10)  # too few windows
    assert not is_stable([_win(100, 10), _win(130, 10), _win(100, 10)], 0.10)  # throughput moved
    assert not is_stable([_win(100, 10), _win(100, 14), _win(100, 10)], 0.10)  # p99 moved
    assert not is_stable([_win(100, 10), _win(100, 10), _win(0, math.nan, 0)], 0.10)
    # Only the last three count.
    assert is_stable([_win(10, 99), _win(100, 10), _win(101, 10), _win(99, 10)], 0.10)
    # Short windows of 250 requests count throughput to about +-6 % (1/sqrt(250)): 15 % apart is
    # noise for them, and 45 % apart is not.
    assert is_stable([_win(100, 10, 250), _win(115, 10, 250), _win(100, 10, 250)], 0.10)
    assert not is_stable([_win(100, 10, 250), _win(145, 10, 250), _win(100, 10, 250)], 0.10)


def test_p99_differences_within_sampling_noise_are_stable() -> None:
    # Few requests per window: each p99 is uncertain by +-40 %, so 10 vs 14 ms is noise.
    noisy = [_win(100, 10, 300, 0.4), _win(100, 14, 300, 0.4), _win(100, 10, 300, 0.4)]
    assert is_stable(noisy, 0.10)
    # Unknown upper bounds (too few samples) cannot rule agreement out.
    unknown = [WindowStat(0, 1, 50, 100, p, math.nan, math.nan) for p in (5.0, 9.0, 6.0)]
    assert is_stable(unknown, 0.10)


def _records(scheduled, sent, done, error, kinds=("ok",)) -> Records:
    return Records(
        np.asarray(scheduled, float),
        np.asarray(sent, float),
        np.asarray(done, float),
        np.asarray(error, np.int32),
        tuple(kinds),
    )


def test_summarize_counts_late_finishers_and_errors() -> None:
    # 100 ok requests scheduled every 10 ms in [0, 1), each taking 2 ms ...
    sched = np.arange(100) * 0.01
    done = sched + 0.002
    err = np.zeros(100, int)
    # ... except one stalled for 1.5 s (finishes after the span) and one unfinished, one error.
    done[50] = sched[50] + 1.5
    done[60] = math.nan
    err[60] = 1
    err[70] = 2
    # A request scheduled before the span is ignored.
    sched = np.append(sched, -0.5)
    done = np.append(done, -0.49)
    err = np.append(err, 0)
    rec = _records(sched, sched, done, err, ("ok", "unfinished", "timeout"))
    m = summarize(rec, 0.0, 1.0, load_mode="rate", load_level=100, windows=3, stable=True)
    assert m.requests == 100
    assert m.errors == 2
    assert m.error_kinds == "timeout=1;unfinished=1"
    assert m.max_ms == pytest.approx(1500.0)  # the stall is in the latencies
    assert m.p50_ms == pytest.approx(2.0)
    # Throughput counts successes finishing inside the span: 100 - stalled - unfinished - error.
    assert m.throughput_rps == pytest.approx(97.0)
    assert m.offered_rps == pytest.approx(100.0)
    assert m.budget_bound_ms == math.inf  # 100 requests cannot prove a p99 at 99 %


def test_summarize_claim_bound_counts_unfinished_requests_as_slowest() -> None:
    # 1000 requests of 1..1000 us: with 99 % confidence the p99 is under the (k+1)-th largest,
    # where k (the over-budget count still allowed) is 2 for n = 1000: the 998 us one.
    n = 1000
    sched = np.arange(n) * 0.001
    done = sched + (np.arange(n) + 1) * 1e-6
    rec = _records(sched, sched, done, np.zeros(n, int), ("ok", "unfinished"))
    m = summarize(rec, 0.0, 1.0, load_mode="rate", load_level=1000, windows=3, stable=True, budget_ms=0.9005)
    assert m.budget_bound_ms == pytest.approx(0.998)
    assert m.over_budget == 100
    # Two requests never finish: they take both of the k slots at the top, so the bound is now
    # the slowest finished request.
    done[[10, 20]] = math.nan
    err = np.zeros(n, int)
    err[[10, 20]] = 1
    m = summarize(
        _records(sched, sched, done, err, ("ok", "unfinished")),
        0.0,
        1.0,
        load_mode="rate",
        load_level=1000,
        windows=3,
        stable=True,
    )
    assert m.budget_bound_ms == pytest.approx(1.0)


def test_window_stat_uses_completion_time() -> None:
    sched = np.array([0.0, 0.1, 0.2, 0.9])
    done = np.array([0.05, 0.15, 1.2, 0.95])
    rec = _records(sched, sched, done, [0, 0, 0, 0])
    w = window_stat(rec, 0.0, 1.0)
    assert w.requests == 3
    assert w.throughput_rps == pytest.approx(3.0)
    assert w.p99_ms == pytest.approx(50.0)
