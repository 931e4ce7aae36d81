"""The budget verdict (with its binomial bound) and the per-config level search."""

from __future__ import annotations

import math

import pytest

from analyzer.judge.levelsearch import FAILS, INCONCLUSIVE, MEETS, LevelSearch
from analyzer.judge.verdict import (
    budget_verdict,
    exceed_probability_bound,
    judge,
    required_requests,
    row_verdict,
)
from analyzer.stats.measurement import Measurement
from tests.helpers import measurement


def test_binomial_bound_459_for_a_clean_p99() -> None:
    assert required_requests(0, 99, 0.99) == 459
    assert 0.99**459 <= 0.01 < 0.99**458
    # More requests over the budget need more requests in all.
    needs = [required_requests(k) for k in range(5)]
    assert needs == sorted(needs) and needs[1] > 459 and needs[4] > 1000
    assert exceed_probability_bound(0, 459, 99) <= 0.01
    assert exceed_probability_bound(0, 458, 99) > 0.01
    # p95 needs fewer: 0.95^90 < 0.01
    assert required_requests(0, 95, 0.99) == 90


def _m(p99: float, requests: int = 2000, over: int = 0, errors: int = 0, stable: bool = True) -> Measurement:
    return measurement(
        p99,
        requests=requests,
        errors=errors,
        error_kinds="timeout=1" if errors else "",
        stable=stable,
        duration_s=3.0,
        over_budget=over,
    )


def test_verdicts() -> None:
    assert budget_verdict(_m(8.0), 10).meets
    v = budget_verdict(_m(12.0), 10)
    assert not v.meets and v.status == "over_budget" and "12.00 ms > budget 10 ms" in v.reason
    assert budget_verdict(_m(8.0, errors=1), 10).status == "errors"
    assert budget_verdict(_m(8.0, stable=False), 10).status == "unstable"
    few = budget_verdict(_m(8.0, requests=300), 10)
    assert few.status == "too_few_requests" and "needs 459" in few.reason
    # 15 of 2000 over the budget: point estimate fine, but not provably under it.
    assert budget_verdict(_m(9.9, requests=2000, over=15), 10).status == "too_few_requests"
    assert budget_verdict(_m(9.9, requests=2000, over=5), 10).meets
    assert budget_verdict(_m(math.nan, requests=0), 10).status == "over_budget"


def drive(search: LevelSearch, table: dict[float, tuple[float, str]]) -> list[float]:
    """Run the search against a table of level -> (throughput, outcome)."""
    visited = []
    while (level := search.next_level()) is not None:
        visited.append(level)
        search.record(level, *table[level])
    return visited


def test_ramp_then_refine() -> None:
    table = {
        1: (100, MEETS),
        2: (190, MEETS),
        4: (350, MEETS),
        8: (500, FAILS),
        16: (520, FAILS),
        6: (450, MEETS),
        7: (480, FAILS),
    }
    s = LevelSearch("concurrency", 1, 64, start=1, refine_steps=2)
    # 8 broke while throughput still rose: 16 confirms the break before refining below it.
    assert drive(s, table) == [1, 2, 4, 8, 16, 6, 7]
    assert s.capacity() == (450, 6)


def test_stops_when_throughput_is_flat_for_two_steps() -> None:
    table = {1: (100, MEETS), 2: (190, MEETS), 4: (195, MEETS), 8: (196, MEETS)}
    s = LevelSearch("concurrency", 1, 64, start=1)
    assert drive(s, table) == [1, 2, 4, 8]
    assert s.capacity() == (196, 8)


def test_one_flat_step_does_not_stop_the_ramp() -> None:
    # Little gain from 1 to 2 in flight, then batching kicks in.
    table = {
        1: (1500, MEETS),
        2: (1550, MEETS),
        4: (2400, MEETS),
        8: (3900, MEETS),
        16: (4000, FAILS),
        12: (3950, MEETS),
    }
    s = LevelSearch("concurrency", 1, 64, start=1, refine_steps=1)
    assert drive(s, table) == [1, 2, 4, 8, 16, 12]
    assert s.capacity() == (3950, 12)


