"""Capacity under the budget: the highest load whose tail latency provably meets it.

Pure logic: the budget verdict for one measurement (with the binomial bound that makes a p99
claim trustworthy) and the level search for one config (ramp, descend, refine, prune). The
async driver at the bottom only calls a measuring function it is given.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Awaitable, Callable

from analyzer.measure import Measurement, binom_cdf_table

SATURATION_GAIN = 1.05  # a level that adds < 5 % throughput over the one below adds nothing


def exceed_probability_bound(over: int, n: int, q: float) -> float:
    """P(at most `over` of n requests exceed the budget | the true q-th percentile is at the
    budget): the p-value of the claim "the q-th percentile is under the budget"."""
    if n <= 0:
        return 1.0
    p = 1.0 - q / 100.0
    return float(binom_cdf_table(n, p)[min(over, n)])


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


PERCENTILE_FIELDS = {50: "p50_ms", 90: "p90_ms", 95: "p95_ms", 99: "p99_ms"}


@dataclass(frozen=True)
class Verdict:
    """Does a measurement meet the budget? `meets` only when the claim is trustworthy."""

    meets: bool
    status: str  # meets | over_budget | errors | unstable | too_few_requests
    reason: str


def budget_verdict(m: Measurement, budget_ms: float, percentile: float = 99.0, confidence: float = 0.99) -> Verdict:
    """Judge one measurement against the budget.

    Fails on any request error or a percentile over the budget. Meets only when the windows were
    stable and the binomial bound holds: given how many requests exceeded the budget, enough
    requests were measured to claim the true percentile is under it with `confidence`.
    """
    value = getattr(m, PERCENTILE_FIELDS.get(int(percentile), "p99_ms"))
    label = f"p{percentile:g}"
    if m.errors > 0:
        return Verdict(False, "errors", f"{m.errors} request errors ({m.error_kinds})")
    if not math.isfinite(value) or value > budget_ms:
        return Verdict(False, "over_budget", f"{label} {value:.2f} ms > budget {budget_ms:g} ms")
    if not m.stable:
        return Verdict(False, "unstable", f"windows did not agree within tolerance ({label} {value:.2f} ms)")
    over = max(m.over_budget, 0)
    if exceed_probability_bound(over, m.requests, percentile) > 1.0 - confidence:
        need = required_requests(over, percentile, confidence)
        return Verdict(
            False, "too_few_requests",
            f"{m.requests} requests ({over} over budget) cannot show {label} < {budget_ms:g} ms "
            f"with {confidence:.0%} confidence; needs {need}",
        )
    return Verdict(True, "meets", f"{label} {value:.2f} ms <= {budget_ms:g} ms ({m.requests} requests, {over} over)")


MEETS, FAILS, INCONCLUSIVE = "meets", "fails", "inconclusive"


def outcome_of(verdict: Verdict) -> str:
    """How the level search reads a verdict: it met the budget, broke it, or could not tell
    (unstable windows, too few requests for the claim) though its estimate was within it."""
    if verdict.meets:
        return MEETS
    if verdict.status in ("over_budget", "errors"):
        return FAILS
    return INCONCLUSIVE


@dataclass
class LevelSearch:
    """Chooses the load levels to measure for one config.

    Ramp: from `start`, double while the budget is not broken and throughput still grows (it has
    not been flat for two steps in a row). If
    the start breaks it, halve until a level does not. Then bisect `refine_steps` times between
    the highest unbroken and the lowest broken level. Refinement is skipped (pruned) when neither
    of those two levels' throughput reaches `best_capacity`: levels in between cannot beat the
    best config found so far. A level that could not be judged (inconclusive) keeps the ramp
    going but never counts as capacity.

    A break while throughput was still rising is confirmed once (`confirm_steps`) at the next
    level up before the ramp ends: with dynamic batching, latency is not monotonic in load
    (more requests in flight form bigger batches, so each is computed more cheaply), and on a
    shared machine one noisy level can break a budget that the levels above it meet. Seen on
    the demo model: p99 11.1 ms at concurrency 8, 8.3 ms at 16 and 8.6 ms at 24 in another run.
    """

    mode: str
    min_level: float
    max_level: float
    start: float
    refine_steps: int = 2
    best_capacity: float = 0.0
    measured: dict[float, tuple[float, str]] = field(default_factory=dict)  # level -> (throughput, outcome)
    pruned: bool = False
    confirm_steps: int = 1
    _refines_done: int = 0
    _confirms_done: int = 0

    def _round(self, level: float) -> float:
        if self.mode == "concurrency":
            return float(max(1, int(round(level))))
        return float(f"{level:.3g}")

    def _clamp(self, level: float) -> float:
        return self._round(min(self.max_level, max(self.min_level, level)))

    def record(self, level: float, throughput: float, outcome: str) -> None:
        """Add a measured level's throughput and outcome (MEETS, FAILS or INCONCLUSIVE)."""
        self.measured[level] = (throughput, outcome)

    @property
    def unbroken(self) -> list[float]:
        """Levels that did not break the budget (met it, or could not be judged), ascending."""
        return sorted(lv for lv, (_, out) in self.measured.items() if out != FAILS)

    @property
    def broken(self) -> list[float]:
        """Levels that broke the budget, ascending."""
        return sorted(lv for lv, (_, out) in self.measured.items() if out == FAILS)

    def next_level(self) -> float | None:
        """The next level to measure, or None when the search is over."""
        if not self.measured:
            return self._clamp(self.start)
        unbroken, broken = self.unbroken, self.broken
        if not unbroken:
            lowest = broken[0]
            if lowest <= self.min_level:
                return None  # even the lightest load breaks the budget
            return self._clamp(lowest / 2)
        top = unbroken[-1]
        above = [b for b in broken if b > top]
        if not above:
            if top >= self.max_level:
                return None
            if self._saturated(unbroken):
                return None  # throughput stopped growing: more load only adds latency
            return self._clamp(top * 2)
        first_bad = above[0]
        confirm = self._confirm_level(top, above)
        if confirm is not None:
            self._confirms_done += 1
            return confirm
        # Levels between two measured ones are taken to serve no more than the better of the two
        # (throughput is flat or rising with load until the server saturates): if neither
        # reaches the best capacity so far, refining cannot find a winner.
        if max(self.measured[top][0], self.measured[first_bad][0]) < self.best_capacity:
            self.pruned = True
            return None
        if self._refines_done >= self.refine_steps:
            return None
        mid = self._round((top + first_bad) / 2)
        if mid <= top or mid >= first_bad or mid in self.measured:
            return None
        if self.mode == "rate" and (first_bad - top) / top < 0.05:
            return None  # within 5 %: finer steps are below the measurement noise
        self._refines_done += 1
        return mid

    def _confirm_level(self, top: float, above: list[float]) -> float | None:
        """The level above a lone break to measure before believing it, or None (no confirmation
        left, throughput had stopped rising, or nothing above it to measure)."""
        if self._confirms_done >= self.confirm_steps or len(above) != 1:
            return None
        first_bad = above[0]
        if self.measured[first_bad][0] < SATURATION_GAIN * self.measured[top][0]:
            return None  # saturated: more load will not form better batches
        level = self._clamp(first_bad * 2)
        return level if level > first_bad and level not in self.measured else None

    def _saturated(self, unbroken: list[float]) -> bool:
        # Flat over two steps in a row, not one: a batching server often gains little from 1 to
        # 2 in flight (too few requests to batch) and a lot from 4 to 8, and one flat step is
        # within the noise of a shared machine.
        if len(unbroken) < 3:
            return False
        t = [self.measured[level][0] for level in unbroken[-3:]]
        return t[2] < SATURATION_GAIN * t[1] and t[1] < SATURATION_GAIN * t[0]

    def capacity(self) -> tuple[float, float | None]:
        """(throughput, level) of the best level that met the budget; (0, None) if none did."""
        best = max(((tp, lv) for lv, (tp, out) in self.measured.items() if out == MEETS), default=(0.0, None))
        return best[0], best[1]


