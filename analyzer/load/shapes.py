"""Load shapes as pure data: what load to offer, and when each open-loop request is due.

A closed-loop shape is just a concurrency; an open-loop shape is a schedule of send times
(seconds from the start). Nothing here does I/O, so schedules are tested as plain arrays.
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from analyzer.limits import MAX_SCHEDULE_GRID, MAX_SCHEDULE_REQUESTS, MAX_SCHEDULE_S

LOAD_MODES = ("concurrency", "rate")
ARRIVALS = ("poisson", "constant")
# Load before a level's first window counts, for the sweep and profile alike: long enough for
# the connections to open and the batcher to fill, short enough not to dominate a level.
DEFAULT_WARMUP_S = 0.3


@dataclass(frozen=True)
class LoadSpec:
    """One load level: `concurrency` in-flight requests, or `rate` requests/s (open loop)."""

    mode: str  # "concurrency" | "rate"
    level: float  # with a schedule: the scale factor of its rates (1 = as defined)
    arrival: str = "poisson"  # open loop only: "poisson" | "constant"
    seed: int = 0
    schedule: Schedule | None = None  # open loop only: a rate that changes over time
    # Open loop only: at most this many requests in flight; a request due while the cap is full
    # waits for a free slot and its latency counts from its scheduled time (None: no cap).
    max_inflight: int | None = None

    def __post_init__(self) -> None:
        if self.mode not in LOAD_MODES:
            raise ValueError(f"load mode must be one of {LOAD_MODES}, not {self.mode!r}")
        if self.arrival not in ARRIVALS:
            raise ValueError(f"arrival must be one of {ARRIVALS}, not {self.arrival!r}")
        if not self.level > 0:
            raise ValueError(f"load level must be > 0, not {self.level}")
        if self.mode == "concurrency" and int(self.level) != self.level:
            raise ValueError(f"concurrency must be a whole number, not {self.level}")
        if self.schedule is not None and self.mode != "rate":
            raise ValueError("a schedule is an open loop: its mode is 'rate'")
        if self.max_inflight is not None and (self.mode != "rate" or self.max_inflight < 1):
            raise ValueError("a cap on requests in flight needs an open loop (rate) and a cap >= 1")

    @property
    def duration_s(self) -> float | None:
        """A schedule's length at this scale (None: a steady level runs until stopped)."""
        if self.schedule is None:
            return None
        return self.schedule.duration_s / (self.level if isinstance(self.schedule, Trace) else 1.0)

    @property
    def closed_loop(self) -> bool:
        """True for a fixed number of in-flight requests."""
        return self.mode == "concurrency"

    def describe(self) -> str:
        """A short human label, e.g. 'concurrency 8' or 'rate 200/s (poisson)'."""
        if self.closed_loop:
            return f"concurrency {int(self.level)}"
        if self.schedule is not None:
            text = (
                self.schedule.describe()
                + (f" x {self.level:g}" if self.level != 1 else "")
                + f" ({self.arrival})"
            )
        else:
            text = f"rate {self.level:g}/s ({self.arrival})"
        return text + (f", at most {self.max_inflight} in flight" if self.max_inflight else "")


def arrival_offsets(rate: float, duration_s: float, arrival: str = "poisson", seed: int = 0) -> np.ndarray:
    """Send times in [0, duration_s) for an open loop at `rate` requests per second.

    Poisson arrivals have exponential gaps (seeded, so a run is reproducible); constant arrivals
    are evenly spaced.
    """
    if rate <= 0 or duration_s <= 0:
        return np.empty(0)
    if arrival == "constant":
        return np.arange(0.0, duration_s, 1.0 / rate)
    if arrival != "poisson":
        raise ValueError(f"unknown arrival process {arrival!r}")
    rng = np.random.default_rng(seed)
    expected = rate * duration_s
    # Draw enough gaps that running out before duration_s is vanishingly unlikely, then trim.
    count = int(expected + 10 * np.sqrt(expected) + 20)
    times = np.cumsum(rng.exponential(1.0 / rate, size=count))
    while times[-1] < duration_s:
        more = np.cumsum(rng.exponential(1.0 / rate, size=count)) + times[-1]
        times = np.concatenate([times, more])
    return times[times < duration_s]