def test_descends_when_the_start_breaks_the_budget() -> None:
    table = {16: (900, FAILS), 8: (800, FAILS), 4: (500, MEETS), 6: (650, MEETS), 7: (700, FAILS)}
    s = LevelSearch("concurrency", 1, 64, start=16, refine_steps=2)
    assert drive(s, table) == [16, 8, 4, 6, 7]
    assert s.capacity() == (650, 6)


def test_nothing_meets() -> None:
    s = LevelSearch("concurrency", 1, 64, start=2)
    assert drive(s, {2: (50, FAILS), 1: (30, FAILS)}) == [2, 1]
    assert s.capacity() == (0.0, None)


def test_inconclusive_levels_keep_the_ramp_going_but_do_not_count() -> None:
    table = {1: (80, INCONCLUSIVE), 2: (160, MEETS), 4: (300, MEETS), 8: (310, MEETS), 16: (312, MEETS)}
    s = LevelSearch("concurrency", 1, 64, start=1)
    assert drive(s, table) == [1, 2, 4, 8, 16]
    assert s.capacity() == (312, 16)


def test_refinement_pruned_when_it_cannot_beat_the_best() -> None:
    table = {4: (300, MEETS), 8: (400, FAILS), 16: (420, FAILS)}
    s = LevelSearch("concurrency", 1, 64, start=4, refine_steps=2, best_capacity=1000)
    assert drive(s, table) == [4, 8, 16]
    assert s.pruned and s.capacity() == (300, 4)


def test_no_pruning_when_the_good_level_already_beats_the_best() -> None:
    # Throughput fell at the broken level, but the good level itself beats the best so far.
    table = {8: (2700, MEETS), 16: (2200, FAILS), 12: (2750, MEETS)}
    s = LevelSearch("concurrency", 1, 64, start=8, refine_steps=1, best_capacity=2300)
    assert drive(s, table) == [8, 16, 12]
    assert not s.pruned and s.capacity() == (2750, 12)


def test_rate_levels_and_max_level() -> None:
    table = {100: (100, MEETS), 200: (199, MEETS), 250: (240, MEETS)}
    s = LevelSearch("rate", 10, 250, start=100)
    assert drive(s, table) == [100, 200, 250]
    assert s.capacity() == (240, 250)


def test_a_noisy_break_below_batching_gains_is_confirmed_and_overruled() -> None:
    # Seen on the demo model: one run broke the budget at concurrency 8, yet 16 and 24 met it.
    table = {
        2: (1900, MEETS),
        4: (1214, MEETS),
        8: (1627, FAILS),
        16: (3497, MEETS),
        32: (5551, FAILS),
        24: (4923, MEETS),
    }
    s = LevelSearch("concurrency", 1, 64, start=2, refine_steps=1)
    assert drive(s, table) == [2, 4, 8, 16, 32, 24]
    assert s.capacity() == (4923, 24)


def test_a_break_after_saturation_is_not_confirmed() -> None:
    table = {4: (1000, MEETS), 8: (1020, FAILS), 6: (1010, MEETS)}
    s = LevelSearch("concurrency", 1, 64, start=4, refine_steps=1)
    assert drive(s, table) == [4, 8, 6]


def test_confirmation_is_bounded() -> None:
    # The confirming level also breaks, and a second lone break later is believed at once.
    table = {1: (100, MEETS), 2: (200, FAILS), 4: (390, MEETS), 8: (700, FAILS), 6: (600, MEETS)}
    s = LevelSearch("concurrency", 1, 64, start=1, refine_steps=1, confirm_steps=1)
    assert drive(s, table) == [1, 2, 4, 8, 6]
    assert s.capacity() == (600, 6)


@pytest.mark.parametrize("start", [0.2, 1000])
def test_start_is_clamped(start: float) -> None:
    s = LevelSearch("concurrency", 1, 32, start=start)
    assert s.next_level() in (1.0, 32.0)


