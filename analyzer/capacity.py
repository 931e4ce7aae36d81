"""Capacity under the budget: the highest load whose tail latency provably meets it.

Pure logic: the budget verdict for one measurement (with the binomial bound that makes a p99
claim trustworthy) and the level search for one config (ramp, descend, refine, prune). The
async driver at the bottom only calls a measuring function it is given.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Mapping

from analyzer.measure import Measurement, allowed_over, binom_cdf_table
from analyzer.store import csv_true

SATURATION_GAIN = 1.05  # a level that adds < 5 % throughput over the one below adds nothing
CLEAR_BREAK = 1.5  # a level this far over the budget is a real break, not noise worth re-checking


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


def claim_futile(over: int, n: int, windows: int, max_windows: int, q: float = 99.0, confidence: float = 0.99) -> bool:
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


PERCENTILE_FIELDS = {50: "p50_ms", 90: "p90_ms", 95: "p95_ms", 99: "p99_ms"}


CLIENT_BOUND = "client_bound"  # a verdict status, and the level search's outcome for it


@dataclass(frozen=True)
class Verdict:
    """Does a measurement meet the budget? `meets` only when the claim is trustworthy.

    `decided` says whether more requests could still change the answer: a proven claim either
    way, or errors, end a level at once; an unproven one keeps it measuring.
    """

    meets: bool
    status: str  # meets | over_budget | errors | unstable | too_few_requests
    reason: str
    decided: bool = True


def _finite(value: float | None) -> bool:
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
        return Verdict(False, CLIENT_BOUND, f"client bound: {client_bound}", True)
    if errors > 0:
        return Verdict(False, "errors", f"{errors} request errors ({error_kinds})", True)
    if _finite(lower_ms) and budget_ms < lower_ms:
        return Verdict(False, "over_budget",
                       f"{label} {value_ms:.2f} ms > budget {budget_ms:g} ms, proven ({requests} requests: the "
                       f"{label} is over {lower_ms:.2f} ms with {confidence:.0%} confidence)", True)
    if not _finite(value_ms) or value_ms > budget_ms:
        return Verdict(False, "over_budget", f"{label} {value_ms:.2f} ms > budget {budget_ms:g} ms", False)
    if _finite(worst_minute_ms) and worst_minute_ms > budget_ms:
        return Verdict(False, "over_budget", f"{label} {worst_minute_ms:.2f} ms in the worst minute > budget "
                       f"{budget_ms:g} ms (the whole run's {label}: {value_ms:.2f} ms)", True)
    if not stable:
        return Verdict(False, "unstable", f"windows did not agree within tolerance ({label} {value_ms:.2f} ms)", False)
    if not (budget_ms >= upper_ms):  # NaN or inf: no claim holds
        need = f"; needs {required_requests(over, percentile, confidence)}" if over >= 0 else ""
        return Verdict(
            False, "too_few_requests",
            f"{requests} requests{f' ({over} over budget)' if over >= 0 else ''} cannot show {label} < "
            f"{budget_ms:g} ms with {confidence:.0%} confidence{need}", False,
        )
    return Verdict(True, "meets", f"{label} {value_ms:.2f} ms <= {budget_ms:g} ms ({requests} requests"
                   + (f", {over} over)" if over >= 0 else ")"), True)


def budget_verdict(m: Measurement, budget_ms: float, percentile: float = 99.0, confidence: float = 0.99) -> Verdict:
    """Judge one measurement against the budget (see `judge`).

    The claim bounds are the measurement's own (computed at the sweep's percentile and
    confidence). A measurement made without them (a budget-less profile, an older run) is judged
    from its count of requests over the budget instead, which is the same binomial rule.
    """
    value = getattr(m, PERCENTILE_FIELDS.get(int(percentile), "p99_ms"))
    upper = m.budget_bound_ms
    over = max(m.over_budget, 0)
    if not isinstance(upper, float) or math.isnan(upper):
        proven = exceed_probability_bound(over, m.requests, percentile) <= 1.0 - confidence
        upper = budget_ms if proven else math.inf
    return judge(budget_ms=budget_ms, percentile=percentile, value_ms=value, upper_ms=upper,
                 lower_ms=m.over_bound_ms, errors=m.errors, stable=m.stable, requests=m.requests, over=over,
                 confidence=confidence, error_kinds=m.error_kinds, client_bound=m.client_bound_reason,
                 worst_minute_ms=m.worst_minute_ms)


def row_verdict(row: Mapping[str, Any], budget_ms: float, percentile: float = 99.0, confidence: float = 0.99) -> Verdict:
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

    value = num(PERCENTILE_FIELDS.get(int(percentile), "p99_ms"))
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
    return judge(budget_ms=budget_ms, percentile=percentile, value_ms=value, upper_ms=upper,
                 lower_ms=num("over_bound_ms"), errors=1 if math.isnan(errors) else int(errors), stable=stable,
                 requests=requests, confidence=confidence, error_kinds=str(row.get("error_kinds") or ""),
                 client_bound=_client_bound_text(row), worst_minute_ms=num("worst_minute_ms"))


def _client_bound_text(row: Mapping[str, Any]) -> str:
    """A stored row's client-bound reason ('' when the generator kept up, or an older row)."""
    if not csv_true(row.get("client_bound")):
        return ""
    reason = row.get("client_bound_reason")
    return str(reason) if isinstance(reason, str) and reason else "the load generator could not hold the load"


