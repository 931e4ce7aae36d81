"""Which hardware and software a sweep's server is: workers of one shared study must measure on
the same kind, or their capacities cannot be compared.

Pure apart from reading this machine's CPU model and GPU name (for a server tritune launched
here; a remote server's are not visible, and are left out rather than guessed).
"""

from __future__ import annotations

import os
import platform
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from analyzer.errors import UsageError

IDENTITY_KEYS = ("triton_version", "gpu", "cpu", "cores")


def local_hardware() -> dict[str, Any]:
    """This machine's CPU model, core count and first GPU's name ('none' without one)."""
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = "none"
    try:
        import pynvml

        pynvml.nvmlInit()
        if pynvml.nvmlDeviceGetCount() > 0:
            name = pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(0))
            gpu = name.decode() if isinstance(name, bytes) else str(name)
    except Exception:  # noqa: BLE001 - no driver, no GPU: both mean none here
        gpu = "none"
    return {"gpu": gpu, "cpu": cpu, "cores": len(os.sched_getaffinity(0))}


def server_identity(metadata: Mapping[str, Any], local: bool) -> dict[str, Any]:
    """What must match between workers: Triton's version, and for a local server this
    machine's GPU, CPU model and cores. `host` is recorded, never compared."""
    identity: dict[str, Any] = {"triton_version": str(metadata.get("version", "unknown"))}
    if local:
        identity.update(local_hardware())
    identity["host"] = socket.gethostname()
    return identity


def worker_name() -> str:
    """How a shared study's rows and claims name this worker: its host (as server_identity
    records it) and process id."""
    import os

    return f"{socket.gethostname()}:{os.getpid()}"


def check_identity(study: str, first: Mapping[str, Any], mine: Mapping[str, Any]) -> None:
    """Refuse a worker whose server differs from the one the study started on (UsageError)."""
    differ = [k for k in IDENTITY_KEYS if k in first and k in mine and first[k] != mine[k]]
    if differ:
        detail = "; ".join(f"{k}: this worker {mine[k]!r}, the study {first[k]!r}" for k in differ)
        raise UsageError(
            f"study {study!r} was started on a different server ({first.get('host', '?')}): {detail}. "
            "Capacities measured on different hardware or Triton versions cannot be compared",
            hint="use one study per kind of server (another --study name)",
        )
