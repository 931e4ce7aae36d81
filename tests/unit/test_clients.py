"""The inference clients without a server: a refused connection is classified as unavailable.
(tests/integration/test_clients.py runs them against a real server.)"""

from __future__ import annotations

import asyncio

import pytest

from tests.builders import GOOD
from tests.helpers import free_port, one_request


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_connection_refused_is_unavailable(protocol: str) -> None:
    assert asyncio.run(one_request(protocol, f"127.0.0.1:{free_port()}", "identity", GOOD)) == "unavailable"
