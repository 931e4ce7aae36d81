"""The confirmation round (analyzer.sweep.confirm) run with a made-up measuring function: its order, a
resumed round, a config the server no longer loads, a stop, and a shared study's claims."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pandas as pd

import analyzer.sweep.confirm
from analyzer.judge.verdict import Verdict
from analyzer.stats.measurement import Measurement
from analyzer.store.study_tables import SharedTables
from analyzer.sweep.confirm import CONFIRM_CLAIM, CONFIRMED_CLAIM, ConfirmationRound, ConfirmIO
from tests.helpers import measurement

MEETS = Verdict(True, "meets", "")


def _configs() -> pd.DataFrame:
    rows = [
        ("i1_b8_d0", 1, 8, 0, "ok", 900.0, 8.0),
        ("i2_b8_d0", 2, 8, 0, "ok", 1200.0, 16.0),
        ("i2_b32_d0", 2, 32, 0, "ok", 1500.0, 24.0),
        ("i1_b1_d0", 1, 1, 0, "ok", 100.0, 2.0),
    ]
    return pd.DataFrame(
        rows,
        columns=[
            "config_id",
            "instance_count",
            "max_batch_size",
            "max_queue_delay_us",
            "status",
            "capacity_rps",
            "capacity_level",
        ],
    )


def _m(level: float) -> Measurement:
    return measurement(
        1,
        load_level=level,
        throughput_rps=100.0 * level,
        p50_ms=1,
        p90_ms=1,
        p95_ms=1,
        max_ms=1,
        mean_ms=1,
        p99_ci_low_ms=1,
        p99_ci_high_ms=1,
        requests=1000,
    )


class FakeRun:
    """The round's outside: tables held here, a measuring function that records its calls."""

    def __init__(
        self, measured: list[tuple[str, int]] | None = None, refuse: str = "", stop_after: int = -1
    ) -> None:
        self.configs = _configs()
        self.rows = [{"config_id": c, "phase": "confirm", "confirm_round": r} for c, r in measured or []]
        self.calls: list[tuple[str, float, int]] = []
        self.said: list[str] = []
        self.started: list[tuple[list[str], int]] = []
        self.refuse, self.stop_after = refuse, stop_after

    def tables(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        return self.configs, pd.DataFrame(self.rows, columns=["config_id", "phase", "confirm_round"])

    def apply(self, cand: Any) -> str:
        return "the server refused it" if cand.config_id == self.refuse else ""

    async def measure(self, cand: Any, level: float, round_: int) -> Measurement | None:
        if len(self.calls) == self.stop_after:
            return None
        self.calls.append((cand.config_id, level, round_))
        return _m(level)

    def record(self, cand: Any, m: Measurement, verdict: Verdict, round_: int) -> None:
        self.rows.append({"config_id": cand.config_id, "phase": "confirm", "confirm_round": round_})

    def io(self) -> ConfirmIO:
        return ConfirmIO(
            tables=self.tables,
            apply=self.apply,
            measure=self.measure,
            decide=lambda m: MEETS,
            record=self.record,
            stopped=lambda: False,
            say=self.said.append,
            started=lambda cands, rounds: self.started.append(([c.config_id for c in cands], rounds)),
        )


def test_the_top_configs_are_measured_interleaved_at_their_capacity_levels() -> None:
    run = FakeRun()
    assert asyncio.run(ConfirmationRound(run.io(), top=3, rounds=3).run())
    top3 = [("i2_b32_d0", 24.0), ("i2_b8_d0", 16.0), ("i1_b8_d0", 8.0)]
    assert run.calls == [(c, level, r) for r in (1, 2, 3) for c, level in top3]
    assert run.started == [(["i2_b32_d0", "i2_b8_d0", "i1_b8_d0"], 3)]


def test_a_resumed_round_measures_only_what_is_missing() -> None:
    run = FakeRun(measured=[("i2_b32_d0", 1), ("i2_b8_d0", 1), ("i1_b8_d0", 1), ("i2_b32_d0", 2)])
    assert asyncio.run(ConfirmationRound(run.io(), top=3, rounds=3).run())
    assert [(c, r) for c, _, r in run.calls] == [
        ("i2_b8_d0", 2),
        ("i1_b8_d0", 2),
        ("i2_b32_d0", 3),
        ("i2_b8_d0", 3),
        ("i1_b8_d0", 3),
    ]


def test_a_config_the_server_no_longer_loads_is_left_out() -> None:
    run = FakeRun(refuse="i2_b8_d0")
    assert asyncio.run(ConfirmationRound(run.io(), top=3, rounds=3).run())
    assert {c for c, _, _ in run.calls} == {"i2_b32_d0", "i1_b8_d0"} and len(run.calls) == 6
    assert run.said == ["confirmation: i2_b8_d0 could not be loaded again (the server refused it); left out"]


def test_a_stop_ends_the_round_unfinished() -> None:
    run = FakeRun(stop_after=4)
    assert not asyncio.run(ConfirmationRound(run.io(), top=3, rounds=3).run())
    assert len(run.calls) == 4 and len(run.rows) == 4


def test_several_models_get_no_round_yet() -> None:
    run = FakeRun()
    assert asyncio.run(
        ConfirmationRound(
            run.io(),
            top=3,
            rounds=3,
            unconfirmed="no confirmation round for several models yet: the pick is the search's",
        ).run()
    )
    assert run.calls == [] and run.said == [
        "no confirmation round for several models yet: the pick is the search's"
    ]


def _shared(tmp_path: Path, worker: str) -> SharedTables:
    return SharedTables(f"sqlite:///{tmp_path / 'study.db'}", "study", worker)


def test_in_a_shared_study_one_worker_claims_the_round(tmp_path: Path) -> None:
    run = FakeRun()
    shared = _shared(tmp_path, "a:1")
    assert asyncio.run(ConfirmationRound(run.io(), top=2, rounds=3, claims=shared).run())
    assert len(run.calls) == 6
    assert shared.holder(CONFIRM_CLAIM) == (-1, "a:1") and shared.holder(CONFIRMED_CLAIM) == (-1, "a:1")
    # Another worker finds the round claimed and done: it measures nothing.
    other = FakeRun()
    assert asyncio.run(ConfirmationRound(other.io(), top=2, rounds=3, claims=_shared(tmp_path, "b:2")).run())
    assert other.calls == []
    assert other.said == ["confirmation round: a:1 runs it against its own server; waiting for its answer"]


def test_a_waiting_worker_gives_up_on_a_confirming_worker_that_writes_nothing(
    tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.setattr(analyzer.sweep.confirm, "SHARED_POLL_S", 0.01)
    assert _shared(tmp_path, "a:1").claim(CONFIRM_CLAIM, -1)  # a worker that claimed the round and died
    run = FakeRun()
    assert asyncio.run(
        ConfirmationRound(run.io(), top=2, rounds=3, claims=_shared(tmp_path, "b:2"), stall_s=0.0).run()
    )
    assert run.calls == [] and len(run.said) == 2
    assert run.said[1].startswith("confirmation round: a:1 wrote nothing for 0 s and may have died")


def test_no_round_and_no_claim_when_confirm_top_is_0(tmp_path: Path) -> None:
    run = FakeRun()
    shared = _shared(tmp_path, "a:1")
    assert asyncio.run(ConfirmationRound(run.io(), top=0, rounds=3, claims=shared).run())
    assert run.calls == [] and run.started == [] and shared.holder(CONFIRM_CLAIM) is None
