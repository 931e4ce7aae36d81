"""The model strategy (analyzer.search.predicted) on a server that behaves like a known server
model: it seeds with identifying configs, then goes for the best, and stops by the model's
upper bound well before measuring the whole space; a wrong prediction is said."""

from __future__ import annotations

from pathlib import Path

import pytest

from analyzer.config.modelconfig import Candidate
from analyzer.config.pipeline import JointCandidate
from analyzer.errors import UsageError
from analyzer.predict import Level, ServerModel
from analyzer.search import make_search
from analyzer.search.predicted import ModelSearch, identifying_seeds
from analyzer.search.study import Outcome

BUDGET = 95.0
TRUE = ServerModel(9.7, 1.1, ((1, 1.0), (2, 1.05), (3, 1.4), (4, 1.9)), 1.4, 0.03, 0, fill=0.6)
SPACE = [Candidate(k, b, d) for k in (1, 2, 3, 4) for b in (1, 4, 8, 16, 32) for d in (0, 1000)]


def truth(c: Candidate) -> float:
    got = TRUE.capacity(
        c.instance_count,
        c.max_batch_size,
        c.batching,
        (c.max_queue_delay_us or 0) / 1000,
        "concurrency",
        BUDGET,
        512,
    )
    return float(got["capacity_rps"])


def measure(c: Candidate, scale: float = 1.0) -> Outcome:
    """What the modelled server measures for a config: its levels at powers of two up to past its
    capacity (with the server's batch and compute figures), and its capacity (times `scale`)."""
    levels = []
    for load in (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0):
        throughput, latency = TRUE.at_load(
            c.instance_count, c.max_batch_size, c.batching, 0.0, "concurrency", load
        )
        batch = (
            min(max(TRUE.fill * load / c.instance_count, 1.0), c.max_batch_size)
            if load >= c.instance_count
            else 1.0
        )
        levels.append(
            Level(
                c.instance_count,
                c.max_batch_size,
                c.batching,
                0.0,
                "concurrency",
                load,
                float(throughput) * scale,
                float(latency),
                float(latency) / TRUE.tail,
                batch if c.batching else 1.0,
                float(TRUE.service_ms(batch if c.batching else 1.0, c.instance_count)),
            )
        )
    return Outcome(truth(c) * scale, BUDGET * 0.9, levels=tuple(levels))


def search(tmp_path: Path) -> ModelSearch:
    found = make_search(
        "model",
        candidates=SPACE,
        storage=f"sqlite:///{tmp_path / 'study.db'}",
        budget_ms=BUDGET,
        base=SPACE[0],
    )
    assert isinstance(found, ModelSearch)
    return found


def test_the_seeds_span_instances_and_batch_sizes() -> None:
    seeds = identifying_seeds(SPACE, SPACE[0])
    assert seeds[0] == SPACE[0]  # the base config first
    assert {c.instance_count for c in seeds} >= {1, 4} and {c.max_batch_size for c in seeds} >= {1, 32}
    assert all(c.max_queue_delay_us == 0 for c in seeds)


def test_it_finds_the_best_and_stops_by_the_models_bound(tmp_path: Path) -> None:
    s = search(tmp_path)
    asked = []
    while (cand := s.ask()) is not None:
        asked.append(cand)
        assert len(asked) <= len(SPACE), "asked more configs than the space has"
        s.tell(cand, measure(cand))
    # Several configs share the best capacity (at the budget's edge); one of them is found.
    assert s.best_capacity() == pytest.approx(max(truth(c) for c in SPACE), rel=0.001)
    assert len(asked) <= len(SPACE) // 4  # 40 configs: the seeds and a few more
    assert s.stop_reason.startswith("no unmeasured config's upper bound reaches the best measured capacity")
    assert s.model is not None and s.model.per_row_ms == pytest.approx(TRUE.per_row_ms, rel=0.05)


def test_a_config_that_breaks_its_prediction_is_said_and_counts(tmp_path: Path) -> None:
    s = search(tmp_path)
    seeds = len(identifying_seeds(SPACE, SPACE[0]))
    for _ in range(seeds):
        cand = s.ask()
        assert cand is not None
        s.tell(cand, measure(cand))
    s.notes()  # what the seeds taught it (a model fitted on one config misses the next)
    cand = s.ask()
    assert cand is not None and s.prediction(cand) is not None
    hint = s.start_hint(cand)
    assert hint is not None and hint >= 1
    s.tell(cand, measure(cand, scale=0.5))  # half what the model predicts
    (note,) = s.notes()
    assert cand.config_id in note and "the measurement counts" in note
    assert s.best_capacity() >= max(truth(c) for c in s.outcomes if c != cand) - 1e-6


def test_a_joint_space_is_refused_with_the_strategy_to_use(tmp_path: Path) -> None:
    joint = [JointCandidate((("a", c),)) for c in SPACE[:3]]
    with pytest.raises(UsageError, match="strategy: optuna"):
        make_search("model", candidates=joint, storage=f"sqlite:///{tmp_path / 's.db'}", budget_ms=BUDGET)
