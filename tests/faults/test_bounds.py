"""Bounded by design, on the real tritonserver: a load level that asks for more sockets than the
process may open, an HTTP client held to a connection cap, and a load worker process killed
mid-level. Each ends with a clear result or a clear error, never a traceback (the limits that
need no server are in tests/faults/test_limits.py)."""

from __future__ import annotations

import asyncio
import json
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psutil
import pytest

from analyzer.limits import connection_budget
from analyzer.load.clients import HttpInferClient
from analyzer.load.inputs import TensorSpec
from tests.helpers import FAST_LOAD, ROOT, cli_process, read_until, write_spec

FD_LIMIT = 256
IDENTITY = [(TensorSpec("INPUT0", "FP32", (1, 16)), np.ones((1, 16), np.float32))]


def _fd_limit() -> None:
    """In the child, before exec: soft and hard open-file limits of FD_LIMIT (hard too, so that
    raising the soft limit to the hard one cannot escape it)."""
    resource.setrlimit(resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))


def _profile(*args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    """`tritune profile ARGS` in a process of its own (short windows)."""
    return subprocess.run(
        [sys.executable, "-m", "analyzer.cli", "profile", "--window-s", "0.5", "--warmup-s", "0.3", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        **kw,
    )


@pytest.mark.parametrize("workers", ["1", "2"])
def test_1024_in_flight_over_http_under_an_fd_limit_of_256(triton_server: Any, workers: str) -> None:
    # Before the connection budget: one worker aborted (SIGABRT) with a traceback from gevent's
    # pipe (the probe's client) on EMFILE; two workers failed about half the requests with
    # OSError (EMFILE) and exited 0 with nothing flagged.
    proc = _profile(
        "--url",
        triton_server.endpoint.url("http"),
        "--protocol",
        "http",
        "-m",
        "identity",
        "--shape",
        "INPUT0:16",
        "--concurrency",
        "1024",
        "--max-windows",
        "3",
        "--workers",
        workers,
        "--format",
        "json",
        "--quiet",
        preexec_fn=_fd_limit,
    )
    output = proc.stdout + proc.stderr
    assert "Traceback" not in output, output
    assert "Too many open files" not in output and "EMFILE" not in output, output
    assert proc.returncode == 0, output
    (row,) = json.loads(proc.stdout)
    assert row["load_level"] == 1024
    assert row["requests"] > 0 and row["errors"] == 0, row
    # 1024 connections do not fit in 256 descriptors: the level says how many were in flight,
    # and as a client-bound level it never counts as the model's figures.
    assert row["client_bound"] is True, row
    room = connection_budget(1, limit=FD_LIMIT)
    assert f"leaves room for {room} connections" in row["client_bound_reason"], row
    assert "client bound" in proc.stderr


def test_http_client_waits_for_a_free_connection_at_its_cap(triton_server: Any) -> None:
    async def go() -> tuple[int, int, int, int]:
        client = HttpInferClient(triton_server.endpoint.url("http"), "identity", IDENTITY, 10.0, 4)
        client.IDLE_CLOSE_S = 0.05
        try:
            await asyncio.gather(*(client.infer() for _ in range(64)))  # 64 at once over 4 sockets
            opened, open_after_burst = client.opened, client.connections
            await asyncio.sleep(0.2)  # every idle connection is now older than IDLE_CLOSE_S
            await client.infer()  # one at a time from here: the others are closed as it ends
            return opened, open_after_burst, client.connections, client.opened
        finally:
            await client.close()

    opened, after_burst, after_idle, opened_in_all = asyncio.run(go())
    assert opened == 4 and after_burst == 4
    assert after_idle == 1 and opened_in_all == 4  # the one request reused a connection


def _load_workers(pid: int) -> list[psutil.Process]:
    """The load worker processes (multiprocessing's spawned children) of process `pid`."""
    return [
        child
        for child in psutil.Process(pid).children()
        if any("spawn_main" in part for part in child.cmdline())
    ]


def test_a_load_worker_killed_mid_level_is_a_clear_error_and_keeps_what_was_measured(
    triton_server: Any,
) -> None:
    # Before: the WorkerError (a RuntimeError) escaped as a traceback, and the level measured
    # before it was not printed.
    cmd = [sys.executable, "-m", "analyzer.cli", "profile", "--url", triton_server.endpoint.url("grpc")]
    cmd += ["-m", "identity", "--shape", "INPUT0:16", "--concurrency", "2,4", "--workers", "2"]
    # Windows that never agree (1 %): every level runs up to four, so the second lasts up to 2 s.
    cmd += ["--window-s", "0.5", "--warmup-s", "0.3", "--max-windows", "4", "--stability", "1"]
    proc = subprocess.Popen(
        [*cmd, "--format", "json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT
    )
    assert proc.stderr is not None and proc.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + 60
    for line in proc.stderr:  # kill a worker once the second level is under way
        seen.append(line)
        if line.startswith("[2/2]") and "window  1:" in line:
            break
        assert time.monotonic() < deadline, "".join(seen)
    else:
        raise AssertionError("the profile ended before its second level:\n" + "".join(seen))
    victim = _load_workers(proc.pid)[0]
    victim.send_signal(signal.SIGKILL)
    stdout, stderr = proc.communicate(timeout=60)
    stderr = "".join(seen) + stderr
    assert "Traceback" not in stderr, stderr
    assert proc.returncode == 1, stderr
    assert f"(process {victim.pid}) was killed by SIGKILL while measuring concurrency 4" in stderr
    assert "the 1 level(s) measured before it are printed above" in stderr
    (row,) = json.loads(stdout)  # the first level, measured before the worker died
    assert row["load_level"] == 2 and row["requests"] > 0


def test_a_load_worker_killed_mid_sweep_stops_it_with_a_clear_error_and_a_resumable_run(
    tmp_path: Path, triton_server: Any
) -> None:
    # Levels of 2 and 4 in flight from two worker processes; the second level is cut short.
    spec = write_spec(
        tmp_path,
        model="identity",
        url=triton_server.endpoint.url("grpc"),
        inputs={"INPUT0": [16]},
        space={"instance_count": [1], "max_batch_size": [8], "max_queue_delay_us": [0, 100]},
        load={**FAST_LOAD, "min_level": 2, "max_level": 4, "workers": 2},
    )
    out = tmp_path / "out"
    proc = cli_process("sweep", spec, "--out", out)
    # The first level of the first config is done: kill a worker.
    seen = read_until(proc, lambda line: line.lstrip().startswith("concurrency 2:"), 120)
    assert proc.stderr is not None
    _load_workers(proc.pid)[0].send_signal(signal.SIGKILL)
    stderr = "".join(seen) + proc.stderr.read()
    proc.wait(timeout=60)
    assert "Traceback" not in stderr, stderr
    assert proc.returncode == 1, stderr
    (run,) = out.iterdir()
    assert "was killed by SIGKILL while measuring concurrency" in stderr
    assert f"the sweep stopped (results so far are in {run})" in stderr
    assert f"tritune sweep --resume {run}" in stderr
    # The level measured before the worker died is in the run, and the summary says why it ended.
    rows = pd.read_csv(run / "measurements.csv")
    assert list(rows["load_level"]) == [2]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["finished"] is False and summary["stopped_reason"] == "a load worker process died"
