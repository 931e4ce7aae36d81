"""`tritune profile` against a real tritonserver: both loop modes, both protocols, batching,
overload, and the bad-input cases a server tells apart, each with its message and exit code
(those refused before any server is reached are in tests/unit/test_bad_input.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from analyzer.measure.monitor import GpuSampler
from tests.helpers import expect_error, run_cli

GPU = GpuSampler()  # what this host has: the rows must say the same
FAST = ["--window-s", "0.5", "--warmup-s", "0.3", "--max-windows", "5", "--quiet"]


def profile_rows(server: Any, *args: str, protocol: str = "grpc") -> list[dict[str, Any]]:
    url = server.endpoint.url(protocol)
    result = run_cli("profile", "--url", url, "--protocol", protocol, "--format", "json", *FAST, *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_closed_loop_numbers_are_sane(triton_server: Any, protocol: str) -> None:
    rows = profile_rows(triton_server, "-m", "demo_mlp", "--concurrency", "1,4", protocol=protocol)
    assert [r["load_level"] for r in rows] == [1, 4]
    for row in rows:
        assert row["load_mode"] == "concurrency"
        assert row["throughput_rps"] > 0
        assert 0 < row["p50_ms"] <= row["p90_ms"] <= row["p95_ms"] <= row["p99_ms"] <= row["max_ms"]
        assert row["errors"] == 0
        assert row["requests"] > 0
        assert row["server_requests"] > 0
        assert row["instance_count"] == 1 and row["max_batch_size"] == 32
        assert row["server_cpu_pct"] > 0  # psutil over the server's process tree
        if GPU.available:  # a GPU host: a utilisation, in percent
            assert 0 <= row["gpu_util_pct"] <= 100
        else:  # no GPU: absent, not zero
            assert row["gpu_util_pct"] is None


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_open_loop_numbers_are_sane(triton_server: Any, protocol: str) -> None:
    rows = profile_rows(triton_server, "-m", "demo_mlp", "--rate", "100", protocol=protocol)
    (row,) = rows
    assert row["load_mode"] == "rate"
    assert row["errors"] == 0
    assert 0 < row["p50_ms"] <= row["p99_ms"]
    # The server keeps up with 100/s, so what was offered is what was served (Poisson noise aside).
    assert row["offered_rps"] == pytest.approx(100, rel=0.35)
    assert row["throughput_rps"] == pytest.approx(row["offered_rps"], rel=0.35)


def test_dynamic_batching_batches_when_concurrency_exceeds_instances(triton_server: Any) -> None:
    (row,) = profile_rows(triton_server, "-m", "demo_mlp", "--concurrency", "8")
    assert row["instance_count"] == 1
    assert row["avg_batch_size"] > 1.0


def test_open_loop_latency_grows_past_capacity(triton_server: Any) -> None:
    # `sleepy` serves about 200 requests/s at most (5 ms each, one at a time, no batching).
    low, high = (
        profile_rows(
            triton_server, "-m", "sleepy", "--rate", rate, "--arrival", "constant", "--max-windows", "3"
        )[0]
        for rate in ("40", "400")
    )
    assert low["errors"] == 0 and high["errors"] == 0
    assert low["p50_ms"] < 50
    assert high["p50_ms"] > 5 * low["p50_ms"]
    assert high["throughput_rps"] < 0.8 * 400  # it could not keep up ...
    assert high["server_queue_ms"] > 10 * max(low["server_queue_ms"], 0.1)  # ... and requests queued


def test_csv_and_table_formats(triton_server: Any) -> None:
    url = triton_server.endpoint.url("grpc")
    csv_out = run_cli(
        "profile", "--url", url, "-m", "nobatch", "--concurrency", "2", "--format", "csv", *FAST
    )
    assert csv_out.exit_code == 0, csv_out.output
    header, row = csv_out.stdout.strip().splitlines()
    assert header.startswith(
        "config_id,instance_count,max_batch_size,max_queue_delay_us,load_mode,load_level"
    )
    assert row.startswith("current,1,0,,concurrency,2,")
    table = run_cli(
        "profile", "--url", url, "-m", "nobatch", "--concurrency", "1", "--budget-ms", "1000", *FAST
    )
    assert table.exit_code == 0
    assert "throughput_rps" in table.stdout and "concurrency" in table.stdout


def test_variable_input_with_shape(triton_server: Any) -> None:
    (row,) = profile_rows(triton_server, "-m", "identity", "--concurrency", "2", "--shape", "INPUT0:64")
    assert row["errors"] == 0 and row["throughput_rps"] > 0


def test_local_launch_from_model_repository(model_repo: Path) -> None:
    result = run_cli(
        "profile",
        "--model-repository",
        str(model_repo),
        "-m",
        "sleepy",
        "--concurrency",
        "1",
        "--format",
        "json",
        *FAST,
    )
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)
    assert row["errors"] == 0 and row["p50_ms"] >= 5.0  # the model sleeps 5 ms


# -- bad input ---------------------------------------------------------------------------------


def test_unknown_model_lists_what_exists(triton_server: Any) -> None:
    err = expect_error(2, "profile", "--url", triton_server.endpoint.url("grpc"), "-m", "nosuch", "--quiet")
    assert "model 'nosuch' not found" in err
    for name in ("demo_mlp", "identity", "sleepy"):
        assert name in err


def test_model_not_ready(triton_server: Any) -> None:
    err = expect_error(2, "profile", "--url", triton_server.endpoint.url("grpc"), "-m", "spare", "--quiet")
    assert "model 'spare' is not ready" in err


@pytest.mark.parametrize(
    "shape_args, message",
    [
        ([], "variable dimensions"),
        (["--shape", "NOPE:4"], "does not have; its inputs are: INPUT0"),
        (["--shape", "INPUT0:4,4"], "has 2 dimensions"),
        (["--shape", "INPUT0:x"], "whole numbers"),
    ],
)
def test_wrong_shapes(triton_server: Any, shape_args: list[str], message: str) -> None:
    err = expect_error(
        2,
        "profile",
        "--url",
        triton_server.endpoint.url("http"),
        "--protocol",
        "http",
        "-m",
        "identity",
        "--quiet",
        *shape_args,
    )
    assert message in err


def test_fixed_shape_conflict(triton_server: Any) -> None:
    err = expect_error(
        2,
        "profile",
        "--url",
        triton_server.endpoint.url("grpc"),
        "-m",
        "demo_mlp",
        "--shape",
        "INPUT0:128",
        "--quiet",
    )
    assert "fixed shape [256]" in err
