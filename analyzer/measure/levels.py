"""Measure a model at load levels: warm up, then windows until the last three agree (playing a
load schedule once is analyzer.measure.schedule's job).

This is the measuring stage's I/O: it drives the load generator, takes the server's snapshots
(analyzer.measure.probe) at each window boundary, and hands plain data to `analyzer.stats.measurement` for the
numbers. It also holds the settings of a measurement (MeasureSettings, window sizing) and the
StopToken that ends one. Probe is used from here by the runner and the tests as well.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from analyzer.judge.verdict import Verdict, claim_futile, required_requests
from analyzer.load.clients import GrpcInferClient, HttpInferClient, RequestSet
from analyzer.load.generator import IN_FLIGHT, CpuSample, Records, now
from analyzer.load.inputs import TensorSpec, random_tensor
from analyzer.load.selfcheck import ClientLoad, client_bound_reason
from analyzer.load.shapes import DEFAULT_WARMUP_S, LoadSpec, level_horizon_s
from analyzer.load.workers import LoadGenerator, WorkerError
from analyzer.measure.probe import Probe, Snapshot, attach_server_view, attach_steps
from analyzer.stats.measurement import (
    DEFAULT_TOLERANCE,
    STABLE_WINDOWS,
    Measurement,
    WindowStat,
    is_stable,
    span_windows,
    summarize,
    window_stat,
)


@dataclass(frozen=True)
class MeasureSettings:
    """How long and how carefully to measure one load level.

    Windows are sized by requests: a window closes once it has lasted `min_window_s` and holds
    `window_requests` finished requests (enough, over `min_windows` windows, for the percentile
    claim), and never runs past `max_window_s`. A fixed `window_s` overrides that.
    """

    window_s: float | None = None  # fixed window length; None: sized by requests
    warmup_s: float = DEFAULT_WARMUP_S
    min_windows: int = STABLE_WINDOWS
    max_windows: int = 10
    tolerance: float = DEFAULT_TOLERANCE
    request_timeout_s: float = 30.0
    drain_s: float = 10.0
    max_inflight: int = 4096
    confidence: float = 0.95
    min_requests: int = 0  # keep measuring until the summarised windows hold this many requests
    budget_ms: float | None = None  # count requests over it (for the budget verdict)
    claim_percentile: float = 99.0  # the percentile and confidence of the budget claim
    claim_confidence: float = 0.99
    stall_windows: int = 2  # this many windows in a row in which no request ended at all: stalled
    min_window_s: float = 0.25
    max_window_s: float = 2.0
    window_requests: int = 0  # requests a window needs before it may close (sized windows only)

    def __post_init__(self) -> None:
        if self.window_s is not None and self.window_s <= 0:
            raise ValueError("window_s must be > 0")
        if self.min_windows < 1 or self.max_windows < self.min_windows:
            raise ValueError("need 1 <= min_windows <= max_windows")
        if not 0 < self.min_window_s <= self.max_window_s:
            raise ValueError("need 0 < min_window_s <= max_window_s")

    @property
    def longest_window_s(self) -> float:
        """The longest a window can last."""
        return self.window_s if self.window_s is not None else self.max_window_s

    @property
    def horizon_s(self) -> float:
        """The longest a level can run (an open loop's send times are made for this long)."""
        return level_horizon_s(self.warmup_s, self.longest_window_s, self.max_windows)


def window_requests_for(percentile: float, confidence: float, windows: int = STABLE_WINDOWS) -> int:
    """Requests one window needs so that `windows` of them hold enough for the percentile claim
    at `confidence` (p99 at 99 %: 459 requests in all, 153 a window)."""
    return math.ceil(required_requests(0, percentile, confidence) / max(1, windows))


def window_closes(elapsed_s: float, requests: int, settings: MeasureSettings) -> bool:
    """Whether a window that has lasted `elapsed_s` with `requests` finished may close now."""
    if settings.window_s is not None:
        return elapsed_s >= settings.window_s
    if elapsed_s >= settings.max_window_s:
        return True
    return elapsed_s >= settings.min_window_s and requests >= settings.window_requests


class StopToken:
    """Set (by the CLI's signal handler: Ctrl-C, SIGTERM, SIGHUP) to end measuring after the
    current window. While `shielded` (putting a server's configs back) a further signal must not
    cut the work short: the handler reads `shielding` and lets it finish."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.signal: int | None = None  # the signal that asked for the stop (None: none, or not a signal)
        self._shields = 0

    def set(self, signum: int | None = None) -> None:
        """Ask running measurements to stop at the next window boundary."""
        if self.signal is None:
            self.signal = signum
        self._event.set()

    @property
    def requested(self) -> bool:
        """True once a stop was asked for."""
        return self._event.is_set()

    @property
    def exit_code(self) -> int:
        """The shell's code for a run ended by its signal: 128 + its number (130 for Ctrl-C)."""
        return 128 + (self.signal or signal.SIGINT)

    @contextlib.contextmanager
    def shielded(self) -> Iterator[None]:
        """Work that a second signal must not interrupt (see `shielding`)."""
        self._shields += 1
        try:
            yield
        finally:
            self._shields -= 1

    @property
    def shielding(self) -> bool:
        """True inside `shielded()`."""
        return self._shields > 0


WindowCallback = Callable[[LoadSpec, int, WindowStat, bool], None]


async def _sleep_until(deadline: float, stop: StopToken | None) -> None:
    while True:
        left = deadline - now()
        if left <= 0 or (stop is not None and stop.requested):
            return
        await asyncio.sleep(min(left, 0.2))


async def _wait_window(
    run: Any, start: float, finished_at_start: int, settings: MeasureSettings, stop: StopToken | None
) -> None:
    """Sleep until the window that began at `start` may close (or a stop is asked for)."""
    poll = min(0.05, settings.min_window_s / 2)
    while not (stop is not None and stop.requested):
        elapsed = now() - start
        if window_closes(elapsed, run.finished - finished_at_start, settings):
            return
        if settings.window_s is not None:
            await asyncio.sleep(min(settings.window_s - elapsed, 0.2))
        else:
            await asyncio.sleep(poll)


def interim_records(records: Records, pending: npt.NDArray[np.float64], before: float) -> Records:
    """The finished records plus the requests still in flight (`pending`: (scheduled, sent)
    rows) that were scheduled before `before`, as in flight: slower than any budget, but not
    errors (they have not failed). With `before` = now - budget, those requests are known to be
    over the budget. Their send times count towards the generator's send lag."""
    pending = np.asarray(pending, dtype=float).reshape(-1, 2)
    late = pending[pending[:, 0] < before]
    if len(late) == 0:
        return records
    kinds = records.kinds if IN_FLIGHT in records.kinds else (*records.kinds, IN_FLIGHT)
    code = kinds.index(IN_FLIGHT)
    done, error = np.full(len(late), math.nan), np.full(len(late), code, dtype=np.int32)
    return Records(
        np.concatenate([records.scheduled, late[:, 0]]),
        np.concatenate([records.sent, late[:, 1]]),
        np.concatenate([records.done, done]),
        np.concatenate([records.error, error]),
        kinds,
    )


Decide = Callable[[Measurement], Verdict]


def attach_client_view(
    m: Measurement, workers: int, first: CpuSample, last: CpuSample, inflight_limit: int | None = None
) -> None:
    """Fill a measurement's load-generator fields (its CPU, its self-check) from two samples;
    `inflight_limit`: the client's connections, when they capped the run's requests in flight."""
    loops = [b - a for a, b in zip(first.loops_s, last.loops_s)]
    # The span is the samples' own: a decided level's reported span may end before the last
    # sample, and a slow probe snapshot lies between them too, so m.duration_s would overstate
    # the CPU per second (over 100 % of a core was seen).
    client = ClientLoad(
        workers,
        last.total_s - first.total_s,
        max(loops, default=math.nan),
        last.at - first.at,
        m.send_lag_p50_ms,
        inflight_limit,
    )
    m.client_workers = workers
    m.client_cpu_pct = client.cpu_pct
    m.client_loop_pct = client.busiest_loop_pct
    m.client_bound_reason = client_bound_reason(m.load_mode, m.load_level, client)
    m.client_bound = bool(m.client_bound_reason)


def as_generator(source: LoadGenerator | GrpcInferClient | HttpInferClient) -> LoadGenerator:
    """A load generator: `source` itself, or one that sends through this one client in-process."""
    return source if isinstance(source, LoadGenerator) else LoadGenerator.in_process(source)


async def measure_level(
    client: LoadGenerator | GrpcInferClient | HttpInferClient,
    probe: Probe,
    load: LoadSpec,
    settings: MeasureSettings,
    *,
    on_window: WindowCallback | None = None,
    stop: StopToken | None = None,
    decide: Decide | None = None,
) -> Measurement | None:
    """Measure one load level. None when stopped before a single window completed.

    `client` is a LoadGenerator (one process or several workers) or a single client.

    With `decide` (the budget verdict), every window ends with a verdict on all the level's
    requests so far, and the level stops as soon as that verdict is decided (proven over the
    budget, errors, or met with stable windows). Without it, the level runs until its windows
    are stable and hold `min_requests`.

    A load worker process that dies raises WorkerError, naming the level.
    """
    try:
        return await _measure_level(client, probe, load, settings, on_window, stop, decide)
    except WorkerError as exc:
        raise WorkerError(f"{exc.message} while measuring {load.describe()}") from None


async def _measure_level(
    client: LoadGenerator | GrpcInferClient | HttpInferClient,
    probe: Probe,
    load: LoadSpec,
    settings: MeasureSettings,
    on_window: WindowCallback | None,
    stop: StopToken | None,
    decide: Decide | None,
) -> Measurement | None:
    """measure_level's body."""
    generator = as_generator(client)
    run = generator.run(load, max_duration_s=settings.horizon_s, max_inflight=settings.max_inflight)
    windows: list[WindowStat] = []
    snaps: list[Snapshot] = []
    cpus: list[CpuSample] = []  # the generator's CPU at each snapshot
    stable = stalled = False
    judged_until: float | None = None  # end of the span the deciding verdict judged
    run.start()
    try:
        await _sleep_until(run.started_at + settings.warmup_s, stop)
        snaps.append(await probe.snapshot())
        cpus.append(run.cpu())
        start = snaps[-1].t
        while len(windows) < settings.max_windows and not (stop is not None and stop.requested):
            await _wait_window(run, start, run.finished, settings, stop)
            snap = await probe.snapshot()
            if snap.t - start < settings.min_window_s * 0.5:
                break  # stopped early: a short window would distort the numbers
            # In flight first, then finished: a request that ends in between is then counted
            # twice (never lost), and only ever as over the budget (see interim_records).
            pending, records = run.observe()
            windows.append(window_stat(records, start, snap.t))
            snaps.append(snap)
            cpus.append(run.cpu())
            start = snap.t
            stable = len(windows) >= settings.min_windows and is_stable(windows, settings.tolerance)
            if on_window is not None:
                on_window(load, len(windows), windows[-1], stable)
            recent = windows[-settings.stall_windows :]
            if (
                len(recent) == settings.stall_windows
                and all(w.finished == 0 for w in recent)
                and run.inflight
            ):
                stalled = True  # requests out, nothing back, not even errors: the server hangs
                break
            if decide is not None:
                judged_until = _decided(
                    decide,
                    records,
                    pending,
                    windows,
                    load,
                    stable,
                    settings,
                    lambda m: attach_client_view(m, run.workers, cpus[0], cpus[-1], run.inflight_limit),
                )
                if judged_until is not None:
                    break
                continue
            used = span_windows(windows, settings.min_requests)
            if stable and sum(w.requests for w in windows[-used:]) >= settings.min_requests:
                break
    finally:
        records = await run.stop(settings.drain_s)
    if not windows:
        return None
    used = len(windows) if decide is not None else span_windows(windows, settings.min_requests)
    # A decided level reports the span its verdict judged, so the stored verdict is the one the
    # level stopped on (requests in flight then were over the budget, and still are).
    end = judged_until if judged_until is not None else windows[-1].end
    m = _summary(records, windows[-used].start, end, load, len(windows), stable, settings)
    attach_server_view(m, snaps[-used - 1], snaps[-1])
    attach_steps(m, snaps[-used - 1], snaps[-1], probe.instances)
    attach_client_view(m, run.workers, cpus[-used - 1], cpus[-1], run.inflight_limit)
    m.stalled = stalled
    return m


def _summary(
    records: Records,
    start: float,
    end: float,
    load: LoadSpec,
    windows: int,
    stable: bool,
    settings: MeasureSettings,
) -> Measurement:
    return summarize(
        records,
        start,
        end,
        load_mode=load.mode,
        load_level=load.level,
        windows=windows,
        stable=stable,
        confidence=settings.confidence,
        budget_ms=settings.budget_ms,
        claim_percentile=settings.claim_percentile,
        claim_confidence=settings.claim_confidence,
    )


def _decided(
    decide: Decide,
    records: Records,
    pending: npt.NDArray[np.float64],
    windows: list[WindowStat],
    load: LoadSpec,
    stable: bool,
    settings: MeasureSettings,
    attach: Callable[[Measurement], None],
) -> float | None:
    """The sequential verdict after a window: judge every request of the level so far; the end
    of the judged span when the verdict is decided, else None.

    Only requests scheduled at least one budget before the window's end are judged: each has
    either finished, or is still in flight and so known to be over the budget. The verdict at the
    budget is then exact; nothing in flight can flatter it, and nothing young in flight is counted
    against it (at 60 requests in flight, counting those as over would make the claim unprovable).
    A level whose claim to meet the budget has become futile (capacity.claim_futile) stops too,
    unproven. `attach` adds the load generator's self-check: a client-bound level stops at once.
    """
    start = windows[0].start
    cut = windows[-1].end - (settings.budget_ms or 0.0) / 1000.0
    if cut <= start:
        return None
    m = _summary(interim_records(records, pending, cut), start, cut, load, len(windows), stable, settings)
    attach(m)
    if decide(m).decided:
        return cut
    if m.over_budget > 0 and claim_futile(
        m.over_budget,
        m.requests,
        len(windows),
        settings.max_windows,
        settings.claim_percentile,
        settings.claim_confidence,
    ):
        return cut
    return None


def make_tensors(specs: Sequence[TensorSpec], seed: int = 0) -> list[tuple[TensorSpec, npt.NDArray[Any]]]:
    """Random input data for each request tensor (seeded, reproducible)."""
    rng = np.random.default_rng(seed)
    return [(spec, random_tensor(spec, rng)) for spec in specs]


async def measure_levels(
    protocol: str,
    url: str,
    model: str,
    requests: RequestSet,
    probe: Probe,
    loads: Sequence[LoadSpec],
    settings: MeasureSettings,
    *,
    on_window: WindowCallback | None = None,
    on_level: Callable[[Measurement], None] | None = None,
    stop: StopToken | None = None,
    workers: int | None = None,
    local_server: bool = False,
) -> list[Measurement]:
    """Measure each load level in turn (`workers` processes; None: automatic); stops early on
    `stop`. A load worker that dies raises WorkerError; the levels measured before it have been
    passed to `on_level`."""
    client = LoadGenerator(
        protocol,
        url,
        model,
        requests,
        timeout_s=settings.request_timeout_s,
        workers=workers,
        local_server=local_server,
    )
    results: list[Measurement] = []
    try:
        for load in loads:
            if stop is not None and stop.requested:
                break
            m = await measure_level(client, probe, load, settings, on_window=on_window, stop=stop)
            if m is None:
                break
            results.append(m)
            if on_level is not None:
                on_level(m)
    finally:
        await client.close()
    return results
