"""Server statistics deltas, Prometheus parsing, and the process and GPU samplers."""

from __future__ import annotations

import math
import os
import time

import pytest

from analyzer.measure.monitor import (
    GpuSampler,
    ProcessSampler,
    cpu_percent,
    metric_value,
    parse_prometheus,
    stats_delta,
)


def _stats(
    inf: int, exe: int, success: tuple[int, int], queue: tuple[int, int], infer: tuple[int, int]
) -> dict:
    return {
        "inference_count": inf,
        "execution_count": exe,
        "inference_stats": {
            "success": {"count": success[0], "ns": success[1]},
            "queue": {"count": queue[0], "ns": queue[1]},
            "compute_infer": {"count": infer[0], "ns": infer[1]},
            # compute_input / compute_output missing, as gRPC's JSON omits zero fields
        },
    }


def test_stats_delta_per_request_averages_and_batch_size() -> None:
    before = _stats(100, 50, (100, 10_000_000), (100, 1_000_000), (100, 5_000_000))
    after = _stats(500, 150, (500, 90_000_000), (500, 9_000_000), (500, 45_000_000))
    d = stats_delta(before, after)
    assert d.requests == 400
    assert d.executions == 100
    assert d.avg_batch_size == pytest.approx(4.0)
    assert d.queue_ms == pytest.approx(8_000_000 / 400 / 1e6)
    assert d.compute_infer_ms == pytest.approx(0.1)
    assert d.request_ms == pytest.approx(0.2)
    assert math.isnan(d.compute_input_ms)


def test_stats_delta_of_idle_window() -> None:
    s = _stats(10, 10, (10, 100), (10, 10), (10, 50))
    d = stats_delta(s, s)
    assert d.requests == 0 and math.isnan(d.avg_batch_size) and math.isnan(d.queue_ms)
    assert stats_delta({}, {}).requests == 0


PROM = """# HELP nv_inference_count Number of inferences performed
# TYPE nv_inference_count counter
nv_inference_count{model="a",version="1"} 10
nv_inference_count{model="b",version="1"} 5
# HELP nv_cpu_utilization CPU utilization rate [0.0 - 1.0]
# TYPE nv_cpu_utilization gauge
nv_cpu_utilization 0.25
"""


def test_prometheus_parsing() -> None:
    metrics = parse_prometheus(PROM)
    assert metric_value(metrics, "nv_inference_count") == 15
    assert metric_value(metrics, "nv_inference_count", model="b") == 5
    assert metric_value(metrics, "nv_cpu_utilization") == 0.25
    assert math.isnan(metric_value(metrics, "nv_gpu_utilization"))


def test_process_sampler_sees_cpu_work() -> None:
    sampler = ProcessSampler(os.getpid())
    before = sampler.sample()
    assert before is not None and before.rss_bytes > 0
    end = time.process_time() + 0.2
    while time.process_time() < end:
        pass
    after = sampler.sample()
    assert after is not None
    assert after.cpu_s - before.cpu_s >= 0.15
    assert cpu_percent(before, after) > 10
    assert ProcessSampler(2**22 + 12345).sample() is None  # no such process


def test_cpu_percent_survives_a_child_exiting() -> None:
    from analyzer.measure.monitor import ProcessSample

    before = ProcessSample(0.0, {1: 10.0, 2: 50.0}, 0)  # pid 2: a stub about to be unloaded
    after = ProcessSample(2.0, {1: 11.0, 3: 0.5}, 0)  # pid 3: the new stub
    assert cpu_percent(before, after) == pytest.approx((1.0 + 0.5) / 2.0 * 100.0)


def test_gpu_sampler_degrades_cleanly() -> None:
    sampler = GpuSampler()
    if sampler.available:  # a machine with a GPU: real numbers
        sample = sampler.sample()
        assert sample is not None and 0 <= sample.util_pct <= 100 and sample.mem_used_mb >= 0
    else:  # no GPU (CI here): absent with a reason, never an exception
        assert sampler.reason
        assert sampler.sample() is None
