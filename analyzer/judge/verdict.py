"""The budget verdict: does a measurement's tail latency provably meet the budget?

Pure logic: the one budget rule (`judge`) for a measurement or a stored row, with the binomial
bound that makes a p99 claim trustworthy, and the futility stop that ends a level that cannot
prove it. The level search that finds a config's capacity with it is analyzer.judge.levelsearch.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from analyzer.schema import csv_true, percentile_field
from analyzer.stats.measurement import Measurement, allowed_over, binom_cdf_table


def exceed_probability_bound(over: int, n: int, q: float) -> float:
    """P(at most `over` of n requests exceed the budget | the true q-th percentile is at the
    budget): the p-value of the claim "the q-th percentile is under the budget"."""
    if n <= 0:
        return 1.0
    p = 1.0 - q / 100.0
    return float(binom_cdf_table(n, p)[min(over, n)])


@functools.lru_cache(maxsize=4096)
def required_requests(over: int, q: float = 99.0, confidence: float = 0.99) -> int:
    """Fewest requests for which `over` requests over the budget still prove, with `confidence`,
    that the q-th percentile is under it. With 0 over and p99 at 99 %: 459."""
    alpha = 1.0 - confidence
    lo, hi = over + 1, max(over + 1, 16)
    while exceed_probability_bound(over, hi, q) > alpha:
        lo, hi = hi, hi * 2
        if hi > 50_000_000:
            return hi
    while lo < hi:  # the bound falls as n grows: bisect for the first n that passes
        mid = (lo + hi) // 2
        if exceed_probability_bound(over, mid, q) <= alpha:
            hi = mid
        else:
            lo = mid + 1
    return lo


def poisson_lower(k: int, z: float = 1.645) -> float:
    """One-sided lower confidence bound (95 % by default) of a Poisson mean from k events
    (Wilson-Hilferty's approximation of the chi-square quantile; 0 for no events)."""
    if k <= 0:
        return 0.0
    return k * max(0.0, 1.0 - 1.0 / (9.0 * k) - z / (3.0 * math.sqrt(k))) ** 3


def claim_futile(
    over: int, n: int, windows: int, max_windows: int, q: float = 99.0, confidence: float = 0.99
) -> bool:
    """Whether the claim "the q-th percentile is under the budget" can no longer plausibly be
    proven by the level's last window (a futility stop, as in group-sequential trials).

    At even the low end (95 % lower bound) of the rate at which requests have exceeded the budget
    so far, the level's remaining windows would leave more requests over it than the claim
    allows for that many requests. A level that cannot meet the budget need not run out its
    windows to say so; it ends unproven, as it would have at its last window.
    """
    if n <= 0 or windows <= 0 or over <= 0:
        return False
    final_n = int(n * max(max_windows, windows) / windows)
    expected_low = poisson_lower(over) / n * final_n
    return expected_low > allowed_over(final_n, q, confidence)


class Status(str, Enum):
    """A verdict's status: what `judge` decided about a level. The values are what the tables'
    `verdict` column holds, so a status compares equal to its stored text."""

    MEETS = "meets"
    OVER_BUDGET = "over_budget"
    ERRORS = "errors"
    UNSTABLE = "unstable"
    TOO_FEW_REQUESTS = "too_few_requests"
    CLIENT_BOUND = "client_bound"  # also the level search's outcome for such a level

    def __str__(self) -> str:  # the stored text in CSV rows and messages, not "Status.MEETS"
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


@dataclass(frozen=True)
class Verdict:
    """Does a measurement meet the budget? `meets` only when the claim is trustworthy.

    `decided` says whether more requests could still change the answer: a proven claim either
    way, or errors, end a level at once; an unproven one keeps it measuring.
    """

    meets: bool
    status: Status
    reason: str
    decided: bool = True


def is_finite(value: float | None) -> bool:
    """A real, finite number (not None, NaN or infinite)."""
    return value is not None and isinstance(value, (int, float)) and math.isfinite(value)


def judge(
    *,
    budget_ms: float,
    percentile: float,
    value_ms: float,
    upper_ms: float,
    lower_ms: float,
    errors: int,
    stable: bool,
    requests: int,
    over: int = -1,
    confidence: float = 0.99,
    error_kinds: str = "",
    client_bound: str = "",
    worst_minute_ms: float = math.nan,
) -> Verdict:
    """The one budget rule: the sweep, the report, the dashboard's slider and `profile
    --budget-ms` all judge a level with this function.

    - client bound: the load generator could not hold the load (`client_bound` says why, see
      analyzer.load.selfcheck); the level's figures describe the client, so it never counts as
      capacity, nor as a break of the budget (decided).
    - errors: any failed request breaks the budget (decided).
    - over budget, proven: the budget is below `lower_ms`, the percentile's one-sided lower
      confidence bound (so many requests exceeded it that the true percentile is over it).
    - over budget, estimate: the measured percentile is over the budget, not yet proven.
    - worst minute over budget: a scheduled run (a whole load schedule played once) whose
      percentile over its worst minute is over the budget breaks it even when the whole run's
      does not: a burst that breaks the budget for a minute is a broken budget (decided).
    - unstable: windows that never agreed cannot support a claim.
    - too few requests: under the budget, but the budget is below `upper_ms`, the one-sided upper
      confidence bound, so the claim "the true percentile is under the budget" is not proven.
    - meets: everything above passed (decided).
    Bounds come from measure.claim_bound / over_bound at the sweep's percentile and confidence.
    """
    label = f"p{percentile:g}"
    if client_bound:
        # First: a generator behind its schedule also fills its own backlog (client_backlog
        # errors) and inflates every latency; none of that is the model's.
        return Verdict(False, Status.CLIENT_BOUND, f"client bound: {client_bound}", True)
    if errors > 0:
        return Verdict(False, Status.ERRORS, f"{errors} request errors ({error_kinds})", True)
    if is_finite(lower_ms) and budget_ms < lower_ms:
        return Verdict(
            False,
            Status.OVER_BUDGET,
            f"{label} {value_ms:.2f} ms > budget {budget_ms:g} ms, proven ({requests} requests: the "
            f"{label} is over {lower_ms:.2f} ms with {confidence:.0%} confidence)",
            True,
        )
    if not is_finite(value_ms) or value_ms > budget_ms:
        return Verdict(
            False, Status.OVER_BUDGET, f"{label} {value_ms:.2f} ms > budget {budget_ms:g} ms", False
        )
    if is_finite(worst_minute_ms) and worst_minute_ms > budget_ms:
        return Verdict(
            False,
            Status.OVER_BUDGET,
            f"{label} {worst_minute_ms:.2f} ms in the worst minute > budget "
            f"{budget_ms:g} ms (the whole run's {label}: {value_ms:.2f} ms)",
            True,
        )
    if not stable:
        return Verdict(
            False,
            Status.UNSTABLE,
            f"windows did not agree within tolerance ({label} {value_ms:.2f} ms)",
            False,
        )
    if not (budget_ms >= upper_ms):  # NaN or inf: no claim holds
        need = f"; needs {required_requests(over, percentile, confidence)}" if over >= 0 else ""
        return Verdict(
            False,
            Status.TOO_FEW_REQUESTS,
            f"{requests} requests{f' ({over} over budget)' if over >= 0 else ''} cannot show {label} < "
            f"{budget_ms:g} ms with {confidence:.0%} confidence{need}",
            False,
        )
    return Verdict(
        True,
        Status.MEETS,
        f"{label} {value_ms:.2f} ms <= {budget_ms:g} ms ({requests} requests"
        + (f", {over} over)" if over >= 0 else ")"),
        True,
    )


def budget_verdict(
    m: Measurement, budget_ms: float, percentile: float = 99.0, confidence: float = 0.99
) -> Verdict:
    """Judge one measurement against the budget (see `judge`).

    The claim bounds are the measurement's own (computed at the sweep's percentile and
    confidence). A measurement made without them (a budget-less profile, an older run) is judged
    from its count of requests over the budget instead, which is the same binomial rule.
    """
    value = getattr(m, percentile_field(percentile))
    upper = m.budget_bound_ms
    over = max(m.over_budget, 0)
    if not isinstance(upper, float) or math.isnan(upper):
        proven = exceed_probability_bound(over, m.requests, percentile) <= 1.0 - confidence
        upper = budget_ms if proven else math.inf
    return judge(
        budget_ms=budget_ms,
        percentile=percentile,
        value_ms=value,
        upper_ms=upper,
        lower_ms=m.over_bound_ms,
        errors=m.errors,
        stable=m.stable,
        requests=m.requests,
        over=over,
        confidence=confidence,
        error_kinds=m.error_kinds,
        client_bound=m.client_bound_reason,
        worst_minute_ms=m.worst_minute_ms,
    )


def row_verdict(
    row: Mapping[str, Any], budget_ms: float, percentile: float = 99.0, confidence: float = 0.99
) -> Verdict:
    """Judge a stored measurements.csv row against any budget, by `judge`.

    Rows carry the claim bounds of the sweep's percentile (`budget_bound_ms`, `over_bound_ms`).
    Rows written before those columns existed fall back to the 95 % upper bound of p99 (or, where
    that is unknown, enough requests for the binomial claim with none over).
    """

    def num(key: str, default: float = math.nan) -> float:
        try:
            value = float(row.get(key, default))
        except (TypeError, ValueError):
            return default
        return value

    value = num(percentile_field(percentile))
    requests = int(num("requests", 0.0) or 0)
    upper = num("budget_bound_ms")
    if math.isnan(upper):
        high = num("p99_ci_high_ms")
        if not math.isnan(high):
            upper = high
        else:
            upper = budget_ms if requests >= required_requests(0, percentile, confidence) else math.inf
    errors = num("errors", 1.0)
    stable = csv_true(row.get("stable"))
    return judge(
        budget_ms=budget_ms,
        percentile=percentile,
        value_ms=value,
        upper_ms=upper,
        lower_ms=num("over_bound_ms"),
        errors=1 if math.isnan(errors) else int(errors),
        stable=stable,
        requests=requests,
        confidence=confidence,
        error_kinds=str(row.get("error_kinds") or ""),
        client_bound=_client_bound_text(row),
        worst_minute_ms=num("worst_minute_ms"),
    )


def _client_bound_text(row: Mapping[str, Any]) -> str:
    """A stored row's client-bound reason ('' when the generator kept up, or an older row)."""
    if not csv_true(row.get("client_bound")):
        return ""
    reason = row.get("client_bound_reason")
    return str(reason) if isinstance(reason, str) and reason else "the load generator could not hold the load"
