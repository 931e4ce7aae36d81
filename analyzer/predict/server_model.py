"""A performance model of one tuned model on its server: fit it from measured levels, predict
any config at any load, and each config's capacity under a latency budget, with an interval.

What it assumes, and why:
- **Service time.** One execution of a batch of `b` requests on one of `k` instances takes
  `t(b, k) = (fixed_ms + per_row_ms * b) * slowdown(k)`. A time linear in the batch fits batching
  servers well (Inoue, arXiv 1912.06322). Instances share cores or a GPU, so `slowdown(k)` (1 for
  the fewest instances measured) is fitted per instance count, not assumed: on a device with two
  execution streams it stays near 1 for two instances and grows by half for a third. Between and
  beyond the counts measured it is interpolated linearly (extrapolated with the last slope). The
  fit reads the server's own statistics per level: the achieved batch size and the compute time
  per request (for a batched request, its batch's execution time); where a level lacks the
  compute time, it is what keeps the busy instances busy, `min(k, load) * batch / throughput`.
- **The dynamic batcher.** With `L` requests in flight (closed loop) on `k` instances and
  `L >= k`, every instance stays busy with batches of `b = clip(fill * L / k, 1, max_batch)`:
  requests come back from the client while their instance executes, so a batch holds only part
  of the instance's share, and `fill` is fitted from the achieved batch sizes (about 0.5-0.7 on
  the simulator). Throughput is `k * b / t(b, k)` and latency follows by Little's law. With
  fewer requests than instances each runs alone, after waiting the queue delay for company that
  does not come. Without dynamic batching every request is its own batch.
- **Open loop** (a request rate): a batch holds what arrives at its instance during one
  execution (a fixed point of `b = rate * t(b) / k`); a request waits for the batch in service,
  and queueing adds `t * u / (2 (1 - u))` at the utilisation `u` of what full batches serve.
- **The budget's percentile** is the mean latency times a tail factor fitted from the levels
  (the median of percentile / mean), so one model serves any percentile the sweep measured.

The interval comes from how well the fitted model reproduces the measured levels: the spread of
log(predicted / measured latency) over them, as a relative error `sigma`. Everything is numpy
over arrays of configs, so a 100,000-config space is predicted in well under a second.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]

Z = 2.0  # the interval's half-width in sigmas (about 95 %)
SIGMA_FLOOR = 0.03  # no prediction is trusted closer than 3 %: the machine's own noise
BISECT_STEPS = 40


@dataclass(frozen=True)
class Level:
    """One measured level as the model reads it: the config, the load, and what was measured."""

    instances: int
    max_batch: int
    batching: bool  # dynamic batching on (a queue delay given and max_batch > 1)
    delay_ms: float  # the queue delay (0 without dynamic batching)
    mode: str  # 'concurrency' or 'rate'
    load: float  # requests in flight, or requests/s
    throughput_rps: float
    latency_ms: float  # the budget's percentile
    mean_ms: float
    batch: float  # achieved batch size (the server's inferences / executions; NaN: unknown)
    compute_ms: float  # the server's compute time per request (its batch's execution; NaN: unknown)


@dataclass(frozen=True)
class ServerModel:
    """The fitted parameters (see the module docstring) and how far to trust them."""

    fixed_ms: float
    per_row_ms: float
    slowdown: tuple[tuple[int, float], ...]  # (instances, factor) for the counts measured, ascending
    tail: float  # the budget's percentile / mean latency
    sigma: float  # relative error of a latency prediction (log scale), from the fitted levels
    levels: int  # how many measured levels it was fitted on
    sigma_throughput: float = SIGMA_FLOOR  # relative error of a throughput prediction, likewise
    fill: float = 1.0  # achieved batch / each instance's share of the requests in flight

    def params(self) -> dict[str, float]:
        """The parameters as plain numbers (summary.json)."""
        return {
            "fixed_ms": self.fixed_ms,
            "per_row_ms": self.per_row_ms,
            **{f"slowdown_i{k}": factor for k, factor in self.slowdown},
            "tail": self.tail,
            "sigma": self.sigma,
            "sigma_throughput": self.sigma_throughput,
            "fill": self.fill,
            "levels": float(self.levels),
        }

    def factor(self, instances: npt.ArrayLike) -> Array:
        """slowdown(k): fitted at the counts measured, linear between, the last slope beyond."""
        k = np.asarray(instances, dtype=float)
        ks = np.array([float(n) for n, _ in self.slowdown])
        fs = np.array([f for _, f in self.slowdown])
        if len(ks) == 1:
            return np.full_like(k, fs[0])
        inside = np.interp(k, ks, fs)
        low = fs[0] + (k - ks[0]) * (fs[1] - fs[0]) / (ks[1] - ks[0])
        high = fs[-1] + (k - ks[-1]) * (fs[-1] - fs[-2]) / (ks[-1] - ks[-2])
        out = np.where(k < ks[0], low, np.where(k > ks[-1], high, inside))
        return np.maximum(out, 1e-6)

    def service_ms(self, batch: npt.ArrayLike, instances: npt.ArrayLike) -> Array:
        """One execution's time for batches of `batch` requests with `instances` instances."""
        b = np.asarray(batch, dtype=float)
        return (self.fixed_ms + self.per_row_ms * b) * self.factor(instances)

    def at_load(
        self,
        instances: npt.ArrayLike,
        max_batch: npt.ArrayLike,
        batching: npt.ArrayLike,
        delay_ms: npt.ArrayLike,
        mode: str,
        load: npt.ArrayLike,
    ) -> tuple[Array, Array]:
        """Predicted throughput (req/s) and budget-percentile latency (ms) of configs at a load
        (arrays broadcast together; 'concurrency': requests in flight, 'rate': requests/s)."""
        k = np.asarray(instances, dtype=float)
        cap = np.maximum(np.asarray(max_batch, dtype=float), 1.0)
        on = np.asarray(batching, dtype=bool)
        delay = np.where(on, np.asarray(delay_ms, dtype=float), 0.0)
        top = np.where(on, cap, 1.0)  # the largest batch the batcher forms
        full_ms = self.service_ms(top, k)
        peak = k * top / full_ms  # req/ms with every batch full
        x = np.asarray(load, dtype=float)
        if mode == "rate":
            rate = x / 1000.0
            b = np.ones_like(rate * k)
            for _ in range(30):  # a batch holds what arrives at its instance during one execution
                b = np.clip(rate * self.service_ms(b, k) / k, 1.0, top)
            t = self.service_ms(b, k)
            u = rate / peak  # utilisation of what full batches could serve
            # A request arriving while its instance executes waits for that batch (half of one on
            # average) when batches form; a lone one waits the delay for company (at most the
            # time to the next arrival at its instance).
            forming = np.where(b > 1.0, t / 2.0, np.minimum(delay, k / np.maximum(rate, 1e-12)))
            queue = np.where(u < 1.0, t * u / (2.0 * np.maximum(1.0 - u, 1e-9)), np.inf)
            mean = t + forming + queue
            throughput = np.where(u < 1.0, x, peak * 1000.0)
            return throughput, mean * self.tail
        # Fewer requests than instances: each runs alone, after waiting the delay for company
        # that does not come. More: every instance stays busy with batches of what waits for it
        # (the fitted fill: requests come back from the client while their instance executes,
        # so a batch holds only part of an instance's share).
        busy = x >= k
        b = np.where(busy, np.clip(self.fill * x / k, 1.0, top), 1.0)
        t = self.service_ms(b, k)
        alone = x / (t + np.where(top > 1.0, delay, 0.0))
        throughput = np.where(busy, k * b / t, alone)  # req/ms
        mean = x / throughput  # Little's law
        return throughput * 1000.0, mean * self.tail

    def capacity(
        self,
        instances: npt.ArrayLike,
        max_batch: npt.ArrayLike,
        batching: npt.ArrayLike,
        delay_ms: npt.ArrayLike,
        mode: str,
        budget_ms: float,
        max_load: float,
        min_load: float = 1.0,
    ) -> dict[str, Array]:
        """Each config's predicted capacity under the budget: the highest load (a whole number of
        requests in flight, or a rate) whose budget percentile meets it, and its throughput,
        with an interval from both errors: the capacity under a budget `exp(+-Z sigma)` tighter
        or looser, times `exp(+-Z sigma_throughput)` (a capacity on the saturated plateau moves
        with the throughput, not the latency). A config that misses the budget even at
        `min_load` has capacity 0."""
        shape = _shape(instances, max_batch, batching, delay_ms)
        out: dict[str, Array] = {}
        spread, rate_spread = math.exp(Z * self.sigma), math.exp(Z * self.sigma_throughput)
        for key, budget, rate_error in (
            ("capacity", budget_ms, 1.0),
            ("low", budget_ms / spread, 1.0 / rate_spread),
            ("high", budget_ms * spread, rate_spread),
        ):
            level = self._highest_level(
                instances, max_batch, batching, delay_ms, mode, budget, max_load, min_load
            )
            level = np.broadcast_to(level, shape)
            throughput, _ = self.at_load(
                instances, max_batch, batching, delay_ms, mode, np.maximum(level, min_load)
            )
            throughput = np.where(level > 0, np.broadcast_to(throughput, shape), 0.0)
            out[key + "_rps"] = throughput * rate_error
            if key == "capacity":
                out["level"] = level
        return out

    def _highest_level(
        self,
        instances: npt.ArrayLike,
        max_batch: npt.ArrayLike,
        batching: npt.ArrayLike,
        delay_ms: npt.ArrayLike,
        mode: str,
        budget_ms: float,
        max_load: float,
        min_load: float,
    ) -> Array:
        """The highest load meeting the budget, by bisection (latency only grows with load);
        0 where even `min_load` misses it. Concurrency levels are whole numbers."""
        whole = mode == "concurrency"

        def meets(load: Array) -> Array:
            _, latency = self.at_load(instances, max_batch, batching, delay_ms, mode, load)
            return np.asarray(latency <= budget_ms)

        shape = _shape(instances, max_batch, batching, delay_ms)
        lo = np.full(shape, float(min_load))
        hi = np.full(shape, float(max_load))
        ok_lo = np.broadcast_to(meets(lo), shape)
        ok_hi = np.broadcast_to(meets(hi), shape)
        for _ in range(BISECT_STEPS):
            mid = np.floor((lo + hi) / 2.0) if whole else (lo + hi) / 2.0
            good = np.broadcast_to(meets(mid), shape)
            lo = np.where(good, mid, lo)
            hi = np.where(good, hi, mid)
            if whole and np.all(hi - lo <= 1.0):
                break
        return np.where(ok_hi, float(max_load), np.where(ok_lo, lo, 0.0))


