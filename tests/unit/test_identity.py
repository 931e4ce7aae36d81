"""Workers of one shared study must measure on the same kind of server."""

from __future__ import annotations

import pytest

from analyzer.errors import UsageError
from analyzer.store.identity import check_identity, server_identity


def test_the_identity_holds_version_and_this_machines_hardware_for_a_local_server() -> None:
    local = server_identity({"version": "2.50.0"}, local=True)
    assert local["triton_version"] == "2.50.0" and local["cores"] >= 1 and local["cpu"] and local["host"]
    assert isinstance(local["gpu"], str)  # 'none' without a GPU, its name with one
    remote = server_identity({"version": "2.50.0"}, local=False)
    assert set(remote) == {"triton_version", "host"}  # a remote server's hardware is not visible here


def test_a_different_server_is_refused_and_the_host_alone_is_not_a_difference() -> None:
    first = {"triton_version": "2.50.0", "gpu": "NVIDIA A100", "cpu": "x", "cores": 8, "host": "a"}
    check_identity("s", first, {**first, "host": "b"})
    with pytest.raises(UsageError) as exc:
        check_identity("s", first, {**first, "host": "b", "gpu": "NVIDIA T4"})
    assert "gpu: this worker 'NVIDIA T4', the study 'NVIDIA A100'" in str(exc.value)
    assert exc.value.exit_code == 2
    with pytest.raises(UsageError, match="triton_version"):
        check_identity("s", first, {**first, "triton_version": "2.49.0"})
