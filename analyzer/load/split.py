"""How one load level is shared among load-generator worker processes (pure).

A concurrency level is split into near-equal parts that add up to it. A rate level becomes one
independent stream per worker: Poisson streams of rate/N with their own seeds (the merge of
independent Poisson processes is Poisson at the summed rate), or, for constant arrivals, every
N-th send time of the full schedule (so the merged schedule is exactly the single-worker one).
"""

from __future__ import annotations

import math

import numpy as np

from analyzer.load.shapes import LoadSpec, Trace, arrival_offsets, grid_step, schedule_offsets

# One worker's comfortable share: the lean clients cost ~60-120 us of CPU per request on this
# project's machines, so 4,000 requests/s keeps a worker's event loop under about half a core.
RATE_PER_WORKER = 4000.0
# Closed loop: throughput is unknown before measuring; past this many in flight per worker a
# fast (GPU) model would push one event loop past what it can send.
CONCURRENCY_PER_WORKER = 32


def split_concurrency(level: int, workers: int) -> list[int]:
    """In-flight requests per worker: near-equal parts adding up to `level` (zeros when there
    are more workers than requests)."""
    base, extra = divmod(int(level), workers)
    return [base + (1 if i < extra else 0) for i in range(workers)]


def worker_seed(seed: int, index: int, workers: int) -> int:
    """The arrival seed of one worker's stream (the load's own seed when there is one worker)."""
    return seed if workers == 1 else seed * 1009 + 7919 * (index + 1)


def share_offsets(load: LoadSpec, duration_s: float, index: int, workers: int) -> np.ndarray:
    """Send times (seconds from the common start) of worker `index`'s share of an open loop."""
    if load.schedule is not None:
        # A schedule: each worker an independent Poisson stream at 1/workers of its rate (the
        # merged stream is Poisson at the full rate); constant spacing and traces deal out the
        # single schedule's send times in turn.
        if workers == 1 or load.arrival == "constant" or isinstance(load.schedule, Trace):
            offsets = schedule_offsets(load.schedule, load.arrival, load.seed, load.level)[index::workers]
        else:
            offsets = schedule_offsets(
                load.schedule, "poisson", worker_seed(load.seed, index, workers), load.level / workers
            )
        return offsets[offsets < duration_s]
    if workers == 1:
        return arrival_offsets(load.level, duration_s, load.arrival, load.seed)
    if load.arrival == "constant":
        return arrival_offsets(load.level, duration_s, "constant")[index::workers]
    return arrival_offsets(
        load.level / workers, duration_s, "poisson", worker_seed(load.seed, index, workers)
    )


def active_workers(load: LoadSpec, workers: int) -> int:
    """Workers that get a share: never more than the requests in flight of a closed loop."""
    if load.closed_loop:
        return max(1, min(workers, int(load.level)))
    return max(1, workers)


def auto_workers(load: LoadSpec, cores: int, local_server: bool = False) -> int:
    """The default number of workers for a level: enough for the load asked for, at most one per
    core (a worker is one event loop, which uses at most one core). A server on this machine
    needs the cores too: then at most half of them. Measured on 2 shared cores (identity model,
    gRPC, concurrency 16): 4,158 req/s with p99 7.9 ms from one worker, 4,173 req/s with p99
    27.2 ms from two, which only fight the server for the same cores."""
    usable = max(1, cores // 2) if local_server else max(1, cores)
    if load.closed_loop:
        wanted = math.ceil(load.level / CONCURRENCY_PER_WORKER)
    elif load.schedule is not None:
        # A schedule: enough for its peak rate.
        duration = max(load.schedule.duration_s, 1e-3)
        step = max(0.01, grid_step(duration))  # bounded: a day-long schedule is 1e6 points, not 8.6e6
        peak = float(np.max(load.schedule.rate(np.arange(0.0, duration, step))))
        wanted = math.ceil(peak * load.level / RATE_PER_WORKER)
    else:
        wanted = math.ceil(load.level / RATE_PER_WORKER)
    return max(1, min(usable, wanted))
