"""Load shapes as pure data: what load to offer, and when each open-loop request is due.

A closed-loop shape is just a concurrency; an open-loop shape is a schedule of send times
(seconds from the start). Nothing here does I/O, so schedules are tested as plain arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LOAD_MODES = ("concurrency", "rate")
ARRIVALS = ("poisson", "constant")


@dataclass(frozen=True)
class LoadSpec:
    """One load level: `concurrency` in-flight requests, or `rate` requests/s (open loop)."""

    mode: str  # "concurrency" | "rate"
    level: float
    arrival: str = "poisson"  # open loop only: "poisson" | "constant"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.mode not in LOAD_MODES:
            raise ValueError(f"load mode must be one of {LOAD_MODES}, not {self.mode!r}")
        if self.arrival not in ARRIVALS:
            raise ValueError(f"arrival must be one of {ARRIVALS}, not {self.arrival!r}")
        if not self.level > 0:
            raise ValueError(f"load level must be > 0, not {self.level}")
        if self.mode == "concurrency" and int(self.level) != self.level:
            raise ValueError(f"concurrency must be a whole number, not {self.level}")

    @property
    def closed_loop(self) -> bool:
        """True for a fixed number of in-flight requests."""
        return self.mode == "concurrency"

    def describe(self) -> str:
        """A short human label, e.g. 'concurrency 8' or 'rate 200/s (poisson)'."""
        if self.closed_loop:
            return f"concurrency {int(self.level)}"
        return f"rate {self.level:g}/s ({self.arrival})"


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


def geometric_levels(start: int, maximum: int) -> list[int]:
    """1, 2, 4, ... up to `maximum` (always including it): the usual concurrency ramp."""
    levels: list[int] = []
    level = max(1, start)
    while level < maximum:
        levels.append(level)
        level *= 2
    levels.append(maximum)
    return levels
