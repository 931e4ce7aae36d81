"""The level search for one config: which load levels to measure, and its capacity under the budget
(the highest level whose verdict, analyzer.judge.verdict, meets it).

Pure logic: `LevelSearch` chooses levels (ramp, descend, refine, prune) from the verdicts so far.
The async driver at the bottom, `search_capacity`, only calls a measuring function it is given
(`MeasureFn`): the runner's measures on a server, a unit test's returns made-up measurements.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from analyzer.judge.verdict import Status, Verdict, budget_verdict, is_finite
from analyzer.schema import percentile_field
from analyzer.stats.measurement import Measurement

SATURATION_GAIN = 1.05  # a level that adds < 5 % throughput over the one below adds nothing
CLEAR_BREAK = 1.5  # a level this far over the budget is a real break, not noise worth re-checking


MEETS, FAILS, INCONCLUSIVE = "meets", "fails", "inconclusive"


def outcome_of(verdict: Verdict) -> str:
    """How the level search reads a verdict: it met the budget, broke it, the load generator
    could not offer it (Status.CLIENT_BOUND), or could not tell (unstable windows, too few requests for
    the claim) though its estimate was within it."""
    if verdict.meets:
        return MEETS
    if verdict.status in (Status.OVER_BUDGET, Status.ERRORS):
        return FAILS
    if verdict.status == Status.CLIENT_BOUND:
        return Status.CLIENT_BOUND
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
    until close to saturation, so one level cannot place it.) Once a met and a broken level
    bracket the break, the next level interpolates between them (latency against level,
    1/latency for rates), kept inside the bracket's middle so it always shrinks, until the two
    levels' throughputs are within `resolution` (finer steps cannot add more) or `refine_steps`
    refinements were made. Without a budget or latencies the search falls back to doubling and
    halving, and to bisection.

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
            return float(max(1, round(level)))
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
        return sorted(lv for lv, (_, out) in self.measured.items() if out not in (FAILS, Status.CLIENT_BOUND))

    @property
    def broken(self) -> list[float]:
        """Levels that are a ceiling, ascending: they broke the budget, or the load generator
        could not offer them (nothing above them can be measured either)."""
        return sorted(lv for lv, (_, out) in self.measured.items() if out in (FAILS, Status.CLIENT_BOUND))

    def _lat(self, level: float) -> float:
        value = self.latency.get(level, math.nan)
        return value if is_finite(value) and value > 0 else math.nan

    @property
    def aiming(self) -> bool:
        """True when the budget is known, so levels are predicted rather than doubled."""
        return is_finite(self.budget_ms) and self.budget_ms > 0

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
        if (
            lowest in unbroken
            and lowest > self.min_level
            and not any(o == MEETS for _, o in self.measured.values())
        ):
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
        if self.measured[first_bad][1] == Status.CLIENT_BOUND:
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
        return bool(above) and self.measured[above[0]][1] == Status.CLIENT_BOUND


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
        key = percentile_field(percentile)
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
        latency = getattr(m, percentile_field(percentile))
        search.record(level, m.throughput_rps, outcome_of(verdict), latency)
        results.append((m, verdict))
        if on_level is not None:
            on_level(m, verdict)
    capacity, level = search.capacity()
    return CapacityResult(
        capacity, level, results, search.pruned, interrupted, search.at_cap, search.client_limited
    )
