"""The server's side of a measurement: snapshots of one model's statistics, the server process,
the GPU and (remote servers) Prometheus metrics, and the figures two snapshots give a
Measurement.

Snapshots are I/O (taken on a thread of their own); the figures come from plain data through
`analyzer.measure.monitor` and `analyzer.config.pipeline`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from analyzer.config.pipeline import bottleneck, step_stat
from analyzer.load.generator import now
from analyzer.measure.monitor import (
    GpuSample,
    GpuSampler,
    ProcessSample,
    ProcessSampler,
    cpu_percent,
    metric_value,
    parse_prometheus,
    stats_delta,
)
from analyzer.server.control import ServerControl
from analyzer.server.endpoint import Endpoint
from analyzer.stats.measurement import Measurement


@dataclass(frozen=True)
class Snapshot:
    """Everything sampled at one window boundary."""

    t: float
    stats: dict[str, Any] | None
    process: ProcessSample | None
    gpu: GpuSample | None
    metrics: dict[str, Any] | None
    steps: dict[str, dict[str, Any]] | None = None  # pipelines: each step model's statistics


class Probe:
    """Takes snapshots of one model's server-side state (statistics, process, GPU, metrics).

    Snapshots run on one dedicated thread with its own admin client: the HTTP client is
    greenlet-based and must stay on the thread that first used it, and the blocking calls must
    not stall the event loop that drives the load.
    """

    def __init__(
        self,
        endpoint: Endpoint,
        protocol: str,
        model: str,
        server_pid: int | None,
        gpu: GpuSampler | None = None,
        steps: Sequence[str] = (),
    ) -> None:
        self.endpoint = endpoint
        self.protocol = protocol
        self.model = model
        self.steps = list(steps)  # a pipeline's other models: their statistics too
        self.instances: dict[str, int] = {}  # each step's instance count now (set when configs load)
        self.process = ProcessSampler(server_pid) if server_pid else None
        self.gpu = gpu if gpu is not None else GpuSampler()
        # Without the process (remote server) the machine-level view comes from Prometheus.
        self.use_metrics = self.process is None and endpoint.metrics_url() is not None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tritune-probe")
        self._control: ServerControl | None = None

    def _take(self) -> Snapshot:
        if self._control is None:
            self._control = ServerControl(self.endpoint, self.protocol)
        t = now()
        try:
            stats = self._control.statistics(self.model)
        except Exception:  # noqa: BLE001 - a missing statistic must not fail the measurement
            stats = None
        steps: dict[str, dict[str, Any]] | None = None
        if self.steps:
            steps = {}
            for name in self.steps:
                try:
                    steps[name] = self._control.statistics(name)
                except Exception:  # noqa: BLE001 - as above
                    steps[name] = {}
        metrics = None
        if self.use_metrics:
            text = self._control.metrics_text()
            metrics = parse_prometheus(text) if text else None
        return Snapshot(
            t,
            stats,
            self.process.sample() if self.process else None,
            self.gpu.sample() if self.gpu else None,
            metrics,
            steps,
        )

    async def snapshot(self) -> Snapshot:
        """A snapshot taken on the probe's thread, off the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._take)

    def close(self) -> None:
        """Release the probe's thread and client."""
        if self._control is not None:
            control, self._control = self._control, None
            self._executor.submit(control.close).result()
        self._executor.shutdown(wait=True)

    def __enter__(self) -> Probe:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def attach_steps(m: Measurement, first: Snapshot, last: Snapshot, instances: dict[str, int]) -> None:
    """Pipelines: each step's figures (step.<model>.*) and the bottleneck step, from two snapshots."""
    if not first.steps or not last.steps:
        return
    stats = [
        step_stat(
            name,
            first.steps.get(name, {}),
            after,
            requests=m.server_requests,
            span_s=last.t - first.t,
            instances=instances.get(name, 1),
        )
        for name, after in last.steps.items()
    ]
    for stat in stats:
        m.extra.update(stat.as_extra())
    m.bottleneck_step = bottleneck(stats)


def attach_server_view(m: Measurement, first: Snapshot, last: Snapshot) -> None:
    """Fill a measurement's server-side and resource fields from two snapshots."""
    if first.stats is not None and last.stats is not None:
        delta = stats_delta(first.stats, last.stats)
        m.avg_batch_size = delta.avg_batch_size
        m.server_requests = delta.requests
        m.server_queue_ms = delta.queue_ms
        m.server_compute_input_ms = delta.compute_input_ms
        m.server_compute_infer_ms = delta.compute_infer_ms
        m.server_compute_output_ms = delta.compute_output_ms
        m.server_compute_ms = delta.compute_ms
    if first.process is not None and last.process is not None:
        m.server_cpu_pct = cpu_percent(first.process, last.process)
        m.server_rss_mb = last.process.rss_bytes / 2**20
    elif last.metrics is not None:
        # nv_cpu_utilization is the whole machine's CPU use (0..1) as Triton sees it.
        m.server_cpu_pct = metric_value(last.metrics, "nv_cpu_utilization") * 100.0
        m.server_rss_mb = metric_value(last.metrics, "nv_cpu_memory_used_bytes") / 2**20
    if first.gpu is not None and last.gpu is not None:
        m.gpu_util_pct = (first.gpu.util_pct + last.gpu.util_pct) / 2.0
        m.gpu_mem_mb = max(first.gpu.mem_used_mb, last.gpu.mem_used_mb)
