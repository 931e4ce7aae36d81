"""Load schedules without a server: each one's achieved arrivals follow its definition."""

from __future__ import annotations

import numpy as np
import pytest

from analyzer.load.shapes import Burst, Daily, Ramp, Step, Trace, schedule_offsets


def per_second(offsets: np.ndarray, duration: float) -> np.ndarray:
    return np.histogram(offsets, bins=np.arange(0, duration + 1e-9, 1.0))[0].astype(float)


@pytest.mark.parametrize(
    "schedule",
    [
        Step((200.0, 600.0, 100.0), step_s=4.0),
        Ramp(100.0, 900.0, duration_s=10.0),
        Burst(200.0, 1200.0, at_s=4.0, length_s=2.0, duration_s=10.0),
        Daily(100.0, 900.0, period_s=10.0, duration_s=10.0),
    ],
    ids=lambda s: type(s).__name__,
)
def test_achieved_arrivals_per_second_follow_the_schedule(schedule: object) -> None:
    duration = schedule.duration_s  # type: ignore[attr-defined]
    seconds = np.arange(duration)
    # What each second should get: the rate integrated over it.
    fine = np.arange(0, duration, 0.001)
    due = np.add.reduceat(schedule.rate(fine) * 0.001, (seconds * 1000).astype(int))  # type: ignore[attr-defined]
    constant = per_second(schedule_offsets(schedule, "constant"), duration)  # type: ignore[arg-type]
    assert np.all(np.abs(constant - due) <= 1.0), (constant, due)
    # Poisson: counts over 10 seeds, within 3 % of the definition per second.
    poisson = (
        sum(
            per_second(schedule_offsets(schedule, "poisson", seed), duration)  # type: ignore[arg-type]
            for seed in range(10)
        )
        / 10
    )
    assert np.all(np.abs(poisson / due - 1) < 0.03 + 3 / np.sqrt(10 * due)), (poisson, due)


def test_a_scale_multiplies_every_rate_and_a_trace_replays_its_times() -> None:
    ramp = Ramp(100.0, 300.0, duration_s=4.0)
    assert len(schedule_offsets(ramp, "constant", scale=2.0)) == pytest.approx(
        2 * len(schedule_offsets(ramp, "constant")), abs=1
    )
    trace = Trace.from_gaps([0.5, 0.25, 0.25, 1.0])
    assert trace.times == (0.5, 0.75, 1.0, 2.0)
    assert np.allclose(schedule_offsets(trace), [0.5, 0.75, 1.0, 2.0])
    assert np.allclose(schedule_offsets(trace, scale=2.0), [0.25, 0.375, 0.5, 1.0])
    assert list(trace.rate(np.array([0.0, 1.0, 2.0, 5.0]))) == [2.0, 1.0, 1.0, 0.0]
    with pytest.raises(ValueError, match="scale"):
        schedule_offsets(ramp, scale=0)
    assert "burst 10 -> 50" in Burst(10, 50, 1, 1, 4).describe()


def test_a_timeline_counts_each_second_and_its_latency_from_the_schedule() -> None:
    from analyzer.load.generator import Records
    from analyzer.stats.timeline import timeline, worst_window_percentile

    # Second 0: two requests, one 10 ms, one sent 40 ms late and 20 ms at the server (60 ms from
    # its schedule). Second 1: one failure, one success finishing in second 2.
    records = Records(
        np.array([100.1, 100.5, 101.2, 101.9]),
        np.array([100.1, 100.54, 101.2, 101.9]),
        np.array([100.11, 100.56, 101.21, 102.3]),
        np.array([0, 0, 1, 0], dtype=np.int32),
        ("ok", "timeout"),
    )
    t = timeline(records, 100.0, 3.0)
    assert t["due"].tolist() == [2, 2, 0] and t["sent"].tolist() == [2, 2, 0]
    assert t["completed"].tolist() == [2, 0, 1] and t["errors"].tolist() == [0, 1, 0]
    assert t["p50_ms"].iloc[0] == pytest.approx(35.0) and t["p99_ms"].iloc[1] == pytest.approx(400.0)
    assert np.isnan(t["p99_ms"].iloc[2])
    assert worst_window_percentile(records, 100.0, 3.0, window_s=1.0) == pytest.approx(400.0)