def test_claim_bound_is_the_verdicts_rule_for_every_budget() -> None:
    """A stored claim bound judges any budget exactly as the sweep's binomial verdict would:
    budget >= bound  <=>  the over-budget count passes the bound (for p99 and p95)."""
    import numpy as np

    from analyzer.stats.measurement import claim_bound, percentile

    rng = np.random.default_rng(7)
    checked = 0
    for n in (100, 458, 459, 700, 2000, 5000):
        lat = np.sort(rng.lognormal(1.0, 0.5, n))
        for q in (99.0, 95.0):
            bound = claim_bound(lat, q, 0.99)
            assert (bound == math.inf) == (n < required_requests(0, q, 0.99))
            for budget in np.quantile(lat, [0.9, 0.95, 0.97, 0.98, 0.99, 0.995, 0.999, 1.0]):
                over = int((lat > budget).sum())
                m = Measurement(
                    load_mode="concurrency",
                    load_level=4,
                    throughput_rps=100.0,
                    p50_ms=percentile(lat, 50),
                    p90_ms=percentile(lat, 90),
                    p95_ms=percentile(lat, 95),
                    p99_ms=percentile(lat, 99),
                    max_ms=float(lat[-1]),
                    mean_ms=float(lat.mean()),
                    p99_ci_low_ms=math.nan,
                    p99_ci_high_ms=math.nan,
                    requests=n,
                    errors=0,
                    error_kinds="",
                    windows=3,
                    stable=True,
                    duration_s=3.0,
                    over_budget=over,
                )
                assert budget_verdict(m, float(budget), q, 0.99).meets == (bound <= budget), (n, q, budget)
                checked += 1
    assert checked == 6 * 2 * 8


# -- the one budget rule, in both directions ------------------------------------------------------


def _judge(**kw: object):  # type: ignore[no-untyped-def]
    args = dict(
        budget_ms=10.0,
        percentile=99.0,
        value_ms=8.0,
        upper_ms=9.0,
        lower_ms=6.0,
        errors=0,
        stable=True,
        requests=1000,
        over=2,
    )
    args.update(kw)
    return judge(**args)  # type: ignore[arg-type]


def test_judge_decides_only_proven_claims() -> None:
    assert _judge().meets and _judge().decided
    # Over the budget and proven (the lower bound is above it): decided at once, stable or not.
    proven = _judge(value_ms=30.0, upper_ms=math.inf, lower_ms=20.0, stable=False)
    assert proven.status == "over_budget" and proven.decided and "proven" in proven.reason
    # Over the budget by the estimate, not proven yet: keep measuring.
    estimate = _judge(value_ms=11.0, upper_ms=math.inf, lower_ms=9.5)
    assert estimate.status == "over_budget" and not estimate.decided
    # Under by the estimate, but the claim is not proven, or the windows disagree: keep measuring.
    assert (_judge(upper_ms=12.0).status, _judge(upper_ms=12.0).decided) == ("too_few_requests", False)
    assert (_judge(stable=False).status, _judge(stable=False).decided) == ("unstable", False)
    # Errors end a level at once, whatever the latencies.
    assert (_judge(errors=3).status, _judge(errors=3).decided) == ("errors", True)


def test_proven_over_after_one_small_window() -> None:
    """100 requests with a fifth over the budget prove a p99 over it (the mirror of the 459-request
    claim); 100 requests with one over prove nothing either way."""
    import numpy as np

    from analyzer.stats.measurement import over_bound

    lat = np.sort(np.concatenate([np.full(80, 5.0), np.full(20, 170.0)]))
    assert over_bound(lat, 99, 0.99) == 170.0
    assert budget_verdict(_m(170.0, requests=100, over=20), 100).status == "over_budget"
    m = _m(170.0, requests=100, over=20)
    m.over_bound_ms = over_bound(lat, 99, 0.99)
    v = budget_verdict(m, 100, 99, 0.99)
    assert v.status == "over_budget" and v.decided
    one = np.sort(np.concatenate([np.full(99, 5.0), [170.0]]))
    # One slow request of 100 is what a p99 allows: only a budget under the 5th largest (5 ms,
    # which all 100 exceed) is proven broken, and a 100 ms budget is not.
    assert over_bound(one, 99, 0.99) == 5.0
    m1 = _m(170.0, requests=100, over=1)
    m1.over_bound_ms = over_bound(one, 99, 0.99)
    assert not budget_verdict(m1, 100, 99, 0.99).decided
    # Two requests both over a budget already prove a p99 over it (0.01^2 <= 1 %); none prove nothing.
    assert over_bound(np.array([5.0, 170.0]), 99, 0.99) == 5.0
    assert over_bound(np.array([]), 99, 0.99) == -math.inf


