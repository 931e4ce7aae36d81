"""The confirmation round of a shared study outlives the worker running it: a worker that died
mid-round (its claim's beat stopped; no process is killed here, its claim and rows are what a
killed worker leaves) has its round taken over by a waiting worker once the beat is older than
the grace period, and the new holder measures only the rounds not yet measured. A round whose
worker stopped gives its claim back, and a waiting worker continues it at once."""

from __future__ import annotations

import asyncio
from typing import Any

import pandas as pd
import pytest

import analyzer.sweep.confirm
from analyzer.config.modelconfig import Candidate
from analyzer.errors import ClaimLostError
from analyzer.judge.verdict import Verdict
from analyzer.stats.measurement import Measurement
from analyzer.store.rundir import CONFIG_COLUMNS, MEASUREMENT_COLUMNS
from analyzer.store.shared_timing import SharedTimings
from analyzer.store.study_tables import SharedTables
from analyzer.sweep.confirm import CONFIRM_CLAIM, CONFIRMED_CLAIM, ConfirmationRound, ConfirmIO
from tests.helpers import measurement, opened

TIMINGS = SharedTimings(heartbeat_s=1, grace_s=2, retry_s=30)
MEETS = Verdict(True, "meets", "")
TOP = [("i2_b8_d0", 2, 8, 16.0, 1200.0), ("i1_b8_d0", 1, 8, 8.0, 900.0)]  # the round's order


class Worker:
    """One worker's side of the round: the study's tables through its own SharedTables, and
    a measuring function that records what it was asked (no server)."""

    def __init__(self, url: str, study: str, name: str) -> None:
        self.tables = opened(SharedTables(url, study, name, timings=TIMINGS))
        self.calls: list[tuple[str, int]] = []
        self.said: list[str] = []
        self.stop_after: int | None = None

    async def measure(self, cand: Any, level: float, round_: int) -> Measurement | None:
        if self.stop_after is not None and len(self.calls) >= self.stop_after:
            return None  # stopped (Ctrl-C) before this one
        self.calls.append((cand.config_id, round_))
        return measurement(1.0, load_level=level)

    def record(self, cand: Any, m: Measurement, verdict: Verdict, round_: int) -> None:
        row = {"config_id": cand.config_id, "phase": "confirm", "confirm_round": round_}
        self.tables.append("measurement", row, None)

    def round(self) -> ConfirmationRound:
        io = ConfirmIO(
            tables=lambda: (
                self.tables.rows("config", CONFIG_COLUMNS),
                self.tables.rows("measurement", MEASUREMENT_COLUMNS),
            ),
            apply=lambda cand: "",
            measure=self.measure,
            decide=lambda m: MEETS,
            record=self.record,
            stopped=lambda: self.stop_after is not None and len(self.calls) >= self.stop_after,
            say=self.said.append,
        )
        return ConfirmationRound(io, top=2, rounds=2, claims=self.tables, stall_s=60)


def _searched(worker: Worker) -> None:
    """The search's two configs, as their workers left them."""
    for number, (config_id, instances, batch, level, capacity) in enumerate(TOP):
        assert worker.tables.claim(config_id, number)
        row = dict(
            config_id=config_id,
            instance_count=instances,
            max_batch_size=batch,
            max_queue_delay_us=0,
            preferred_batch_size="",
            instance_kind="KIND_CPU",
            status="ok",
            capacity_rps=capacity,
            capacity_level=level,
        )
        worker.tables.append("config", row, number)


def confirmed(worker: Worker) -> pd.DataFrame:
    rows = worker.tables.rows("measurement", MEASUREMENT_COLUMNS)
    return rows[rows["phase"] == "confirm"][["config_id", "confirm_round", "worker"]]


def test_a_dead_confirming_worker_s_round_is_taken_over_and_continued(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(analyzer.sweep.confirm, "SHARED_POLL_S", 0.2)
    dead = Worker(postgres_url, "takeover", "dead:1")
    _searched(dead)
    # It claimed the round, measured its first config's first round, and died (no more beats).
    assert dead.tables.claim(CONFIRM_CLAIM, -1)
    dead.record(Candidate(2, 8, 0), measurement(1.0), MEETS, 1)
    live = Worker(postgres_url, "takeover", "live:2")
    assert asyncio.run(live.round().run())
    # The rest of the round, in the round's order, and nothing twice.
    assert live.calls == [("i1_b8_d0", 1), ("i2_b8_d0", 2), ("i1_b8_d0", 2)]
    assert live.tables.holder(CONFIRMED_CLAIM) == (-1, "live:2")
    assert any("dead:1 stopped its heartbeat" in s and "takes the round over" in s for s in live.said), (
        live.said
    )
    rows = confirmed(live)
    assert sorted(zip(rows["config_id"], rows["confirm_round"])) == [
        ("i1_b8_d0", 1),
        ("i1_b8_d0", 2),
        ("i2_b8_d0", 1),
        ("i2_b8_d0", 2),
    ]
    # The dead worker, were it only frozen, can add nothing now: the round is no longer its.
    with pytest.raises(ClaimLostError, match="the confirmation round was taken over by live:2"):
        dead.record(Candidate(1, 8, 0), measurement(1.0), MEETS, 3)


def test_a_stopped_confirming_worker_gives_the_round_back(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(analyzer.sweep.confirm, "SHARED_POLL_S", 0.2)
    first = Worker(postgres_url, "given-back", "first:1")
    _searched(first)
    first.stop_after = 1  # Ctrl-C after one measurement
    assert not asyncio.run(first.round().run())
    assert first.tables.holder(CONFIRM_CLAIM) is None and first.tables.holder(CONFIRMED_CLAIM) is None
    second = Worker(postgres_url, "given-back", "second:2")
    assert asyncio.run(second.round().run())
    assert first.calls == [("i2_b8_d0", 1)]
    assert second.calls == [("i1_b8_d0", 1), ("i2_b8_d0", 2), ("i1_b8_d0", 2)]
    assert second.tables.holder(CONFIRMED_CLAIM) == (-1, "second:2")
