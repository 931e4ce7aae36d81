"""Bounded by design, on the real tritonserver: a load level that asks for more sockets than the
process may open, an HTTP client held to a connection cap, and a load worker process killed
mid-level. Each ends with a clear result or a clear error, never a traceback (the limits that
need no server are in tests/faults/test_limits.py)."""

from __future__ import annotations

import asyncio
import json
import resource
import subprocess
import sys
from typing import Any

import numpy as np
import pytest

from analyzer.limits import connection_budget
from analyzer.load.clients import HttpInferClient
from analyzer.load.inputs import TensorSpec
from tests.helpers import ROOT

pytestmark = pytest.mark.integration

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
