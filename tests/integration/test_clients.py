"""The inference clients against a real server: success, server errors and timeouts. (A refused
connection needs no server: tests/unit/test_clients.py.)"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from analyzer.load.clients import make_client
from analyzer.load.generator import LoadRun, classify_error
from analyzer.load.inputs import TensorSpec
from analyzer.load.shapes import LoadSpec
from tests.builders import GOOD
from tests.helpers import one_request

# Rank 3 for a model whose input is [batch, -1]: the server must refuse it.
BAD = [(TensorSpec("INPUT0", "FP32", (1, 2, 2)), np.ones((1, 2, 2), np.float32))]


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_success_and_server_error(triton_server: Any, protocol: str) -> None:
    url = triton_server.endpoint.url(protocol)
    assert asyncio.run(one_request(protocol, url, "identity", GOOD)) == "ok"
    kind = asyncio.run(one_request(protocol, url, "identity", BAD))
    assert kind.startswith("server_"), kind
    missing = asyncio.run(one_request(protocol, url, "no_such_model", GOOD))
    assert missing.startswith("server_"), missing


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_timeouts_are_recorded_as_timeouts(triton_server: Any, protocol: str) -> None:
    url = triton_server.endpoint.url(protocol)
    tensors = [(TensorSpec("INPUT0", "FP32", (4,)), np.ones(4, np.float32))]
    # `sleepy` takes 5 ms; a 1 ms deadline must expire.
    assert asyncio.run(one_request(protocol, url, "sleepy", tensors, timeout_s=0.001)) == "timeout"


def _offer(
    protocol: str, url: str, load: LoadSpec, seconds: float, before_close: Any = None
) -> tuple[Any, Any]:
    """Offer `load` for `seconds` through one client: (all records, `before_close(client)`)."""

    async def go() -> tuple[Any, Any]:
        client = make_client(protocol, url, "identity", GOOD)
        try:
            run = LoadRun(client.infer, load, max_duration_s=seconds)
            run.start()
            await asyncio.sleep(seconds)
            records = await run.stop(10.0)
            return records, before_close(client) if before_close else None
        finally:
            await client.close()

    return asyncio.run(go())


def test_http_open_loop_reuses_connections(triton_server: Any) -> None:
    url = triton_server.endpoint.url("http")
    # Connections alive at the end, counted before the client closes them.
    records, opened = _offer("http", url, LoadSpec("rate", 200), 0.5, lambda client: len(client._all))
    assert len(records) > 50 and np.all(records.ok)
    assert opened < len(records) / 5  # idle connections were reused, not one per request


def test_grpc_large_request_crosses_flow_control_windows(triton_server: Any) -> None:
    """2 MB is far past HTTP/2's 64 KiB initial window and 16 KiB frames: the request must go
    out in many DATA frames as the server's WINDOW_UPDATEs arrive, and still succeed, on
    several streams at once."""
    url = triton_server.endpoint.url("grpc")
    big = [(TensorSpec("INPUT0", "FP32", (1, 512 * 1024)), np.arange(512 * 1024, dtype=np.float32)[None, :])]

    async def go() -> list[str]:
        client = make_client("grpc", url, "identity", big, timeout_s=30)
        try:
            outcomes = await asyncio.gather(*[client.infer() for _ in range(6)], return_exceptions=True)
        finally:
            await client.close()
        return ["ok" if o is None else classify_error(o) for o in outcomes]

    assert asyncio.run(go()) == ["ok"] * 6


def test_grpc_many_streams_in_flight_on_one_client(triton_server: Any) -> None:
    """A closed loop of 200 in flight: every request answered, none lost between streams."""
    records, _ = _offer("grpc", triton_server.endpoint.url("grpc"), LoadSpec("concurrency", 200), 0.8)
    assert len(records) > 400 and np.all(records.ok), records.kinds


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_int_and_bytes_inputs_are_accepted(triton_server: Any, protocol: str) -> None:
    """BYTES tensors travel in Triton's length-prefixed layout on both paths."""
    url = triton_server.endpoint.url(protocol)
    tensors = [
        (TensorSpec("COUNT", "INT32", (3,)), np.array([1, 2, 3], np.int32)),
        (TensorSpec("TEXT", "BYTES", (2,)), np.array([b"ab", b"cde"], dtype=np.object_)),
    ]
    assert asyncio.run(one_request(protocol, url, "nobatch", tensors)) == "ok"