def _shape(*config: npt.ArrayLike) -> tuple[int, ...]:
    """The shape the configs' arrays broadcast to (one prediction per config)."""
    return np.broadcast(*(np.asarray(a) for a in config)).shape


def fit(levels: Sequence[Level]) -> ServerModel | None:
    """The model that best reproduces the measured levels; None when they cannot identify it
    (no level with an achieved batch size, or no latency to read a tail from)."""
    points = [(lv, _compute_ms(lv)) for lv in levels]
    service = [(lv, t) for lv, t in points if math.isfinite(lv.batch) and lv.batch >= 1.0 and t > 0]
    tails = [
        lv.latency_ms / lv.mean_ms
        for lv in levels
        if math.isfinite(lv.latency_ms) and math.isfinite(lv.mean_ms) and lv.mean_ms > 0 and lv.latency_ms > 0
    ]
    if not service or not tails:
        return None
    b = np.array([lv.batch for lv, _ in service])
    k = np.array([lv.instances for lv, _ in service])
    t = np.array([ms for _, ms in service])
    fixed, per_row, slowdown = _fit_service(b, k, t)
    tail = float(np.median(tails))
    # The fill, from levels whose batches were neither single nor capped by max_batch.
    fills = [
        lv.batch * lv.instances / lv.load
        for lv in levels
        if lv.mode == "concurrency"
        and lv.batching
        and math.isfinite(lv.batch)
        and lv.load >= 2 * lv.instances
        and 1.0 < lv.batch < 0.9 * lv.max_batch
    ]
    fill = float(np.clip(np.median(fills), 0.1, 1.0)) if fills else 1.0
    first = ServerModel(fixed, per_row, slowdown, tail, SIGMA_FLOOR, len(levels), SIGMA_FLOOR, fill)
    latency_error, throughput_error = _sigmas(first, levels)
    return ServerModel(fixed, per_row, slowdown, tail, latency_error, len(levels), throughput_error, fill)