def test_over_bound_is_the_mirror_binomial_rule() -> None:
    """budget < over_bound  <=>  P(Binomial(n, 1 - q) >= over) <= alpha, for every budget."""
    import numpy as np

    from analyzer.stats.measurement import binom_cdf_table, over_bound

    rng = np.random.default_rng(3)
    for n in (50, 100, 300, 1000):
        lat = np.sort(rng.lognormal(1.0, 0.7, n))
        low = over_bound(lat, 99.0, 0.99)
        cdf = binom_cdf_table(n, 0.01)
        for budget in np.quantile(lat, [0.5, 0.8, 0.9, 0.95, 0.97, 0.98, 0.99]):
            over = int((lat > budget).sum())
            tail = 1.0 - (cdf[over - 1] if over >= 1 else 0.0)  # P(X >= over)
            assert (budget < low) == (over >= 1 and tail <= 0.01), (n, budget, over)


def test_row_verdict_is_the_measurement_verdict() -> None:
    m = _m(8.0, requests=2000, over=3)
    m.budget_bound_ms, m.over_bound_ms = 9.2, 6.5
    row = m.row()
    for budget in (5.0, 6.0, 8.5, 9.5, 20.0):
        a, b = budget_verdict(m, budget), row_verdict(row, budget)
        assert (a.meets, a.status, a.decided) == (b.meets, b.status, b.decided), budget


# -- the aimed level search ------------------------------------------------------------------------


def drive_latency(search: LevelSearch, curve: dict[float, tuple[float, float]], budget: float) -> list[float]:
    """Run the search against level -> (throughput, p99 ms), judging p99 against the budget."""
    visited = []
    while (level := search.next_level()) is not None:
        visited.append(level)
        tp, p99 = curve(level) if callable(curve) else curve[level]
        search.record(level, tp, MEETS if p99 <= budget else FAILS, p99)
    return visited


def saturated_server(level: float) -> tuple[float, float]:
    """A server that serves 1000 req/s at most, 1 ms per request alone: closed-loop latency is
    max(1 ms, level / 1000 s), so p99 (1.5 x the mean) breaks 50 ms just above 33 in flight."""
    tp = min(1000.0 * level, 1000.0)
    mean_ms = max(1.0, level / tp * 1000.0)
    return tp, 1.5 * mean_ms


def test_aimed_search_goes_near_the_break_instead_of_doubling() -> None:
    s = LevelSearch("concurrency", 1, 1024, start=1, budget_ms=50.0, refine_steps=3, resolution=0.03)
    visited = drive_latency(s, saturated_server, 50.0)
    # Doubling from 1 would take 1, 2, 4, 8, 16, 32, 64 and then bisect.
    assert len(visited) <= 5, visited
    assert s.capacity()[1] == 33.0  # the highest level with p99 <= 50 ms (33 in flight: 49.5 ms)
    assert visited[1] >= 8  # the second level is aimed, not doubled


def test_little_bound_never_overshoots_a_saturated_server() -> None:
    s = LevelSearch("concurrency", 1, 1024, start=40, budget_ms=50.0, resolution=0.03)
    s.record(40, *saturated_server(40)[:1], FAILS, saturated_server(40)[1])  # 60 ms at 40
    below = s.next_level()
    assert below is not None and below < 33  # aimed under the break, with a margin
    s2 = LevelSearch("concurrency", 1, 1024, start=10, budget_ms=50.0)
    s2.record(10, 1000.0, MEETS, 15.0)  # saturated: latency in proportion to load
    assert s2.next_level() == 33.0  # level x budget / latency


