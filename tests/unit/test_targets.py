"""Several models on one server, without a server: the load split, the combined verdict, the
coordination of one level, and the spec."""

from __future__ import annotations

import pytest

from analyzer.errors import SpecError
from analyzer.judge.targets import Coordinator, Target, combine, split_level, target_figures
from analyzer.judge.verdict import Verdict
from analyzer.spec.spec import parse_spec
from analyzer.stats.measurement import Measurement
from tests import helpers

A, B = Target("a", 3.0, 10.0), Target("b", 1.0, 40.0)


def measurement(level: float, rps: float, p99: float, errors: int = 0) -> Measurement:
    return helpers.measurement(p99, load_level=level, throughput_rps=rps, requests=int(rps), errors=errors)


def test_a_level_is_split_by_share() -> None:
    assert split_level(8, "concurrency", [A, B]) == {"a": 6.0, "b": 2.0}
    assert split_level(2, "concurrency", [A, B]) == {"a": 2.0, "b": 1.0}  # at least one in flight each
    assert split_level(100, "rate", [A, B]) == {"a": 75.0, "b": 25.0}


def test_the_level_meets_only_when_every_model_meets_its_own_budget() -> None:
    ok = Verdict(True, "meets", "fine", True)
    over = Verdict(False, "over_budget", "p99 over", True)
    # b is at 30 of its 40 ms (0.75), a at 5 of its 10 ms (0.5): b is nearest its budget, and
    # its latency is scaled to the sweep's 20 ms budget for the level search.
    m, v = combine(
        8, {"a": (measurement(6, 600, 5.0), ok), "b": (measurement(2, 100, 30.0), ok)}, [A, B], 20.0, "p99_ms"
    )
    assert v.meets and v.decided and m.throughput_rps == 700 and m.requests == 700
    assert m.p99_ms == pytest.approx(30.0 * 20.0 / 40.0)
    assert m.extra["target.a.throughput_rps"] == 600 and m.extra["target.b.budget_ms"] == 40
    assert target_figures(m.row())["b"]["p99_ms"] == 30.0
    m, v = combine(
        8,
        {"a": (measurement(6, 600, 12.0), over), "b": (measurement(2, 100, 30.0), ok)},
        [A, B],
        20.0,
        "p99_ms",
    )
    assert not v.meets and v.status == "over_budget" and v.reason.startswith("a: ") and v.decided
    assert m.p99_ms == pytest.approx(12.0 * 20.0 / 10.0)  # a is now the one over its budget
    errors = Verdict(False, "errors", "2 request errors", True)
    _, v = combine(
        8,
        {"a": (measurement(6, 600, 12.0), over), "b": (measurement(2, 100, 30.0, 2), errors)},
        [A, B],
        20.0,
        "p99_ms",
    )
    assert v.status == "errors" and v.reason.startswith("b: ")


def test_one_models_proven_answer_waits_for_the_others_unless_it_failed() -> None:
    c = Coordinator(["a", "b"])
    met = Verdict(True, "meets", "", True)
    unsure = Verdict(False, "too_few_requests", "", False)
    assert not c.wrap("a", met).decided  # a goes on: b still measures under its load
    assert not c.wrap("b", unsure).decided
    assert c.wrap("b", met).decided and c.wrap("a", met).decided
    c = Coordinator(["a", "b"])
    assert c.wrap("a", Verdict(False, "over_budget", "", True)).decided
    assert c.wrap("b", unsure).decided  # a proven failure ends the level for every model


def test_the_spec_takes_targets() -> None:
    spec = parse_spec(
        {
            "url": "localhost:8001",
            "budget_ms": 20,
            "targets": {
                "a": {"share": 3, "budget_ms": 10, "space": {"instance_count": [1, 2]}, "inputs": {"X": [4]}},
                "b": None,
            },
        }
    )
    assert spec.model == "a+b" and spec.targets is not None
    assert (
        spec.targets["a"].share == 3
        and spec.targets["a"].inputs == {"X": [4]}
        and spec.targets["b"].budget_ms is None
    )
    with pytest.raises(SpecError, match="at least two models"):
        parse_spec({"url": "localhost:8001", "targets": {"a": {}}})
    with pytest.raises(SpecError, match=r"targets\.a\.share"):
        parse_spec({"url": "localhost:8001", "targets": {"a": {"share": 0}, "b": {}}})
    with pytest.raises(SpecError, match="cannot be combined"):
        parse_spec({"url": "localhost:8001", "targets": {"a": {}, "b": {}}, "models": {"c": {}}})