@dataclass
class CapacityResult:
    """What the level search found for one config."""

    capacity_rps: float
    level: float | None
    measurements: list[tuple[Measurement, Verdict]]
    pruned: bool
    interrupted: bool = False

    def at_capacity(self) -> Measurement | None:
        """The measurement at the capacity level (None when no level met the budget)."""
        for m, _ in self.measurements:
            if m.load_level == self.level:
                return m
        return None

    def closest(self, percentile: float = 99.0) -> Measurement | None:
        """The measurement with the lowest tail latency (to name when nothing meets the budget)."""
        key = PERCENTILE_FIELDS.get(int(percentile), "p99_ms")
        finite = [m for m, _ in self.measurements if math.isfinite(getattr(m, key))]
        return min(finite, key=lambda m: getattr(m, key), default=None)


MeasureFn = Callable[[float], Awaitable[Measurement | None]]


async def search_capacity(
    measure: MeasureFn,
    search: LevelSearch,
    budget_ms: float,
    percentile: float = 99.0,
    confidence: float = 0.99,
    on_level: Callable[[Measurement, Verdict], None] | None = None,
) -> CapacityResult:
    """Drive `search` with a measuring function until it is done (or a measurement is stopped)."""
    results: list[tuple[Measurement, Verdict]] = []
    interrupted = False
    while (level := search.next_level()) is not None:
        m = await measure(level)
        if m is None:
            interrupted = True
            break
        verdict = budget_verdict(m, budget_ms, percentile, confidence)
        search.record(level, m.throughput_rps, outcome_of(verdict))
        results.append((m, verdict))
        if on_level is not None:
            on_level(m, verdict)
    capacity, level = search.capacity()
    return CapacityResult(capacity, level, results, search.pruned, interrupted)
