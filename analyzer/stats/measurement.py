"""Raw request records -> numbers you can trust: throughput, percentiles, confidence, stability.

Pure functions over numpy arrays. Percentiles use the nearest-rank definition (the value below
which at least q % of requests fall), and the confidence interval of a percentile comes from
order statistics (distribution-free: the rank of the true quantile among n samples is binomial).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from analyzer.load.generator import IN_FLIGHT, Records

DEFAULT_TOLERANCE = 0.10  # like perf_analyzer's --stability-percentage 10
STABLE_WINDOWS = 3


def percentile(sorted_values: np.ndarray, q: float) -> float:
    """Nearest-rank q-th percentile of already sorted values (NaN when empty)."""
    n = len(sorted_values)
    if n == 0:
        return math.nan
    rank = max(1, math.ceil(q / 100.0 * n))
    return float(sorted_values[rank - 1])


def binom_cdf_table(n: int, p: float) -> np.ndarray:
    """[P(X <= k) for k in 0..n] for X ~ Binomial(n, p), exact, computed in log space."""
    ks = np.arange(n + 1)
    if p <= 0:
        return np.ones(n + 1)
    if p >= 1:
        return (ks >= n).astype(float)
    log_fact = np.concatenate(([0.0], np.cumsum(np.log(np.arange(1, n + 1, dtype=float)))))
    log_pmf = log_fact[n] - log_fact - log_fact[::-1] + ks * math.log(p) + (n - ks) * math.log1p(-p)
    return np.minimum(np.cumsum(np.exp(log_pmf)), 1.0)


def quantile_ci_ranks(n: int, q: float, confidence: float = 0.95) -> tuple[int | None, int | None]:
    """1-based ranks (l, u) with P(X(l) <= true q-quantile <= X(u)) >= confidence.

    A bound is None when n is too small to give it (the sample has no rank far enough out).
    """
    if n <= 0:
        return None, None
    p = q / 100.0
    alpha = (1.0 - confidence) / 2.0
    cdf = binom_cdf_table(n, p)  # cdf[j] = P(B <= j)
    # Lower: largest l with P(B <= l-1) <= alpha  => X(l) is below the quantile w.p. >= 1-alpha.
    below = np.nonzero(cdf <= alpha)[0]
    lower = int(below[-1]) + 1 if len(below) else None
    # Upper: smallest u with P(B <= u-1) >= 1-alpha.
    above = np.nonzero(cdf >= 1.0 - alpha)[0]
    upper = int(above[0]) + 1 if len(above) else None
    if upper is not None and upper > n:
        upper = None
    if lower is not None and lower < 1:
        lower = None
    return lower, upper


def quantile_ci(sorted_values: np.ndarray, q: float, confidence: float = 0.95) -> tuple[float, float]:
    """Confidence interval of the q-th percentile; an unknown bound is NaN."""
    lower, upper = quantile_ci_ranks(len(sorted_values), q, confidence)
    lo = float(sorted_values[lower - 1]) if lower else math.nan
    hi = float(sorted_values[upper - 1]) if upper else math.nan
    return lo, hi


def allowed_over(n: int, q: float, confidence: float) -> int:
    """The most requests of n that may exceed a budget while still proving, with `confidence`,
    that the q-th percentile is under it: the largest k with P(Binomial(n, 1 - q/100) <= k) <=
    1 - confidence (-1 when n is too small for the claim even with none over)."""
    if n <= 0:
        return -1
    passing = np.nonzero(binom_cdf_table(n, 1.0 - q / 100.0) <= 1.0 - confidence)[0]
    return int(passing[-1]) if len(passing) else -1


def claim_bound(sorted_values: np.ndarray, q: float, confidence: float) -> float:
    """The lowest budget this sample proves the q-th percentile to be under, with `confidence`.

    The budget claim "true q-th percentile < B" holds when so few of the n requests exceeded B
    that P(Binomial(n, 1 - q/100) <= over) <= 1 - confidence. With k the largest `over` that
    passes, the claim holds for exactly those budgets B >= the (k+1)-th largest latency: a one-
    sided, distribution-free upper confidence bound. Storing it lets any budget be judged
    afterwards by the same rule the sweep used (inf: too few requests for any claim).
    """
    n = len(sorted_values)
    k = allowed_over(n, q, confidence)
    return math.inf if k < 0 else float(sorted_values[n - 1 - k])


def over_bound(sorted_values: np.ndarray, q: float, confidence: float) -> float:
    """The highest budget this sample proves the q-th percentile to be *over*, with `confidence`:
    the mirror of `claim_bound`, a one-sided lower confidence bound of the percentile.

    The claim "true q-th percentile > B" holds when so many of the n requests exceeded B that
    P(Binomial(n, 1 - q/100) >= over) <= 1 - confidence. With k the fewest `over` that passes,
    the claim holds for every budget B below the k-th largest latency (-inf: the sample is too
    small for any such claim; a budget below it is then never proven broken).
    """
    n = len(sorted_values)
    if n == 0:
        return -math.inf
    cdf = binom_cdf_table(n, 1.0 - q / 100.0)
    # P(X >= k) = 1 - P(X <= k - 1); the smallest k >= 1 for which it is <= alpha.
    survival = 1.0 - np.concatenate(([0.0], cdf[:-1]))
    passing = np.nonzero(survival[1:] <= 1.0 - confidence)[0]
    if len(passing) == 0:
        return -math.inf
    k = int(passing[0]) + 1
    return float(sorted_values[n - k])


@dataclass(frozen=True)
class WindowStat:
    """Throughput and tail latency of one measurement window (p99 with its 95 % interval)."""

    start: float
    end: float
    requests: int
    throughput_rps: float
    p99_ms: float
    p99_low_ms: float = math.nan
    p99_high_ms: float = math.nan
    finished: int = 0  # requests that ended in the window, failed ones included


def window_stat(records: Records, start: float, end: float, q: float = 99) -> WindowStat:
    """Stats of the successful requests that finished in [start, end)."""
    ended = (records.done >= start) & (records.done < end)
    mask = records.ok & ended
    lat = np.sort(records.latency_s[mask]) * 1e3
    span = max(end - start, 1e-9)
    lo, hi = quantile_ci(lat, q)
    return WindowStat(
        start, end, int(mask.sum()), float(mask.sum() / span), percentile(lat, q), lo, hi, int(ended.sum())
    )


def _within(values: Sequence[float], tolerance: float) -> bool:
    mean = float(np.mean(values))
    if not math.isfinite(mean) or mean <= 0:
        return False
    return max(abs(v - mean) for v in values) <= tolerance * mean


def _intervals_overlap(windows: Sequence[WindowStat]) -> bool:
    # An unknown bound (too few samples for it) cannot rule agreement out on that side.
    lows = [w.p99_low_ms if math.isfinite(w.p99_low_ms) else -math.inf for w in windows]
    highs = [w.p99_high_ms if math.isfinite(w.p99_high_ms) else math.inf for w in windows]
    return max(lows) <= min(highs)


def is_stable(
    windows: Sequence[WindowStat], tolerance: float = DEFAULT_TOLERANCE, count: int = STABLE_WINDOWS
) -> bool:
    """True when the last `count` windows agree.

    Throughput must be within `tolerance` of the mean (perf_analyzer's rule), or within the
    counting noise of windows that short (3 / sqrt(requests in a window)). The p99 must be too,
    or else the windows' p99 confidence intervals must share a point: a difference that sampling
    noise explains is not instability (with a few hundred requests per window, one p99 is a
    handful of requests and jumps by more than 10 % on its own).
    """
    if len(windows) < count:
        return False
    last = windows[-count:]
    if any(w.requests == 0 for w in last):
        return False
    # A window of n requests counts them with a sampling noise of about 1/sqrt(n) (Poisson):
    # three standard errors of that is noise too, however tight the tolerance (short windows).
    counting = 3.0 / math.sqrt(min(w.requests for w in last))
    if not _within([w.throughput_rps for w in last], max(tolerance, counting)):
        return False
    return _within([w.p99_ms for w in last], tolerance) or _intervals_overlap(last)


def span_windows(windows: Sequence[WindowStat], min_requests: int, count: int = STABLE_WINDOWS) -> int:
    """How many trailing windows a summary should use: at least `count`, more until they hold
    `min_requests` requests (all windows when even that is not enough)."""
    total = 0
    for i, w in enumerate(reversed(windows), start=1):
        total += w.requests
        if i >= count and total >= min_requests:
            return i
    return len(windows)


@dataclass
class Measurement:
    """Everything measured at one load level (flat, so it maps onto a CSV row)."""

    load_mode: str
    load_level: float
    throughput_rps: float
    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    p99_ci_low_ms: float
    p99_ci_high_ms: float
    requests: int
    errors: int
    error_kinds: str
    windows: int
    stable: bool
    duration_s: float
    offered_rps: float = math.nan
    send_lag_p99_ms: float = math.nan
    send_lag_p50_ms: float = math.nan
    over_budget: int = -1  # requests slower than the budget (-1: no budget given)
    budget_bound_ms: float = math.nan  # lowest budget the claim holds for (see claim_bound)
    over_bound_ms: float = math.nan  # budgets below this are proven broken (see over_bound)
    stalled: bool = False  # ended early: windows in a row in which no request ended at all
    avg_batch_size: float = math.nan
    server_requests: int = 0
    server_queue_ms: float = math.nan
    server_compute_input_ms: float = math.nan
    server_compute_infer_ms: float = math.nan
    server_compute_output_ms: float = math.nan
    server_compute_ms: float = math.nan
    server_cpu_pct: float = math.nan
    server_rss_mb: float = math.nan
    gpu_util_pct: float = math.nan
    gpu_mem_mb: float = math.nan
    client_workers: int = 1  # load-generator processes
    client_cpu_pct: float = math.nan  # the generator's CPU, % of one core (all workers)
    client_loop_pct: float = math.nan  # the busiest worker's event loop, % of one core
    client_bound: bool = False  # the generator could not hold the load (analyzer.load.selfcheck)
    client_bound_reason: str = ""
    worst_minute_ms: float = math.nan  # scheduled runs: the budget percentile over the worst minute
    bottleneck_step: str = ""  # pipelines: the step whose instances were busiest (analyzer.config.pipeline)
    extra: dict[str, float] = field(default_factory=dict)  # pipelines: per-step 'step.<model>.<field>'

    def row(self) -> dict[str, object]:
        """The measurement as a flat dict (CSV/JSON row)."""
        data = {k: v for k, v in self.__dict__.items() if k != "extra"}
        data.update(self.extra)
        return data


def level_text(mode: Any, level: Any) -> str:
    """A load level as people read it: 'concurrency 8', 'rate 200' or 'schedule x1.5' (a
    schedule's levels are scale factors of its rates)."""
    return f"schedule x{float(level):g}" if mode == "schedule" else f"{mode} {float(level):g}"


def error_breakdown(records: Records) -> dict[str, int]:
    """Count of failed requests per error kind."""
    counts = np.bincount(records.error, minlength=len(records.kinds))
    return {records.kinds[i]: int(c) for i, c in enumerate(counts) if i != 0 and c > 0}


def format_error_kinds(kinds: dict[str, int]) -> str:
    """'timeout=3;unavailable=1' (empty when there were no errors)."""
    return ";".join(f"{k}={v}" for k, v in sorted(kinds.items()))


def summarize(
    records: Records,
    span_start: float,
    span_end: float,
    *,
    load_mode: str,
    load_level: float,
    windows: int,
    stable: bool,
    confidence: float = 0.95,
    budget_ms: float | None = None,
    claim_percentile: float = 99.0,
    claim_confidence: float = 0.99,
) -> Measurement:
    """Measure a span: latencies of requests *scheduled* in it (however late they finished),
    throughput from the successful completions inside it, every error counted by kind."""
    in_span = (records.scheduled >= span_start) & (records.scheduled < span_end)
    mine = records.select(in_span)
    ok = mine.ok
    lat = np.sort(mine.latency_s[ok]) * 1e3
    duration = max(span_end - span_start, 1e-9)
    completed = records.ok & (records.done >= span_start) & (records.done < span_end)
    kinds = error_breakdown(mine)
    # Requests still in flight at a mid-level verdict are slower than any budget but have not
    # failed: they count with the unfinished ones against the claim, never as errors.
    in_flight = kinds.pop(IN_FLIGHT, 0)
    lo, hi = quantile_ci(lat, 99, confidence)
    # Send lag of every request that went out, whatever its outcome: it is the client's delay.
    lag = mine.sent - mine.scheduled
    lag = np.sort(lag[np.isfinite(lag)]) * 1e3
    # Requests over the budget: slow successes plus every request that never finished.
    unfinished = kinds.get("unfinished", 0) + in_flight
    over = -1 if budget_ms is None else int((lat > budget_ms).sum() + unfinished)
    # An unfinished request is slower than any budget: it counts at the top of the sample.
    judged = np.concatenate([lat, np.full(unfinished, math.inf)])
    bound = claim_bound(judged, claim_percentile, claim_confidence)
    low = over_bound(judged, claim_percentile, claim_confidence)
    return Measurement(
        load_mode=load_mode,
        load_level=load_level,
        throughput_rps=float(completed.sum() / duration),
        p50_ms=percentile(lat, 50),
        p90_ms=percentile(lat, 90),
        p95_ms=percentile(lat, 95),
        p99_ms=percentile(lat, 99),
        max_ms=float(lat[-1]) if len(lat) else math.nan,
        mean_ms=float(lat.mean()) if len(lat) else math.nan,
        p99_ci_low_ms=lo,
        p99_ci_high_ms=hi,
        requests=len(mine),
        errors=int(sum(kinds.values())),
        error_kinds=format_error_kinds(kinds),
        windows=windows,
        stable=stable,
        duration_s=duration,
        offered_rps=float(len(mine) / duration) if load_mode == "rate" else math.nan,
        send_lag_p99_ms=percentile(lag, 99),
        send_lag_p50_ms=percentile(lag, 50),
        over_budget=over,
        budget_bound_ms=bound,
        over_bound_ms=low,
    )