def test_rate_aim_follows_one_over_latency() -> None:
    # M/M/1 with mu = 1000/s: p99 = ln(100) / (mu - lambda) s; 1/p99 is linear in the rate.
    def mm1(rate: float) -> tuple[float, float]:
        return min(rate, 1000.0), (math.log(100) / (1000.0 - rate) * 1000.0) if rate < 1000 else math.inf

    budget = math.log(100) / 100.0 * 1000.0  # breaks at 900/s
    s = LevelSearch("rate", 10, 100000, start=300, budget_ms=budget, resolution=0.03)
    visited = drive_latency(s, mm1, budget)
    # One level: double; two levels: the 1/p99 line crosses 1/budget at the break itself.
    assert visited[:2] == [300.0, 600.0] and visited[2] == pytest.approx(900, rel=0.01), visited
    assert s.capacity()[0] == pytest.approx(900, rel=0.01)
    assert len(visited) <= 6  # then it checks above the break and narrows it to within 5 %


def test_meeting_at_the_cap_is_a_lower_bound() -> None:
    s = LevelSearch("concurrency", 1, 16, start=4, budget_ms=50.0)
    drive_latency(s, lambda lv: (100.0 * lv, 2.0), 50.0)
    assert s.capacity() == (1600.0, 16.0) and s.at_cap
    s2 = LevelSearch("concurrency", 1, 1024, start=1, budget_ms=50.0, resolution=0.03)
    drive_latency(s2, saturated_server, 50.0)
    assert not s2.at_cap


def test_resolution_stops_refining_when_throughput_cannot_grow() -> None:
    s = LevelSearch("concurrency", 1, 1024, start=8, budget_ms=10.0, resolution=0.03, refine_steps=5)
    s.record(8, 1000.0, MEETS, 8.0)
    s.record(16, 1010.0, FAILS, 16.0)
    assert s.next_level() is None  # 16 serves 1 % more than 8: nothing in between can matter
    s.resolution = 0.0
    assert s.next_level() == 10.0  # interpolated: 8 + (10 - 8) / (16 - 8) x 8, kept off the ends


def test_a_lighter_load_is_tried_when_nothing_could_be_judged() -> None:
    # Started at the best config's level / 2: 2 in flight gave unstable windows, 3 broke the budget.
    s = LevelSearch("concurrency", 1, 1024, start=2, budget_ms=10.0, resolution=0.03)
    s.record(2, 900.0, INCONCLUSIVE, 7.3)
    s.record(3, 820.0, FAILS, 11.6)
    assert s.next_level() == 1.0
    s.record(1, 600.0, MEETS, 4.0)
    assert s.next_level() is None and s.capacity() == (600.0, 1.0)


def test_a_marginal_break_of_a_batching_config_is_checked_above_even_when_throughput_dipped() -> None:
    # Seen on the demo model (2 instances, batch 32): 1247 req/s at 3 in flight, then 1176 at 4
    # with p99 12.8 ms over a 10 ms budget, while 18 in flight served 4100 req/s within it.
    def dip(batching: bool) -> LevelSearch:
        s = LevelSearch("concurrency", 1, 1024, start=3, budget_ms=10.0, resolution=0.03, batching=batching)
        s.record(3, 1247.0, MEETS, 7.9)
        s.record(4, 1176.0, FAILS, 12.8)
        return s

    assert dip(batching=True).next_level() == 8.0
    assert dip(batching=False).next_level() is None
    clear = dip(batching=True)
    clear.record(4, 1176.0, FAILS, 40.0)  # far over the budget: a real break
    assert clear.next_level() is None


def test_futility_stops_a_level_that_can_no_longer_prove_the_budget_met() -> None:
    from analyzer.judge.verdict import claim_futile, poisson_lower

    assert poisson_lower(0) == 0.0 and 0.03 < poisson_lower(1) < 0.06 and 0.7 < poisson_lower(3) < 0.9
    # 6 of 250 over a p99 budget after 1 of 10 windows: even at the low end of that rate, 2500
    # requests would hold ~26 over, and the claim allows 13.
    assert claim_futile(6, 250, 1, 10)
    # 3 of 250 is within what a p99 under the budget could show: keep measuring.
    assert not claim_futile(3, 250, 1, 10)
    assert not claim_futile(0, 250, 1, 10) and not claim_futile(1, 100, 1, 10)
    # Later windows leave less room: 12 of 1000 after 3 windows cannot reach the claim by 10.
    assert claim_futile(12, 1000, 3, 10) and not claim_futile(8, 2000, 6, 10)