def test_workers_share_a_schedule_and_together_keep_its_rate() -> None:
    from analyzer.load.shapes import LoadSpec
    from analyzer.load.split import auto_workers, share_offsets

    load = LoadSpec("rate", 2.0, seed=4, schedule=Step((1000.0, 3000.0), step_s=5.0))  # scaled x2
    assert load.duration_s == 10.0 and "x 2" in load.describe()
    merged = np.concatenate([share_offsets(load, 10.0, i, 2) for i in range(2)])
    counts = per_second(merged, 10.0)
    assert np.all(np.abs(counts[:5] / 2000 - 1) < 0.08) and np.all(np.abs(counts[5:] / 6000 - 1) < 0.08)
    trace = LoadSpec("rate", 2.0, schedule=Trace((0.0, 1.0, 2.0, 3.0)))
    assert trace.duration_s == pytest.approx(1.5)  # replayed twice as fast
    assert sorted(np.concatenate([share_offsets(trace, 10.0, i, 2) for i in range(2)])) == [
        0.0,
        0.5,
        1.0,
        1.5,
    ]
    # The automatic worker count looks at the schedule's peak, not its scale factor.
    assert auto_workers(load, cores=8) == 2 and auto_workers(LoadSpec("rate", 2.0), cores=8) == 1
    with pytest.raises(ValueError, match="open loop"):
        LoadSpec("concurrency", 1, schedule=load.schedule)


def test_schedules_parse_from_the_command_line(tmp_path) -> None:
    from analyzer.load.shapes import parse_schedule

    assert parse_schedule("step:100,300:5") == Step((100.0, 300.0), 5.0)
    assert parse_schedule("ramp:10:90:30") == Ramp(10.0, 90.0, 30.0)
    assert parse_schedule("burst:100:900:10:5:60") == Burst(100.0, 900.0, 10.0, 5.0, 60.0)
    assert parse_schedule("daily:10:90:60:120") == Daily(10.0, 90.0, 60.0, 120.0)
    (tmp_path / "t.txt").write_text("# send times\n0.5\n0.1\n2\n")
    assert parse_schedule(f"trace:{tmp_path / 't.txt'}").times == (0.1, 0.5, 2.0)
    assert parse_schedule(f"gaps:{tmp_path / 't.txt'}").times == pytest.approx((0.5, 0.6, 2.6))
    for bad, message in (
        ("ramp:1:2", "expected one of"),
        ("spike:1", "expected one of"),
        ("ramp:a:2:3", "bad schedule"),
        ("ramp:-1:2:3", ">= 0"),
        ("trace:/nonexistent", "cannot read"),
        ("step:1,2:0", "length > 0"),
    ):
        with pytest.raises(ValueError, match=message):
            parse_schedule(bad)


def test_a_capped_open_loop_holds_requests_and_counts_them_from_their_schedule() -> None:
    import asyncio

    from analyzer.load.generator import LoadRun
    from analyzer.load.shapes import LoadSpec

    active, most = 0, 0

    async def infer() -> None:  # a server that takes 50 ms per request (the generator's logic only)
        nonlocal active, most
        active += 1
        most = max(most, active)
        await asyncio.sleep(0.05)
        active -= 1

    async def go() -> object:
        run = LoadRun(infer, LoadSpec("rate", 100, arrival="constant", max_inflight=2), max_duration_s=0.5)
        run.start()
        await asyncio.sleep(0.6)
        return await run.stop(2.0)

    records = asyncio.run(go())
    assert most == 2  # never more than the cap in flight
    ok = records.ok  # type: ignore[attr-defined]
    # 50 due in 0.5 s, 2 served per 50 ms: the rest wait, so later requests went out later and
    # later against their schedule; none was dropped as a backlog error.
    assert len(records) == 50 and "client_backlog" not in records.kinds  # type: ignore[attr-defined,arg-type]
    lag = (records.sent - records.scheduled)[ok]  # type: ignore[attr-defined]
    assert lag[-1] > 0.15 and np.all(np.diff(records.sent[ok][np.argsort(records.scheduled[ok])]) >= -1e-9)  # type: ignore[attr-defined]
    assert np.all(records.latency_s[ok] >= 0.05 - 1e-3)  # type: ignore[attr-defined]
    assert (
        int(np.sum(ok)) + int(np.sum(~ok)) == 50 and np.sum(~ok) > 0
    )  # the held ones at the end: unfinished