MEETS, FAILS, INCONCLUSIVE = "meets", "fails", "inconclusive"


def outcome_of(verdict: Verdict) -> str:
    """How the level search reads a verdict: it met the budget, broke it, the load generator
    could not offer it (CLIENT_BOUND), or could not tell (unstable windows, too few requests for
    the claim) though its estimate was within it."""
    if verdict.meets:
        return MEETS
    if verdict.status in ("over_budget", "errors"):
        return FAILS
    if verdict.status == CLIENT_BOUND:
        return CLIENT_BOUND
    return INCONCLUSIVE


MIN_GROWTH = 1.25  # an aimed step goes at least this far up: the prediction may sit just under the break
MAX_GROWTH = 8.0  # and at most this far: one far jump into overload costs a long drain


@dataclass
class LevelSearch:
    """Chooses the load levels to measure for one config.

    Aim: with the budget and each level's latency known, the next level is a prediction of where
    the budget breaks, not a doubling. Closed loop: by Little's law (in flight = throughput x
    latency) and a throughput that does not fall as load grows, latency grows at most in
    proportion to the requests in flight, so the budget breaks no lower than level x budget /
    latency; the step goes there (at least x1.25, at most x8). Open loop: for a queue, 1/latency
    falls about linearly in the arrival rate (M/M/1: p99 = ln(100)/(mu - lambda)), so two levels
    give a line whose crossing of 1/budget is the aim. When the first level breaks the budget, the
    same proportion aims below it. (With one open-loop level the rate doubles: latency stays flat
    until close to saturation, so one level cannot place it.) Once a met and a broken level bracket the break, the next level
    interpolates between them (latency against level, 1/latency for rates), kept inside the
    bracket's middle so it always shrinks, until the two levels' throughputs are within
    `resolution` (finer steps cannot add more) or `refine_steps` refinements were made. Without a
    budget or latencies the search falls back to doubling and halving, and to bisection.

    Throughput that stopped growing over two steps ends the ramp (more load only adds latency).
    Refinement is skipped (pruned) when neither bracketing level's throughput reaches
    `best_capacity`: levels in between cannot beat the best config found so far. A level that could
    not be judged (inconclusive) keeps the ramp going but never counts as capacity. A config that
    still meets the budget at `max_level` (a safety cap) has a capacity that is a lower bound
    (`at_cap`).

    A break while throughput was still rising is confirmed once (`confirm_steps`) at the next
    level up before the ramp ends, unless the break was clear (latency over 1.5x the budget): with
    dynamic batching, latency is not monotonic in load (more requests in flight form bigger
    batches, so each is computed more cheaply), and on a shared machine one noisy level can break
    a budget that the levels above it meet. Seen on the demo model: p99 11.1 ms at concurrency 8,
    8.3 ms at 16 and 8.6 ms at 24 in another run.
    """

    mode: str
    min_level: float
    max_level: float
    start: float
    refine_steps: int = 2
    best_capacity: float = 0.0
    budget_ms: float = math.nan  # known: aim at the predicted break; NaN: double and bisect
    resolution: float = 0.0  # stop refining when the bracket's throughputs are this close (0.03 = 3 %)
    measured: dict[float, tuple[float, str]] = field(default_factory=dict)  # level -> (throughput, outcome)
    latency: dict[float, float] = field(default_factory=dict)  # level -> the budget percentile, ms
    pruned: bool = False
    confirm_steps: int = 1
    batching: bool = False  # the config batches dynamically: latency may fall as load grows
    _refines_done: int = 0
    _confirms_done: int = 0

    def _round(self, level: float) -> float:
        if self.mode == "concurrency":
            return float(max(1, int(round(level))))
        return float(f"{level:.3g}")

    def _clamp(self, level: float) -> float:
        return self._round(min(self.max_level, max(self.min_level, level)))

    def record(self, level: float, throughput: float, outcome: str, latency_ms: float = math.nan) -> None:
        """Add a measured level's throughput, outcome (MEETS, FAILS or INCONCLUSIVE) and the
        budget percentile's latency (NaN when unknown)."""
        self.measured[level] = (throughput, outcome)
        self.latency[level] = latency_ms

    @property
    def unbroken(self) -> list[float]:
        """Levels that did not break the budget (met it, or could not be judged), ascending."""
        return sorted(lv for lv, (_, out) in self.measured.items() if out not in (FAILS, CLIENT_BOUND))

    @property
    def broken(self) -> list[float]:
        """Levels that are a ceiling, ascending: they broke the budget, or the load generator
        could not offer them (nothing above them can be measured either)."""
        return sorted(lv for lv, (_, out) in self.measured.items() if out in (FAILS, CLIENT_BOUND))

    def _lat(self, level: float) -> float:
        value = self.latency.get(level, math.nan)
        return value if _finite(value) and value > 0 else math.nan

    @property
    def aiming(self) -> bool:
        """True when the budget is known, so levels are predicted rather than doubled."""
        return _finite(self.budget_ms) and self.budget_ms > 0

    def next_level(self) -> float | None:
        """The next level to measure, or None when the search is over."""
        if not self.measured:
            return self._clamp(self.start)
        unbroken, broken = self.unbroken, self.broken
        if not unbroken:
            lowest = broken[0]
            if lowest <= self.min_level:
                return None  # even the lightest load breaks the budget
            return self._fresh(self._clamp(self._aim_below(lowest)))
        lowest = min(self.measured)
        if lowest in unbroken and lowest > self.min_level and not any(o == MEETS for _, o in self.measured.values()):
            # Nothing met the budget, and the lightest load so far could not be judged (its
            # windows disagreed, or too few requests): a lighter one may be judged.
            return self._fresh(self._clamp(lowest / 2))
        top = unbroken[-1]
        above = [b for b in broken if b > top]
        if not above:
            if top >= self.max_level:
                return None
            if self._saturated(unbroken):
                return None  # throughput stopped growing: more load only adds latency
            return self._fresh(self._clamp(self._aim_above(top, unbroken)))
        first_bad = above[0]
        confirm = self._confirm_level(top, above)
        if confirm is not None:
            self._confirms_done += 1
            return confirm
        # Levels between two measured ones are taken to serve no more than the better of the two
        # (throughput is flat or rising with load until the server saturates): if neither
        # reaches the best capacity so far, refining cannot find a winner.
        top_tp, bad_tp = self.measured[top][0], self.measured[first_bad][0]
        if max(top_tp, bad_tp) < self.best_capacity:
            self.pruned = True
            return None
        if self._refines_done >= self.refine_steps:
            return None
        if self.resolution > 0 and bad_tp <= top_tp * (1.0 + self.resolution):
            return None  # nothing in between can serve noticeably more than the level we have
        mid = self._round(self._between(top, first_bad))
        if mid <= top or mid >= first_bad or mid in self.measured:
            return None
        if self.mode == "rate" and (first_bad - top) / top < 0.05:
            return None  # within 5 %: finer steps are below the measurement noise
        self._refines_done += 1
        return mid

    def _fresh(self, level: float) -> float | None:
        """`level` unless it was measured already (rounding can land on a measured level)."""
        return None if level in self.measured else level

    def _aim_above(self, top: float, unbroken: list[float]) -> float:
        """Where the budget is predicted to break, from the highest unbroken level."""
        latency = self._lat(top)
        if not self.aiming or math.isnan(latency):
            return top * 2
        known = [lv for lv in unbroken if not math.isnan(self._lat(lv))]
        if self.mode == "concurrency":
            target = top * self.budget_ms / latency
            # Little's bound is exact once throughput is flat; below that, latency grows slower
            # than the load, and the line through the last two levels reaches the budget later.
            # Follow that line, but at most to twice the level (batching makes it unreliable).
            if len(known) >= 2:
                a, b = known[-2], known[-1]
                slope = (self._lat(b) - self._lat(a)) / (b - a)
                secant = b + (self.budget_ms - self._lat(b)) / slope if slope > 0 else math.inf
                target = max(target, min(secant, 2 * top))
        else:
            # One level says nothing about where an open-loop queue saturates (latency stays
            # flat until close to it): double. Two levels give the 1/latency line.
            target = top * 2
            if len(known) >= 2:
                a, b = known[-2], known[-1]
                slope = (1.0 / self._lat(b) - 1.0 / self._lat(a)) / (b - a)
                if slope < 0:  # latency grows with rate: follow the line to 1/budget
                    target = b + (1.0 / self.budget_ms - 1.0 / self._lat(b)) / slope
        floor = top * MIN_GROWTH if self.mode == "rate" else max(top + 1, top * MIN_GROWTH)
        return min(max(target, floor), top * MAX_GROWTH)

    def _aim_below(self, lowest: float) -> float:
        """A level under the lowest broken one, predicted from how far over the budget it was."""
        latency = self._lat(lowest)
        if not self.aiming or math.isnan(latency):
            return lowest / 2
        # In proportion, with a 20 % margin: landing just under the break brackets it at once.
        return min(lowest * self.budget_ms / latency * 0.8, lowest * 0.8)

    def _between(self, good: float, bad: float) -> float:
        """A level inside the bracket: where the budget is crossed on the line between the two
        levels' latencies (1/latency for rates), kept to the middle 60 % of the bracket."""
        lg, lb = self._lat(good), self._lat(bad)
        mid = (good + bad) / 2
        if not self.aiming or math.isnan(lg) or math.isnan(lb) or lb <= lg:
            return mid
        if self.mode == "rate":
            frac = (1.0 / lg - 1.0 / self.budget_ms) / (1.0 / lg - 1.0 / lb)
        else:
            frac = (self.budget_ms - lg) / (lb - lg)
        frac = min(0.8, max(0.2, frac))
        return good + frac * (bad - good)

    def _confirm_level(self, top: float, above: list[float]) -> float | None:
        """The level above a lone break to measure before believing it, or None (no confirmation
        left, throughput had stopped rising, the break was clear, or nothing above it to measure)."""
        if self._confirms_done >= self.confirm_steps or len(above) != 1:
            return None
        first_bad = above[0]
        if self.measured[first_bad][1] == CLIENT_BOUND:
            return None  # the generator could not offer that load; more would fare no better
        if not self.batching and self.measured[first_bad][0] < SATURATION_GAIN * self.measured[top][0]:
            # Saturated: more load will not form better batches. (A batching server is checked
            # whatever its throughput did: one noisy level can hide the gain batching brings.)
            return None
        latency = self.latency.get(first_bad, math.nan)
        if self.aiming and not math.isnan(latency) and latency > CLEAR_BREAK * self.budget_ms:
            return None  # far over the budget (or never answered): not a noisy level
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

    @property
    def at_cap(self) -> bool:
        """True when the capacity level is the safety cap `max_level` and met the budget there:
        the config's real capacity is at least what was measured (a lower bound)."""
        _, level = self.capacity()
        return level is not None and level >= self.max_level and not any(b > level for b in self.broken)

    @property
    def client_limited(self) -> bool:
        """True when the first level above the capacity level was client bound: the load
        generator, not the config, set the limit, so the capacity is a lower bound."""
        _, level = self.capacity()
        above = [b for b in self.broken if level is not None and b > level]
        return bool(above) and self.measured[above[0]][1] == CLIENT_BOUND


