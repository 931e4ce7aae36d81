"""The server model (analyzer.predict.server_model): fitted on synthetic statistics made by a
model with known parameters, it recovers them; its capacities agree with a scan of every load;
the batcher's rules (no dynamic batching, queue delay, open loop) show in its predictions."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from analyzer.predict import Level, ServerModel, fit, levels_from_rows

# Two instances share the hardware perfectly, a fourth slows every execution by 60 %.
TRUE = ServerModel(
    fixed_ms=8.0, per_row_ms=1.0, slowdown=((1, 1.0), (2, 1.0), (4, 1.6)), tail=1.8, sigma=0.03, levels=0
)
CONFIGS = [(k, b) for k in (1, 2, 4) for b in (1, 8, 32)]


def synthetic(model: ServerModel, noise: float, seed: int = 0) -> list[Level]:
    """Levels a server behaving like `model` would give, with multiplicative noise on the
    server's compute time and on the latency (each within +-noise)."""
    rng = np.random.default_rng(seed)
    out = []
    for k, cap in CONFIGS:
        for load in (1.0, 4.0, 16.0, 64.0):
            throughput, latency = model.at_load(k, cap, True, 0.0, "concurrency", load)
            batch = min(max(load / k, 1.0), cap)
            compute = float(model.service_ms(batch, k)) * (1 + rng.uniform(-noise, noise))
            out.append(
                Level(
                    instances=k,
                    max_batch=cap,
                    batching=True,
                    delay_ms=0.0,
                    mode="concurrency",
                    load=load,
                    throughput_rps=float(throughput),
                    latency_ms=float(latency) * (1 + rng.uniform(-noise, noise)),
                    mean_ms=float(latency) / model.tail,
                    batch=batch,
                    compute_ms=compute,
                )
            )
    return out


def test_the_fit_recovers_known_parameters_from_noisy_statistics() -> None:
    got = fit(synthetic(TRUE, noise=0.05))
    assert got is not None
    assert got.fixed_ms == pytest.approx(8.0, rel=0.1)
    assert got.per_row_ms == pytest.approx(1.0, rel=0.1)
    assert [k for k, _ in got.slowdown] == [1, 2, 4]
    assert [f for _, f in got.slowdown] == pytest.approx([1.0, 1.0, 1.6], rel=0.05)
    assert got.tail == pytest.approx(1.8, rel=0.05)
    assert 0.01 < got.sigma < 0.1  # the noise, seen as the model's error on the levels
    assert got.levels == len(CONFIGS) * 4


def test_exact_statistics_are_fitted_exactly() -> None:
    got = fit(synthetic(TRUE, noise=0.0))
    assert got is not None
    assert (got.fixed_ms, got.per_row_ms) == pytest.approx((8.0, 1.0), rel=1e-3)
    assert [f for _, f in got.slowdown] == pytest.approx([1.0, 1.0, 1.6], rel=1e-3)


def test_the_capacity_is_the_highest_load_a_scan_finds_within_the_budget() -> None:
    k = np.array([1, 2, 4, 4, 1])
    cap = np.array([1, 8, 32, 32, 32])
    batching = np.array([True, True, True, False, True])
    delay = np.array([0.0, 0.0, 0.0, 0.0, 5.0])
    got = TRUE.capacity(k, cap, batching, delay, "concurrency", budget_ms=60.0, max_load=512)
    for i in range(len(k)):
        loads = np.arange(1, 513, dtype=float)
        throughput, latency = TRUE.at_load(k[i], cap[i], batching[i], delay[i], "concurrency", loads)
        meets = np.nonzero(latency <= 60.0)[0]
        assert got["level"][i] == loads[meets[-1]]
        assert got["capacity_rps"][i] == pytest.approx(throughput[meets[-1]])
    assert np.all(got["low_rps"] <= got["capacity_rps"]) and np.all(got["capacity_rps"] <= got["high_rps"])


def test_without_dynamic_batching_every_request_is_its_own_batch() -> None:
    on = TRUE.capacity(2, 32, True, 0.0, "concurrency", 60.0, 512)["capacity_rps"]
    off = TRUE.capacity(2, 32, False, 0.0, "concurrency", 60.0, 512)["capacity_rps"]
    one = TRUE.capacity(2, 1, True, 0.0, "concurrency", 60.0, 512)["capacity_rps"]
    assert off == pytest.approx(one) and on > 2 * off


def test_a_queue_delay_costs_latency_only_where_instances_wait_for_company() -> None:
    _, idle0 = TRUE.at_load(4, 32, True, 0.0, "concurrency", 2.0)  # fewer requests than instances
    _, idle5 = TRUE.at_load(4, 32, True, 5.0, "concurrency", 2.0)
    _, busy0 = TRUE.at_load(1, 32, True, 0.0, "concurrency", 64.0)
    _, busy5 = TRUE.at_load(1, 32, True, 5.0, "concurrency", 64.0)
    assert float(idle5 - idle0) == pytest.approx(5.0 * TRUE.tail)
    assert float(busy5) == pytest.approx(float(busy0))  # busy instances find a batch waiting


def test_the_fill_is_fitted_from_the_achieved_batches() -> None:
    half = ServerModel(8.0, 1.0, ((1, 1.0), (2, 1.0), (4, 1.6)), 1.8, 0.03, 0, fill=0.5)
    levels = [
        dataclasses.replace(lv, batch=min(max(0.5 * lv.load / lv.instances, 1.0), lv.max_batch))
        for lv in synthetic(half, noise=0.0)
    ]
    got = fit(levels)
    assert got is not None and got.fill == pytest.approx(0.5)


def test_an_open_loop_serves_its_rate_until_the_instances_saturate() -> None:
    peak = 2 * 32 / float(TRUE.service_ms(32, 2)) * 1000.0
    rates = np.array([0.2, 0.5, 0.9, 1.1]) * peak
    throughput, latency = TRUE.at_load(2, 32, True, 0.0, "rate", rates)
    assert throughput[:3] == pytest.approx(rates[:3])
    assert np.all(np.diff(latency[:3]) > 0) and math.isinf(latency[3])


def test_no_server_figures_no_model() -> None:
    levels = [Level(1, 8, True, 0.0, "concurrency", 4.0, 100.0, 20.0, 10.0, math.nan, math.nan)]
    assert fit(levels) is None


def test_the_levels_come_from_measurement_rows() -> None:
    row = {
        "instance_count": 2,
        "max_batch_size": 16,
        "max_queue_delay_us": 500.0,
        "load_mode": "concurrency",
        "load_level": 8.0,
        "throughput_rps": 900.0,
        "p95_ms": 21.0,
        "mean_ms": 9.0,
        "avg_batch_size": 3.5,
        "server_compute_ms": 6.5,
    }
    nobatch = row | {"max_queue_delay_us": math.nan}
    got, plain = levels_from_rows([row, nobatch], "p95_ms")
    assert got == Level(2, 16, True, 0.5, "concurrency", 8.0, 900.0, 21.0, 9.0, 3.5, 6.5)
    assert not plain.batching and plain.delay_ms == 0.0


def test_a_whole_space_is_predicted_at_once() -> None:
    n = 100_000
    rng = np.random.default_rng(1)
    k = rng.integers(1, 9, n)
    cap = rng.choice([1, 2, 4, 8, 16, 32, 64], n)
    delay = rng.choice([0.0, 0.5, 2.0], n)
    got = TRUE.capacity(k, cap, np.ones(n, dtype=bool), delay, "concurrency", 100.0, 1024)
    assert got["capacity_rps"].shape == (n,) and np.all(np.isfinite(got["capacity_rps"]))
