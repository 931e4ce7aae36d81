"""What the server and the machine did during a measurement.

Pure parts: deltas of Triton's cumulative statistics (queue, compute, achieved batch size) and
parsing of its Prometheus text. Samplers: the server process tree's CPU and memory (psutil, local
servers), and GPU utilisation and memory (pynvml; absent, with the reason, without a GPU).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import psutil

NS_PER_MS = 1e6
_STAGES = ("success", "queue", "compute_input", "compute_infer", "compute_output")


@dataclass(frozen=True)
class ServerStatsDelta:
    """Server-side view of a window: per-request averages over the requests it finished."""

    requests: int
    executions: int
    avg_batch_size: float
    queue_ms: float
    compute_input_ms: float
    compute_infer_ms: float
    compute_output_ms: float
    request_ms: float  # server-side end-to-end ("success") time per request

    @property
    def compute_ms(self) -> float:
        """Input + infer + output time per request."""
        return self.compute_input_ms + self.compute_infer_ms + self.compute_output_ms


def _stage(stats: Mapping[str, Any], stage: str) -> tuple[int, int]:
    entry = stats.get("inference_stats", {}).get(stage, {}) or {}
    return int(entry.get("count", 0) or 0), int(entry.get("ns", 0) or 0)


def stats_delta(before: Mapping[str, Any], after: Mapping[str, Any]) -> ServerStatsDelta:
    """Difference of two statistics snapshots of one model (as ServerControl.statistics gives).

    Average batch size is inference_count / execution_count over the window: how many requests'
    worth of inputs each model execution processed.
    """
    inf = int(after.get("inference_count", 0) or 0) - int(before.get("inference_count", 0) or 0)
    exe = int(after.get("execution_count", 0) or 0) - int(before.get("execution_count", 0) or 0)
    per: dict[str, float] = {}
    success_count = 0
    for stage in _STAGES:
        c1, n1 = _stage(after, stage)
        c0, n0 = _stage(before, stage)
        count, ns = c1 - c0, n1 - n0
        if stage == "success":
            success_count = count
        per[stage] = (ns / count / NS_PER_MS) if count > 0 else math.nan
    return ServerStatsDelta(
        requests=success_count,
        executions=exe,
        avg_batch_size=(inf / exe) if exe > 0 else math.nan,
        queue_ms=per["queue"],
        compute_input_ms=per["compute_input"],
        compute_infer_ms=per["compute_infer"],
        compute_output_ms=per["compute_output"],
        request_ms=per["success"],
    )


def parse_prometheus(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Parse Prometheus text exposition into {metric: [(labels, value), ...]}."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            # The parser renames counter samples to NAME_total; file the value under the name
            # Triton documents (the family's) as well.
            names = {sample.name}
            if sample.name == family.name + "_total":
                names.add(family.name)
            for name in names:
                out.setdefault(name, []).append((dict(sample.labels), float(sample.value)))
    return out


def metric_value(
    metrics: Mapping[str, list[tuple[dict[str, str], float]]], name: str, **labels: str
) -> float:
    """Sum of a metric's samples whose labels match `labels` (NaN when absent)."""
    values = [v for lab, v in metrics.get(name, []) if all(lab.get(k) == w for k, w in labels.items())]
    return float(sum(values)) if values else math.nan


@dataclass(frozen=True)
class ProcessSample:
    """CPU seconds used so far (per process) and resident memory of a process tree, at a moment."""

    t: float
    cpu_by_pid: dict[int, float]
    rss_bytes: int

    @property
    def cpu_s(self) -> float:
        """CPU seconds of the whole tree."""
        return sum(self.cpu_by_pid.values())


class ProcessSampler:
    """Samples a process and all its descendants (the python backend's stubs are children)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def sample(self) -> ProcessSample | None:
        """CPU seconds and RSS of the tree now (None when the process is gone)."""
        try:
            root = psutil.Process(self.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            return None
        cpu: dict[int, float] = {}
        rss = 0
        for proc in procs:
            try:
                times = proc.cpu_times()
                cpu[proc.pid] = times.user + times.system
                rss += proc.memory_info().rss
            except psutil.Error:
                continue  # a child that exited between listing and reading
        return ProcessSample(time.monotonic(), cpu, rss)


def cpu_percent(before: ProcessSample, after: ProcessSample) -> float:
    """Average CPU use between two samples, in % of one core (200 = two busy cores).

    Counted per process: python-backend stubs come and go as models reload, and a tree total
    would drop (to a bogus 0 %) when one exits. A process new since `before` counts from zero.
    """
    wall = after.t - before.t
    if wall <= 0:
        return math.nan
    used = sum(max(0.0, cpu - before.cpu_by_pid.get(pid, 0.0)) for pid, cpu in after.cpu_by_pid.items())
    return used / wall * 100.0


@dataclass(frozen=True)
class GpuSample:
    """Utilisation and memory of the GPUs, at a moment."""

    util_pct: float
    mem_used_mb: float


class GpuSampler:
    """pynvml-based GPU sampler; `available` is False (with `reason`) on machines without one."""

    def __init__(self) -> None:
        self.available = False
        self.reason = ""
        self._handles: list[Any] = []
        try:
            import pynvml

            pynvml.nvmlInit()
            count = pynvml.nvmlDeviceGetCount()
            self._handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
            self._nvml = pynvml
            self.available = count > 0
            if not self.available:
                self.reason = "NVML reports no GPUs"
        except Exception as exc:  # noqa: BLE001 - no driver, no library, no device: all mean "no GPU"
            self.reason = f"no GPU metrics: {type(exc).__name__}: {exc}".strip()

    def sample(self) -> GpuSample | None:
        """Mean utilisation and total memory used over all GPUs (None without a GPU)."""
        if not self.available:
            return None
        try:
            util = [self._nvml.nvmlDeviceGetUtilizationRates(h).gpu for h in self._handles]
            mem = [self._nvml.nvmlDeviceGetMemoryInfo(h).used for h in self._handles]
        except Exception:  # noqa: BLE001 - a GPU that vanished mid-run: stop sampling
            self.available = False
            return None
        return GpuSample(float(sum(util) / len(util)), float(sum(mem)) / 2**20)
