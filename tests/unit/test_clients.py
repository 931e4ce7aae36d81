"""The inference clients without a server: a refused connection is classified as unavailable.
(tests/integration/test_clients.py runs them against a real server, with these helpers.)"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from analyzer.load.clients import make_client
from analyzer.load.generator import classify_error
from analyzer.load.inputs import TensorSpec
from tests.helpers import free_port

GOOD = [(TensorSpec("INPUT0", "FP32", (1, 4)), np.ones((1, 4), np.float32))]


async def _one(protocol: str, url: str, model: str, tensors: Any, timeout_s: float = 10.0) -> str:
    """Send one request; "ok", or the kind its error is classified as."""
    client = make_client(protocol, url, model, tensors, timeout_s=timeout_s)
    try:
        await client.infer()
        return "ok"
    except Exception as exc:  # noqa: BLE001 - the test looks at the classification
        return classify_error(exc)
    finally:
        await client.close()


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_connection_refused_is_unavailable(protocol: str) -> None:
    assert asyncio.run(_one(protocol, f"127.0.0.1:{free_port()}", "identity", GOOD)) == "unavailable"
