"""Load shapes are pure schedules."""

from __future__ import annotations

import numpy as np
import pytest

from analyzer.load.shapes import LoadSpec, arrival_offsets


def test_poisson_schedule_has_the_rate_and_exponential_gaps() -> None:
    times = arrival_offsets(1000.0, 10.0, "poisson", seed=3)
    assert np.all(np.diff(times) >= 0)
    assert times[0] >= 0 and times[-1] < 10.0
    assert abs(len(times) - 10000) < 4 * np.sqrt(10000)
    gaps = np.diff(times)
    assert gaps.mean() == pytest.approx(1e-3, rel=0.05)
    # Exponential gaps have a coefficient of variation of 1; constant ones 0.
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, abs=0.05)


def test_poisson_schedule_is_reproducible_by_seed() -> None:
    a = arrival_offsets(200.0, 2.0, seed=1)
    b = arrival_offsets(200.0, 2.0, seed=1)
    c = arrival_offsets(200.0, 2.0, seed=2)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_constant_schedule_is_evenly_spaced() -> None:
    times = arrival_offsets(4.0, 2.0, "constant")
    assert np.allclose(times, [0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75])


def test_empty_schedules() -> None:
    assert len(arrival_offsets(0.0, 1.0)) == 0
    assert len(arrival_offsets(10.0, 0.0)) == 0
    with pytest.raises(ValueError):
        arrival_offsets(10.0, 1.0, "bursty")


def test_load_spec_validation() -> None:
    assert LoadSpec("concurrency", 4).describe() == "concurrency 4"
    assert LoadSpec("rate", 250).describe() == "rate 250/s (poisson)"
    for bad in (("concurrency", 0), ("concurrency", 2.5), ("rate", -1), ("burst", 3)):
        with pytest.raises(ValueError):
            LoadSpec(*bad)
