"""When a measured config counts as failed, and whether the server must be restarted."""

from __future__ import annotations

from analyzer.judge.levelsearch import CapacityResult
from analyzer.judge.verdict import Verdict
from analyzer.stats.measurement import Measurement
from analyzer.sweep.policy import failure_of
from tests.helpers import measurement

OK = Verdict(True, "meets", "")


def _m(level: float, requests: int, errors: int, kinds: str = "", stalled: bool = False) -> Measurement:
    return measurement(
        1,
        load_level=level,
        throughput_rps=10.0,
        requests=requests,
        errors=errors,
        error_kinds=kinds,
        stalled=stalled,
    )


def _result(*ms: Measurement) -> CapacityResult:
    return CapacityResult(10.0, 1.0, [(m, OK) for m in ms], pruned=False)


def test_healthy_config_and_some_errors_are_not_failures() -> None:
    assert failure_of(_result(_m(1, 100, 0), _m(2, 200, 3, "timeout=3"))) is None


def test_all_requests_failing_is_a_failure() -> None:
    reason, restart = failure_of(_result(_m(1, 100, 0), _m(2, 50, 50, "server_internal=50")))
    assert "no request succeeded at concurrency 2" in reason and "server_internal=50" in reason
    assert restart is False
    _, restart = failure_of(_result(_m(1, 40, 40, "timeout=40")))
    assert restart is True  # a stuck instance may still hold the server


def test_stalled_level_is_a_failure_with_restart() -> None:
    reason, restart = failure_of(_result(_m(1, 0, 0, stalled=True)))
    assert "stopped answering" in reason and restart is True
