"""Load from several worker processes against a real server: shares held, rates met, records
merged, and a level the generator cannot offer marked client bound."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
from click.testing import CliRunner

from analyzer.cli.main import main
from analyzer.judge.verdict import Status, budget_verdict
from analyzer.load.generator import Records
from analyzer.load.inputs import TensorSpec
from analyzer.load.shapes import LoadSpec
from analyzer.load.workers import LoadGenerator
from analyzer.measure.levels import MeasureSettings, Probe, measure_level
from analyzer.stats.measurement import Measurement

SLEEPY = [(TensorSpec("INPUT0", "FP32", (4,)), np.ones(4, np.float32))]
IDENTITY = [(TensorSpec("INPUT0", "FP32", (1, 16)), np.ones((1, 16), np.float32))]
BAD = [(TensorSpec("INPUT0", "FP32", (1, 2, 2)), np.ones((1, 2, 2), np.float32))]


def offer(
    server: Any, model: str, tensors: Any, load: LoadSpec, seconds: float, workers: int
) -> tuple[Records, float, int]:
    """Offer `load` for `seconds` from `workers` processes: (all records, start time, workers used)."""

    async def go() -> tuple[Records, float, int]:
        gen = LoadGenerator(
            "grpc", server.endpoint.url("grpc"), model, tensors, timeout_s=10, workers=workers
        )
        try:
            run = gen.run(load, max_duration_s=seconds + 1.0)
            run.start()
            await asyncio.sleep(run.started_at + seconds - asyncio.get_running_loop().time())
            _, live = run.observe()  # the merged view while the load is on
            records = await run.stop(10.0)
            assert len(records) >= len(live)
            return records, run.started_at, run.workers
        finally:
            await gen.close()

    return asyncio.run(go())


def in_flight(records: Records, start: float, end: float) -> tuple[int, float]:
    """(most requests in flight at once, mean in flight over [start, end)) from the records."""
    sent, done = records.sent, records.done
    events = np.concatenate(
        [np.stack([sent, np.ones_like(sent)], 1), np.stack([done, -np.ones_like(done)], 1)]
    )
    events = events[np.lexsort((events[:, 1], events[:, 0]))]  # at one instant, an end before a start
    most = int(np.max(np.cumsum(events[:, 1])))
    overlap = np.clip(np.minimum(done, end) - np.maximum(sent, start), 0, None)
    return most, float(overlap.sum() / (end - start))


def test_closed_loop_every_worker_keeps_its_share_in_flight(triton_server: Any) -> None:
    # sleepy serves one request at a time for 5 ms: 6 in flight queue at the server, so the
    # client always has exactly its share outstanding. One worker's share alone would be 3.
    records, t0, used = offer(triton_server, "sleepy", SLEEPY, LoadSpec("concurrency", 6), 2.0, workers=2)
    assert used == 2 and np.all(records.ok), records.kinds
    most, mean = in_flight(records, t0 + 0.5, t0 + 1.9)
    assert most == 6
    assert mean > 0.95 * 6, mean
    # Throughput is the server's (one 5 ms request at a time), not doubled by two clients.
    done = records.done[(records.done >= t0 + 0.5) & (records.done < t0 + 1.9)]
    assert 100 < len(done) / 1.4 <= 205


def test_open_loop_merged_arrivals_keep_the_rate(triton_server: Any) -> None:
    records, t0, used = offer(
        triton_server, "identity", IDENTITY, LoadSpec("rate", 600, seed=3), 3.0, workers=2
    )
    assert used == 2 and np.all(records.ok), records.kinds
    scheduled = records.scheduled[records.scheduled < t0 + 3.0]
    assert abs(len(scheduled) / 3.0 / 600 - 1) < 0.08, len(scheduled)
    # Sent on time, every second: the achieved rate per second follows the schedule's.
    per_second = np.histogram(records.sent - t0, bins=[0, 1, 2, 3])[0]
    due = np.histogram(records.scheduled - t0, bins=[0, 1, 2, 3])[0]
    assert np.all(np.abs(per_second - due) <= 0.03 * due + 3), (per_second, due)
    assert np.all(np.abs(per_second / 600 - 1) < 0.15), per_second
    # Constant arrivals: the merged schedule is the single-process one, request for request.
    records, t0, _ = offer(
        triton_server, "identity", IDENTITY, LoadSpec("rate", 300, arrival="constant"), 1.5, workers=2
    )
    offsets = np.sort(records.scheduled - t0)
    assert np.allclose(offsets[:449], np.arange(449) / 300.0, atol=1e-9)


def test_errors_from_every_worker_merge_under_one_kind(triton_server: Any) -> None:
    records, _, used = offer(triton_server, "identity", BAD, LoadSpec("concurrency", 4), 1.0, workers=2)
    assert used == 2 and len(records) > 20
    assert records.kinds[1:] == ("server_invalid_argument",) and np.all(records.error == 1)


@contextlib.contextmanager
def busy_client(busy_s: float = 0.04, idle_s: float = 0.005) -> Iterator[None]:
    """Take most of this process's CPU from its event loop, as other work on a load machine
    would: a thread that holds the GIL for about `busy_s` (inside one C call, which Python
    cannot preempt), then lets go for `idle_s`, over and over.

    Why not a flood of tens of thousands of requests per second: it outruns one worker too,
    but on 2 shared cores it overloads the server as well, the in-flight cap fills before the
    client's lag shows, and the level's answer depends on which of the two gave out first."""
    stop = threading.Event()
    data = list(range(200_000, 0, -1))
    began = time.perf_counter()
    sorted(data)  # calibrate: one sort's length on this machine
    data = data * max(1, int(busy_s / max(time.perf_counter() - began, 1e-6)))

    def hog() -> None:
        while not stop.is_set():
            sorted(data)
            time.sleep(idle_s)

    thread = threading.Thread(target=hog, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


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
                return await measure_level(gen, probe, LoadSpec("rate", 1000), settings, decide=decide)
        finally:
            await gen.close()

    with busy_client():
        m = asyncio.run(go())
    assert m is not None and m.client_bound and m.client_workers == 1
    assert "late" in m.client_bound_reason and "--workers" in m.client_bound_reason
    assert m.send_lag_p50_ms > 2.0 and m.client_cpu_pct > 0
    assert budget_verdict(m, 100.0).status == Status.CLIENT_BOUND
    assert decided[-1] == Status.CLIENT_BOUND and m.windows == len(decided) < 4  # stopped once it was known


def test_profile_with_workers_reports_the_generator(triton_server: Any) -> None:
    result = CliRunner().invoke(
        main,
        [
            "profile",
            "-m",
            "identity",
            "--url",
            triton_server.endpoint.url("grpc"),
            "--shape",
            "INPUT0:16",
            "--concurrency",
            "4",
            "--workers",
            "2",
            "--format",
            "json",
            "-q",
            "--warmup-s",
            "0.2",
        ],
    )
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)
    assert row["client_workers"] == 2 and row["client_cpu_pct"] > 0 and row["client_bound"] is False
    bad = CliRunner().invoke(main, ["profile", "-m", "identity", "--url", "127.0.0.1:1", "--workers", "0"])
    assert bad.exit_code == 2 and "--workers" in bad.output and "'0' is not a whole number >= 1" in bad.output


def test_a_sweep_names_client_bound_levels_everywhere(tmp_path: Any, triton_server: Any) -> None:
    import pandas as pd
    import yaml

    spec = tmp_path / "spec.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "model": "identity",
                "url": triton_server.endpoint.url("grpc"),
                "budget_ms": 50,
                "strategy": "grid",
                "inputs": {"INPUT0": [16]},
                "confirm_top": 0,
                "space": {"instance_count": [1], "max_batch_size": [8], "max_queue_delay_us": [0]},
                # A rate one busy worker cannot send, as the lowest level the search may try.
                "load": {"mode": "rate", "min_level": 1000, "max_level": 2000},
            }
        )
    )
    with busy_client():
        result = CliRunner().invoke(
            main, ["sweep", str(spec), "--out", str(tmp_path / "out"), "--workers", "1"]
        )
    assert result.exit_code == 3, result.output  # nothing met the budget: the level was the client's
    assert "client bound: requests went out" in result.stderr and "--workers" in result.stderr
    (run,) = list((tmp_path / "out").iterdir())
    levels = pd.read_csv(run / "measurements.csv")
    assert levels["client_bound"].tolist() == [True] and levels["verdict"].tolist() == [Status.CLIENT_BOUND]
    assert "separate load machine" in levels["client_bound_reason"][0]
    assert json.loads((run / "summary.json").read_text())["client_bound_levels"] == 1
    assert "id='client-bound'" in (run / "report.html").read_text()