def _compute_ms(lv: Level) -> float:
    """A level's execution time: the server's figure, else what keeps its busy instances busy
    (each of min(k, load) instances runs a batch of `batch` every t ms at the throughput)."""
    if math.isfinite(lv.compute_ms) and lv.compute_ms > 0:
        return lv.compute_ms
    if lv.mode != "concurrency" or not (lv.throughput_rps > 0 and math.isfinite(lv.batch)):
        return math.nan
    return min(lv.instances, lv.load) * lv.batch / lv.throughput_rps * 1000.0


def _fit_service(
    b: Array, k: npt.NDArray[np.int64], t: Array
) -> tuple[float, float, tuple[tuple[int, float], ...]]:
    """(fixed_ms, per_row_ms, slowdown per instance count) minimising the squared log error of
    the execution times, by alternating: the linear part by relative least squares given the
    slowdowns, then each count's slowdown as the geometric mean of its points' ratios (the
    fewest instances' fixed at 1)."""
    counts = sorted({int(n) for n in k})
    factors = {n: 1.0 for n in counts}
    distinct_batches = len(np.unique(np.round(b, 3))) > 1
    fixed, per_row = float(np.exp(np.mean(np.log(t)))), 0.0
    for _ in range(50):
        s = np.array([factors[int(n)] for n in k])
        y = t / s
        if distinct_batches:
            # Relative least squares (rows divided by y): a fast small batch counts as a slow big one.
            a = np.stack([np.ones_like(b), b], axis=1) / y[:, None]
            coef, *_ = np.linalg.lstsq(a, np.ones_like(y), rcond=None)
            fixed, per_row = float(max(coef[0], 1e-9)), float(max(coef[1], 0.0))
        else:
            # One batch size: its time cannot be split into a fixed and a per-row part; all of it
            # is taken as fixed (batching is then predicted to help as much as it can).
            fixed, per_row = float(np.exp(np.mean(np.log(y)))), 0.0
        base = fixed + per_row * b
        new = {n: float(np.exp(np.mean(np.log(t[k == n] / base[k == n])))) for n in counts}
        scale = new[counts[0]]
        new = {n: f / scale for n, f in new.items()}
        fixed, per_row = fixed * scale, per_row * scale
        if all(abs(new[n] - factors[n]) < 1e-9 for n in counts):
            factors = new
            break
        factors = new
    return fixed, per_row, tuple((n, factors[n]) for n in counts)