@dataclass
class CapacityResult:
    """What the level search found for one config."""

    capacity_rps: float
    level: float | None
    measurements: list[tuple[Measurement, Verdict]]
    pruned: bool
    interrupted: bool = False
    at_cap: bool = False  # met the budget at the safety cap: the capacity is a lower bound
    client_limited: bool = False  # the next level up was client bound: a lower bound too

    @property
    def lower_bound(self) -> bool:
        """The config's capacity is at least `capacity_rps` (the cap or the client set the limit)."""
        return self.at_cap or self.client_limited

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
    judge: Callable[[Measurement], Verdict] | None = None,
) -> CapacityResult:
    """Drive `search` with a measuring function until it is done (or a measurement is stopped).
    `judge` replaces the budget verdict (several models, each with its own budget)."""
    results: list[tuple[Measurement, Verdict]] = []
    interrupted = False
    while (level := search.next_level()) is not None:
        m = await measure(level)
        if m is None:
            interrupted = True
            break
        verdict = judge(m) if judge is not None else budget_verdict(m, budget_ms, percentile, confidence)
        latency = getattr(m, PERCENTILE_FIELDS.get(int(percentile), "p99_ms"))
        search.record(level, m.throughput_rps, outcome_of(verdict), latency)
        results.append((m, verdict))
        if on_level is not None:
            on_level(m, verdict)
    capacity, level = search.capacity()
    return CapacityResult(capacity, level, results, search.pruned, interrupted, search.at_cap,
                          search.client_limited)
