"""One way to get a server to talk to, local or remote: `open_server` yields a ServerSession.

Local: find tritonserver, launch it on a model repository (never modified) on loopback.
Remote: check that something answers at the URL. Either way the caller gets the same object:
an endpoint, a control client, and (local only) the process, its log and its pid.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from analyzer.errors import ServerError, UsageError
from analyzer.load.clients import RequestSet
from analyzer.load.input_plan import InputPlan
from analyzer.load.inputs import TensorSpec, request_specs
from analyzer.load.requests import build_requests
from analyzer.server.control import ServerControl
from analyzer.server.discovery import cache_dir, find_tritonserver
from analyzer.server.endpoint import Endpoint, parse_url
from analyzer.server.local import LocalServer
from analyzer.server.originals import Originals


@dataclass
class ServerSession:
    """A server ready for use: its endpoint, a control client, and the local process if any."""

    endpoint: Endpoint
    protocol: str
    control: ServerControl
    local: LocalServer | None = None
    listener_pid: int | None = None  # a server given by URL that runs on this machine
    # A running server's originals record, once a sweep keeps one (analyzer.server.originals).
    originals: Originals | None = None

    @property
    def url(self) -> str:
        """HOST:PORT of the chosen protocol."""
        return self.endpoint.url(self.protocol)

    @property
    def pid(self) -> int | None:
        """The server's pid: ours when launched, found by its port when it runs on this machine."""
        return self.local.pid if self.local else self.listener_pid

    @property
    def log_path(self) -> Path | None:
        """The local server's log file (None for remote servers)."""
        return self.local.log_path if self.local else None

    def log_tail(self, lines: int = 12) -> str:
        """Last lines of the local server's log ('' for remote servers)."""
        return self.local.log_tail(lines) if self.local else ""

    def restart(self) -> None:
        """Kill and start the local server again (new ports unless pinned) with a new control
        client. Models are not loaded: the caller loads what it needs."""
        if self.local is None:
            raise ServerError("a remote server cannot be restarted by tritune")
        old = self.control
        self.local.stop(graceful=False)  # it is restarted because it is broken: no grace period
        self.endpoint = self.local.start()
        self.control = local_control(self.local, self.protocol, old.load_timeout_s)
        old.close()


def local_control(server: LocalServer, protocol: str, load_timeout_s: float) -> ServerControl:
    """The control client of a launched server (its log explains refused loads)."""
    assert server.endpoint is not None
    return ServerControl(
        server.endpoint,
        protocol,
        load_timeout_s=load_timeout_s,
        log_offset=server.log_offset,
        log_since=server.log_since,
    )


def listening_pid(host: str, port: int) -> int | None:
    """The pid of the process listening on a loopback `port`, so a server given by URL on this
    machine still gets CPU and memory figures (None for other hosts or when not permitted)."""
    try:
        if not ipaddress.ip_address(socket.gethostbyname(host)).is_loopback:
            return None
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
                return int(conn.pid)
    except (OSError, ValueError, psutil.Error):
        return None
    return None


@contextlib.contextmanager
def open_server(
    *,
    protocol: str = "grpc",
    url: str | None = None,
    model_repository: str | Path | None = None,
    log_path: str | Path | None = None,
    triton_server_path: str | None = None,
    server_port: int | None = None,
    metrics_port: int | None = None,
    startup_timeout_s: float = 60.0,
    load_timeout_s: float = 300.0,
) -> Iterator[ServerSession]:
    """Connect to `url`, or launch a local server on `model_repository`; stop it afterwards."""
    if (url is None) == (model_repository is None):
        raise UsageError("give exactly one of --url (a running server) or --model-repository (launch one)")
    if url is not None:
        endpoint = parse_url(url, protocol, metrics_port)
        control = ServerControl(endpoint, protocol, load_timeout_s=load_timeout_s)
        try:
            control.check_reachable()
            pid = listening_pid(endpoint.host, int(endpoint.url(protocol).rsplit(":", 1)[1]))
            yield ServerSession(endpoint, protocol, control, listener_pid=pid)
        finally:
            control.close()
        return
    assert model_repository is not None
    repo = Path(model_repository)
    if not repo.is_dir():
        raise UsageError(
            f"model repository {repo} does not exist or is not a directory",
            hint="pass the directory that holds <model>/config.pbtxt",
        )
    install = find_tritonserver(triton_server_path)
    # Logs go to the run directory or the cache, never beside the user's repository.
    log = (
        Path(log_path)
        if log_path
        else cache_dir() / "logs" / f"server-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    )
    server = LocalServer(install, repo, log, base_port=server_port, startup_timeout_s=startup_timeout_s)
    with server:
        assert server.endpoint is not None
        session = ServerSession(
            server.endpoint, protocol, local_control(server, protocol, load_timeout_s), server
        )
        try:
            yield session
        finally:
            session.control.close()


@dataclass(frozen=True)
class ModelInfo:
    """What the tool needs to know about a model to send it requests."""

    name: str
    metadata: dict[str, Any]
    config: dict[str, Any]
    specs: list[TensorSpec]  # variable dimensions (-1) left as they are when request data fills them
    requests: RequestSet  # what the load generator sends, checked against the model

    @property
    def max_batch_size(self) -> int:
        """The model's max_batch_size (0 = no batching)."""
        return int(self.config.get("max_batch_size", 0) or 0)


def prepare_model(
    session: ServerSession,
    model: str,
    shapes: dict[str, list[int]] | None,
    *,
    load: bool,
    plan: InputPlan | None = None,
    seed: int = 0,
) -> ModelInfo:
    """Make sure `model` is servable, describe its request tensors and build the requests to
    send (random data, or from `plan`): bad request data fails here, before any load.

    With `load` (local servers) the model is loaded first; otherwise it must already be ready.
    """
    control = session.control
    control.require_model(model)
    if load:
        control.load_model(model)
    control.require_ready(model)
    metadata = control.model_metadata(model)
    config = control.model_config(model)
    batched = int(config.get("max_batch_size", 0) or 0) > 0
    specs = request_specs(
        metadata, int(config.get("max_batch_size", 0) or 0), shapes, variable_ok=plan is not None
    )
    return ModelInfo(model, metadata, config, specs, build_requests(plan, specs, batched, seed))