def test_a_worst_minute_over_the_budget_breaks_it_even_when_the_whole_run_meets_it() -> None:
    from analyzer.judge.verdict import judge, row_verdict

    common = dict(
        budget_ms=50.0,
        percentile=99.0,
        value_ms=30.0,
        upper_ms=40.0,
        lower_ms=10.0,
        errors=0,
        stable=True,
        requests=5000,
    )
    assert judge(**common).meets
    assert judge(**common, worst_minute_ms=45.0).meets
    broken = judge(**common, worst_minute_ms=80.0)
    assert not broken.meets and broken.decided and broken.status == "over_budget"
    assert "80.00 ms in the worst minute > budget 50 ms" in broken.reason
    row = {
        "p99_ms": 30.0,
        "requests": 5000,
        "budget_bound_ms": 40.0,
        "over_bound_ms": 10.0,
        "errors": 0,
        "stable": True,
        "worst_minute_ms": 80.0,
    }
    assert row_verdict(row, 50.0).status == "over_budget"
    assert row_verdict({**row, "worst_minute_ms": ""}, 50.0).meets  # steady levels have none


def test_a_spec_schedule_makes_scale_levels(tmp_path) -> None:
    from analyzer.errors import SpecError
    from analyzer.spec.spec import parse_spec, spec_from_dict
    from analyzer.stats.measurement import level_text

    (tmp_path / "repo").mkdir()
    (tmp_path / "t.txt").write_text("0\n0.5\n1\n")
    base = {"model": "m", "model_repository": str(tmp_path / "repo")}
    spec = parse_spec({**base, "load": {"schedule": "ramp:10:100:30", "max_inflight": 8}}, "s", tmp_path)
    assert spec.load.mode == "rate" and spec.load.level_kind == "schedule"
    assert spec.load.min_level == 0.1 and spec.load.cap == 64.0 and spec.load.max_inflight == 8
    assert spec_from_dict(spec.to_dict(), "s").load == spec.load
    trace = parse_spec({**base, "load": {"schedule": "trace:t.txt"}}, "s", tmp_path)
    assert trace.load.schedule == f"trace:{tmp_path / 't.txt'}" and trace.load.parsed_schedule() is not None
    for load, message in [
        ({"schedule": "ramp:1:2"}, "key 'load.schedule': bad schedule 'ramp:1:2'"),
        ({"schedule": "ramp:1:2:3", "mode": "concurrency"}, "a schedule is an open loop"),
        ({"max_inflight": 4}, "key 'load.max_inflight': caps an open loop"),
        ({"schedule": "trace:missing.txt"}, "cannot read"),
    ]:
        with pytest.raises(SpecError, match=message):
            parse_spec({**base, "load": load}, "s", tmp_path)
    assert level_text("schedule", 1.5) == "schedule x1.5" and level_text("rate", 200.0) == "rate 200"


def test_the_timeline_figure_shows_the_schedule_what_was_served_and_the_budget() -> None:
    import pandas as pd

    from analyzer.report import timeline_figure

    table = pd.DataFrame(
        {
            "second": [0.0, 1.0, 2.0],
            "due": [10, 40, 10],
            "sent": [10, 40, 10],
            "completed": [10, 38, 12],
            "errors": [0, 2, 0],
            "throughput_rps": [10.0, 38.0, 12.0],
            "p50_ms": [5.0, 9.0, 6.0],
            "p99_ms": [8.0, 70.0, 9.0],
        }
    )
    fig = timeline_figure(table, "t", budget_ms=50.0)
    names = [t.name for t in fig.data]
    assert names == ["due (the schedule)", "served", "errors", "p50", "p99"]
    due = fig.data[0]
    assert list(due.x) == [0.0, 1.0, 2.0, 3.0] and list(due.y) == [10, 40, 10, 10] and due.line.shape == "hv"
    assert list(fig.data[1].x) == [0.5, 1.5, 2.5]  # each second's figures at its middle
    assert [s.y0 for s in fig.layout.shapes] == [50.0]
    assert "errors" not in [t.name for t in timeline_figure(table.assign(errors=0), "t").data]
