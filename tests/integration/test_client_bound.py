"""A level the load generator cannot offer is marked client bound (against a real server).

Kept apart from test_workers.py, and so run before test_sweep.py: after the sweep tests, in the
same process, this level has twice come back with ~30-40 req/s and the generator's loop busy
but no send lag (cause not found yet; see issue 10's closing note)."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from analyzer.capacity import CLIENT_BOUND, budget_verdict
from analyzer.load.inputs import TensorSpec
from analyzer.load.shapes import LoadSpec
from analyzer.load.workers import LoadGenerator
from analyzer.measure import Measurement
from analyzer.profiler import MeasureSettings, Probe, measure_level

pytestmark = pytest.mark.integration

IDENTITY = [(TensorSpec("INPUT0", "FP32", (1, 16)), np.ones((1, 16), np.float32))]


def test_a_rate_one_worker_cannot_send_is_client_bound(triton_server: Any) -> None:
    settings = MeasureSettings(warmup_s=0.3, budget_ms=100.0, max_windows=4)
    decided: list[str] = []

    def decide(m: Measurement) -> Any:
        verdict = budget_verdict(m, 100.0)
        decided.append(verdict.status)
        return verdict

    async def go() -> Measurement | None:
        gen = LoadGenerator("grpc", triton_server.endpoint.url("grpc"), "identity", IDENTITY, workers=1)
        try:
            with Probe(triton_server.endpoint, "grpc", "identity", triton_server.pid) as probe:
                return await measure_level(gen, probe, LoadSpec("rate", 40000), settings, decide=decide)
        finally:
            await gen.close()

    m = asyncio.run(go())
    assert m is not None and m.client_bound and m.client_workers == 1
    assert "late" in m.client_bound_reason and "--workers" in m.client_bound_reason
    assert m.send_lag_p50_ms > 2.0 and m.client_cpu_pct > 0
    assert budget_verdict(m, 100.0).status == CLIENT_BOUND
    assert decided[-1] == CLIENT_BOUND and m.windows == len(decided) < 4  # stopped once it was known