# -- load schedules: an open loop whose rate changes over time ----------------------------------
#
# A schedule is one small class with a length and a rate at each moment, like Locust's
# LoadTestShape.tick(). Send times come from the rate by time rescaling: unit-rate arrivals
# (Poisson or evenly spaced) on the cumulative rate's axis, mapped back to time, so the merged
# arrivals are a Poisson process with exactly that rate at every moment. A trace replays given
# send times instead.

GRID_S = 0.001  # the rate is integrated on this grid: 1 ms is finer than any rate change
MAX_TRACE_BYTES = 512 * 2**20  # a trace file's length: MAX_SCHEDULE_REQUESTS lines of ~25 characters


def grid_step(duration_s: float) -> float:
    """The integration step for a schedule this long: GRID_S, coarser for long schedules so the
    grid never holds more than MAX_SCHEDULE_GRID points (a day: 86 ms)."""
    return max(GRID_S, duration_s / MAX_SCHEDULE_GRID)


def rate_grid(schedule: Schedule, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """The grid a schedule's rate is integrated on (at most MAX_SCHEDULE_GRID + 2 points) and
    the cumulative expected arrivals at each point, rates multiplied by `scale` (trapezoids)."""
    duration = schedule.duration_s
    step = grid_step(duration)
    grid = np.arange(0.0, duration + step, step)
    rates = np.maximum(schedule.rate(grid) * scale, 0.0)
    cumulative = np.concatenate([[0.0], np.cumsum((rates[1:] + rates[:-1]) * 0.5 * step)])
    return grid, cumulative


def expected_requests(schedule: Schedule, scale: float = 1.0) -> float:
    """About how many requests a schedule sends at `scale` (a trace: exactly), computed on the
    bounded grid, before any send time is made."""
    if isinstance(schedule, Trace):
        return float(len(schedule.times))
    if schedule.duration_s <= 0:
        return 0.0
    return float(rate_grid(schedule, scale)[1][-1])


def level_horizon_s(warmup_s: float, longest_window_s: float, max_windows: int) -> float:
    """How long a steady load level can run: the warm-up and every window it may measure, plus
    one (an open loop's send times are made for this long, up front)."""
    return warmup_s + longest_window_s * (max_windows + 1)


def open_loop_problem(requests: float, what: str, fix: str) -> str:
    """'' when an open loop of `requests` send times is within MAX_SCHEDULE_REQUESTS, else the
    problem: `what` it is, its size, the limit and `fix` (how to shrink it)."""
    if not math.isfinite(requests) or requests > MAX_SCHEDULE_REQUESTS:
        shown = f"{requests:.0f}" if math.isfinite(requests) else "unboundedly many"
        return (
            f"{what} would send about {shown} requests; the limit is {MAX_SCHEDULE_REQUESTS} per level "
            f"(each is a send time and a record in memory): {fix}"
        )
    return ""


class Schedule:
    """A time-varying open-loop rate over [0, duration_s)."""

    duration_s: float = 0.0

    def rate(self, t: np.ndarray) -> np.ndarray:
        """Requests per second at times `t` (seconds from the start)."""
        raise NotImplementedError

    def describe(self) -> str:
        """A short human label."""
        return type(self).__name__.lower()


@dataclass(frozen=True)
class Step(Schedule):
    """Rates held for `step_s` each, one after another."""

    rates: tuple[float, ...]
    step_s: float

    @property
    def duration_s(self) -> float:  # type: ignore[override]  # Schedule declares a plain attribute
        return len(self.rates) * self.step_s

    def rate(self, t: np.ndarray) -> np.ndarray:
        index = np.clip((np.asarray(t) // self.step_s).astype(int), 0, len(self.rates) - 1)
        return np.asarray(self.rates, dtype=float)[index]

    def describe(self) -> str:
        return f"step {'/'.join(f'{r:g}' for r in self.rates)} req/s, {self.step_s:g} s each"


@dataclass(frozen=True)
class Ramp(Schedule):
    """A rate rising (or falling) linearly from `start` to `end` over `duration_s`."""

    start: float
    end: float
    duration_s: float

    def rate(self, t: np.ndarray) -> np.ndarray:
        return self.start + (self.end - self.start) * np.clip(np.asarray(t) / self.duration_s, 0.0, 1.0)

    def describe(self) -> str:
        return f"ramp {self.start:g} -> {self.end:g} req/s over {self.duration_s:g} s"


@dataclass(frozen=True)
class Burst(Schedule):
    """A base rate with a spike to `peak` from `at_s` for `length_s`."""

    base: float
    peak: float
    at_s: float
    length_s: float
    duration_s: float

    def rate(self, t: np.ndarray) -> np.ndarray:
        t = np.asarray(t)
        return np.where((t >= self.at_s) & (t < self.at_s + self.length_s), self.peak, self.base).astype(
            float
        )

    def describe(self) -> str:
        return f"burst {self.base:g} -> {self.peak:g} req/s at {self.at_s:g} s for {self.length_s:g} s"


@dataclass(frozen=True)
class Daily(Schedule):
    """A day's curve, compressed: from `low` (at the start, "night") up to `high` (half a
    period later) and back, as a cosine with period `period_s`."""

    low: float
    high: float
    period_s: float
    duration_s: float

    def rate(self, t: np.ndarray) -> np.ndarray:
        phase = 2.0 * np.pi * np.asarray(t) / self.period_s
        return self.low + (self.high - self.low) * (1.0 - np.cos(phase)) / 2.0

    def describe(self) -> str:
        return f"daily {self.low:g}..{self.high:g} req/s, period {self.period_s:g} s"


@dataclass(frozen=True)
class Trace(Schedule):
    """Recorded send times (seconds from the start), replayed as they are."""

    times: tuple[float, ...]

    @property
    def duration_s(self) -> float:  # type: ignore[override]  # Schedule declares a plain attribute
        return (max(self.times) + 1e-9) if self.times else 0.0

    def rate(self, t: np.ndarray) -> np.ndarray:
        # The trace's own rate, per second (for plots and scaling; replay uses the times).
        counts = np.bincount(np.asarray(self.times, dtype=float).astype(int))
        index = np.asarray(t).astype(int)
        return np.where(index < len(counts), counts[np.clip(index, 0, len(counts) - 1)], 0).astype(float)

    @staticmethod
    def from_gaps(gaps: list[float] | np.ndarray) -> Trace:
        """A trace from inter-arrival times."""
        return Trace(tuple(np.cumsum(np.asarray(gaps, dtype=float)).tolist()))

    def describe(self) -> str:
        return f"trace of {len(self.times)} requests over {self.duration_s:.1f} s"


def schedule_offsets(
    schedule: Schedule, arrival: str = "poisson", seed: int = 0, scale: float = 1.0
) -> np.ndarray:
    """Send times in [0, duration) of `schedule` with every rate multiplied by `scale` (a trace
    is sped up by `scale`: its times divided by it)."""
    if scale <= 0:
        raise ValueError(f"scale must be > 0, not {scale}")
    if isinstance(schedule, Trace):
        return np.sort(np.asarray(schedule.times, dtype=float)) / scale
    duration = schedule.duration_s
    if duration <= 0:
        return np.empty(0)
    grid, cumulative = rate_grid(schedule, scale)  # expected arrivals so far at each grid point
    total = cumulative[-1]
    if total <= 0:
        return np.empty(0)
    if arrival == "constant":
        events = np.arange(0.5, total, 1.0)  # one per unit of expected arrivals, mid-unit
    elif arrival == "poisson":
        events = arrival_offsets(1.0, total, "poisson", seed)
    else:
        raise ValueError(f"unknown arrival process {arrival!r}")
    times = np.interp(events, cumulative, grid)
    return times[times < duration]


SCHEDULE_FORMS = (
    "step:R1,R2,...:STEP_S",
    "ramp:START:END:SECONDS",
    "burst:BASE:PEAK:AT_S:LENGTH_S:SECONDS",
    "daily:LOW:HIGH:PERIOD_S:SECONDS",
    "trace:FILE (send times, s)",
    "gaps:FILE (inter-arrival times, s)",
)


def parse_schedule(text: str) -> Schedule:
    """A schedule from its command-line form (SCHEDULE_FORMS); ValueError says what is wrong."""
    kind, _, rest = text.partition(":")
    parts = rest.split(":") if rest else []
    try:
        if kind in ("trace", "gaps"):
            if not rest:
                raise ValueError("needs a file")
            values = _read_times(Path(rest))
            if not values or any(v < 0 or not np.isfinite(v) for v in values):
                raise ValueError(f"{rest} must hold one non-negative number per line")
            trace = Trace.from_gaps(values) if kind == "gaps" else Trace(tuple(sorted(values)))
            if _length_problem(trace):
                raise ValueError(_length_problem(trace))
            return trace
        numbers = [] if kind == "step" else [float(p) for p in parts]
        if kind == "step" and len(parts) == 2:
            rates = tuple(float(r) for r in parts[0].split(","))
            schedule: Schedule = Step(rates, float(parts[1]))
            checks = [*rates, float(parts[1])]
        elif kind == "ramp" and len(numbers) == 3:
            schedule, checks = Ramp(*numbers), numbers
        elif kind == "burst" and len(numbers) == 5:
            schedule, checks = Burst(*numbers), numbers
        elif kind == "daily" and len(numbers) == 4:
            schedule, checks = Daily(*numbers), numbers
        else:
            raise ValueError("expected one of " + ", ".join(SCHEDULE_FORMS))
    except OSError as exc:
        raise ValueError(f"cannot read {rest}: {exc.strerror}") from None
    except (TypeError, ValueError) as exc:
        raise ValueError(f"bad schedule {text!r}: {exc}") from None
    if any(not np.isfinite(v) or v < 0 for v in checks) or not schedule.duration_s > 0:
        raise ValueError(f"bad schedule {text!r}: rates and times must be >= 0, and the length > 0")
    if isinstance(schedule, Daily) and not schedule.period_s > 0:
        raise ValueError(f"bad schedule {text!r}: the period must be > 0")
    if _length_problem(schedule):
        raise ValueError(f"bad schedule {text!r}: {_length_problem(schedule)}")
    return schedule


def _length_problem(schedule: Schedule) -> str:
    """Why a schedule is too long ('' when it is not): past MAX_SCHEDULE_S (its length is
    computed from its parameters, never from its grid)."""
    if schedule.duration_s > MAX_SCHEDULE_S:
        return f"it lasts {schedule.duration_s:.0f} s; the limit is {MAX_SCHEDULE_S:.0f} s (a day)"
    return ""


def _read_times(path: Path) -> list[float]:
    """The first number on each line of a trace file (blank lines and # comments skipped),
    read line by line: at most MAX_SCHEDULE_REQUESTS of them from at most MAX_TRACE_BYTES."""
    size = path.stat().st_size
    if size > MAX_TRACE_BYTES:
        raise ValueError(f"{path} is {size / 2**20:.0f} MiB; a trace may be {MAX_TRACE_BYTES // 2**20} MiB")
    values = array("d")
    with open(path, encoding="utf-8") as fh:
        try:
            for number, line in enumerate(fh, 1):
                words = line.split()
                if not words or words[0].startswith("#"):
                    continue
                try:
                    values.append(float(words[0]))
                except ValueError:
                    raise ValueError(f"{path}, line {number}: {words[0][:40]!r} is not a number") from None
                if len(values) > MAX_SCHEDULE_REQUESTS:
                    raise ValueError(
                        f"{path} holds more than {MAX_SCHEDULE_REQUESTS} send times, the limit per level"
                    )
        except UnicodeDecodeError as exc:
            raise ValueError(f"{path} is not UTF-8 text (byte {exc.start} of a line is not)") from None
    return values.tolist()
