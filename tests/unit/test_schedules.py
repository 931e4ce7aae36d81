"""Load schedules without a server: each one's achieved arrivals follow its definition."""

from __future__ import annotations

import numpy as np
import pytest

from analyzer.load.shapes import Burst, Daily, Ramp, Step, Trace, schedule_offsets


def per_second(offsets: np.ndarray, duration: float) -> np.ndarray:
    return np.histogram(offsets, bins=np.arange(0, duration + 1e-9, 1.0))[0].astype(float)


@pytest.mark.parametrize("schedule", [
    Step((200.0, 600.0, 100.0), step_s=4.0),
    Ramp(100.0, 900.0, duration_s=10.0),
    Burst(200.0, 1200.0, at_s=4.0, length_s=2.0, duration_s=10.0),
    Daily(100.0, 900.0, period_s=10.0, duration_s=10.0),
], ids=lambda s: type(s).__name__)
def test_achieved_arrivals_per_second_follow_the_schedule(schedule: object) -> None:
    duration = schedule.duration_s  # type: ignore[attr-defined]
    seconds = np.arange(duration)
    # What each second should get: the rate integrated over it.
    fine = np.arange(0, duration, 0.001)
    due = np.add.reduceat(schedule.rate(fine) * 0.001, (seconds * 1000).astype(int))  # type: ignore[attr-defined]
    constant = per_second(schedule_offsets(schedule, "constant"), duration)  # type: ignore[arg-type]
    assert np.all(np.abs(constant - due) <= 1.0), (constant, due)
    # Poisson: counts over 10 seeds, within 3 % of the definition per second.
    poisson = sum(per_second(schedule_offsets(schedule, "poisson", seed), duration) for seed in range(10)) / 10  # type: ignore[arg-type]
    assert np.all(np.abs(poisson / due - 1) < 0.03 + 3 / np.sqrt(10 * due)), (poisson, due)


def test_a_scale_multiplies_every_rate_and_a_trace_replays_its_times() -> None:
    ramp = Ramp(100.0, 300.0, duration_s=4.0)
    assert len(schedule_offsets(ramp, "constant", scale=2.0)) == pytest.approx(2 * len(schedule_offsets(ramp, "constant")), abs=1)
    trace = Trace.from_gaps([0.5, 0.25, 0.25, 1.0])
    assert trace.times == (0.5, 0.75, 1.0, 2.0)
    assert np.allclose(schedule_offsets(trace), [0.5, 0.75, 1.0, 2.0])
    assert np.allclose(schedule_offsets(trace, scale=2.0), [0.25, 0.375, 0.5, 1.0])
    assert list(trace.rate(np.array([0.0, 1.0, 2.0, 5.0]))) == [2.0, 1.0, 1.0, 0.0]
    with pytest.raises(ValueError, match="scale"):
        schedule_offsets(ramp, scale=0)
    assert "burst 10 -> 50" in Burst(10, 50, 1, 1, 4).describe()
