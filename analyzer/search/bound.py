"""When is a search done? An optimistic bound on what unmeasured configs could still reach.

Pure: positions of configs on the knob grid and the capacities measured so far in, a bound per
unmeasured config out. The rule is Lipschitz optimisation's (LIPO, Malherbe and Vayatis 2017,
with AdaLIPO's estimated constant, one per knob): in log capacity, no step of knob k has been
seen to change capacity by more than a factor G_k, so a config d_k steps along each knob from a
measured one reaches at most that one's capacity x the product of G_k**d_k. The tightest such
bound over the measured configs is the bound. A config
whose bound does not beat the best capacity by more than the tie margin cannot plausibly win,
and a search whose unmeasured configs are all like that is done.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

# A knob step is assumed able to change capacity by at least this factor, however flat the
# configs measured so far look: with a few noisy measurements the largest step seen can be tiny.
MIN_STEP_GAIN = 1.25
# A config is worth measuring while its bound reaches within this of the best capacity: the best
# is the highest of many noisy measurements, so it sits above its own true value (the winner's
# curse), and a config that might come within 5 % of that number might be the true best. Seen on
# the simulator: the best measured 1509 req/s in the search and 1393 when re-measured.
BEAT_MARGIN = -0.05

Position = tuple[int, ...]


def distance(a: Position, b: Position) -> int:
    """Steps between two configs on the knob grid (L1 over each knob's value index)."""
    return sum(abs(x - y) for x, y in zip(a, b))


def step_gain(measured: Mapping[Position, float]) -> float:
    """The largest capacity factor per knob step seen between two configs that met the budget
    (at least MIN_STEP_GAIN)."""
    feasible = [(p, c) for p, c in measured.items() if c > 0]
    slope = math.log(MIN_STEP_GAIN)
    for i, (pa, ca) in enumerate(feasible):
        for pb, cb in feasible[i + 1 :]:
            d = distance(pa, pb)
            if d > 0:
                slope = max(slope, abs(math.log(ca) - math.log(cb)) / d)
    return math.exp(slope)


def axis_gains(
    measured: Mapping[Position, float], floors: Sequence[float] | None = None
) -> tuple[float, ...]:
    """Per knob, the largest capacity factor per step seen between two configs that met the budget
    and differ in that knob alone; a knob with no such pair gets the overall `step_gain`. Knobs
    differ in how much a step matters (a batch-size step can double capacity where a queue-delay
    step changes it by a few percent), and one constant for all would let the steepest knob
    loosen the bound along every other. `floors` sets a smallest gain per knob (see
    upper_bounds)."""
    feasible = [(p, c) for p, c in measured.items() if c > 0]
    if not feasible:
        return ()
    axes = len(feasible[0][0])
    overall = math.log(step_gain(measured))
    slopes: list[float | None] = [None] * axes
    for i, (pa, ca) in enumerate(feasible):
        for pb, cb in feasible[i + 1 :]:
            differ = [k for k in range(axes) if pa[k] != pb[k]]
            if len(differ) == 1:
                k = differ[0]
                slope = abs(math.log(ca) - math.log(cb)) / abs(pa[k] - pb[k])
                known = slopes[k]
                slopes[k] = max(known if known is not None else math.log(MIN_STEP_GAIN), slope)
    gains = [math.exp(overall if s is None else s) for s in slopes]
    return tuple(max(g, f) for g, f in zip(gains, floors or [1.0] * axes))


def upper_bounds(
    measured: Mapping[Position, float], unmeasured: Sequence[Position], floors: Sequence[float] | None = None
) -> dict[Position, float]:
    """Optimistic capacity of each unmeasured position: min over measured configs that met the
    budget of capacity x the product over knobs of gain**steps (inf while none has met it:
    nothing bounds anything). `floors` is a smallest gain per step for each knob, for gains known
    to be possible whatever was measured (an instance step from 1 to 2 can double capacity even
    where the steps measured so far, from 2 to 3, added little)."""
    feasible = [(p, c) for p, c in measured.items() if c > 0]
    if not feasible:
        return {u: math.inf for u in unmeasured}
    gains = axis_gains(measured, floors)

    def reach(u: Position, p: Position) -> float:
        return math.prod(g ** abs(a - b) for g, a, b in zip(gains, u, p))

    return {u: min(c * reach(u, p) for p, c in feasible) for u in unmeasured}


def plausible(
    measured: Mapping[Position, float],
    unmeasured: Sequence[Position],
    margin: float = BEAT_MARGIN,
    floors: Sequence[float] | None = None,
) -> dict[Position, float]:
    """The unmeasured positions whose bound exceeds the best capacity x (1 + `margin`), with
    their bounds."""
    best = max((c for c in measured.values() if c > 0), default=0.0)
    bounds = upper_bounds(measured, unmeasured, floors)
    return {u: b for u, b in bounds.items() if b > best * (1.0 + margin)}