def _sigmas(model: ServerModel, levels: Sequence[Level]) -> tuple[float, float]:
    """The model's relative errors on the measured levels: the RMS of log(predicted / measured)
    latency, and of throughput (each at least SIGMA_FLOOR)."""
    latency_logs: list[float] = []
    throughput_logs: list[float] = []
    for lv in levels:
        throughput, latency = model.at_load(
            lv.instances, lv.max_batch, lv.batching, lv.delay_ms, lv.mode, lv.load
        )
        pairs = (
            (latency_logs, float(latency), lv.latency_ms),
            (throughput_logs, float(throughput), lv.throughput_rps),
        )
        for logs, predicted, measured in pairs:
            if math.isfinite(predicted) and predicted > 0 and math.isfinite(measured) and measured > 0:
                logs.append(math.log(predicted / measured))

    def rms(logs: list[float]) -> float:
        return max(SIGMA_FLOOR, math.sqrt(sum(x * x for x in logs) / len(logs))) if logs else SIGMA_FLOOR

    return rms(latency_logs), rms(throughput_logs)


def levels_from_rows(rows: Iterable[Mapping[str, Any]], latency_field: str) -> list[Level]:
    """The model's levels from measurements.csv rows (search and confirmation phases alike):
    the row's knobs, load, the budget percentile's column, the mean, and the server's figures."""

    def num(row: Mapping[str, Any], key: str) -> float:
        try:
            value = float(row.get(key, math.nan))
        except (TypeError, ValueError):
            return math.nan
        return value

    out = []
    for row in rows:
        delay_us = num(row, "max_queue_delay_us")
        max_batch = num(row, "max_batch_size")
        instances = num(row, "instance_count")
        if not (math.isfinite(max_batch) and math.isfinite(instances)):
            continue
        out.append(
            Level(
                instances=int(instances),
                max_batch=int(max_batch),
                batching=math.isfinite(delay_us) and max_batch > 1,
                delay_ms=delay_us / 1000.0 if math.isfinite(delay_us) else 0.0,
                mode=str(row.get("load_mode", "concurrency")),
                load=num(row, "load_level"),
                throughput_rps=num(row, "throughput_rps"),
                latency_ms=num(row, latency_field),
                # The mean, else the median (a table without means: the tail is then p / p50).
                mean_ms=num(row, "mean_ms") if math.isfinite(num(row, "mean_ms")) else num(row, "p50_ms"),
                batch=num(row, "avg_batch_size"),
                compute_ms=num(row, "server_compute_ms"),
            )
        )
    return out
