"""Load from several processes: each worker has its own event loop and connections.

One Python event loop sends at most a few thousand requests a second; a GPU serves tens of
thousands. `LoadGenerator` runs a level in this process (one worker) or splits it across worker
processes (analyzer.load.split), which all begin at one common moment. The parent reads each
worker's new records at every window boundary as whole arrays through a pipe (never one object
per request) and merges them, so windows, percentiles and verdicts see every request exactly as
they do from one process. Live counts (finished, in flight) come through shared memory, so the
parent can poll them without asking the workers.

Workers are started with `spawn` (a fork of a process that holds gRPC or server threads is not
safe), once, on the first level that needs them, and reused for every level and config after.
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing as mp
import os
import signal
import traceback
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import Any

import numpy as np
import psutil

from analyzer.errors import MeasurementError
from analyzer.limits import connection_budget, raise_fd_limit
from analyzer.load.clients import GrpcInferClient, HttpInferClient, RequestSet, Tensors, make_client
from analyzer.load.generator import CpuSample, LoadRun, Records, now
from analyzer.load.shapes import LoadSpec
from analyzer.load.split import active_workers, auto_workers, split_concurrency

START_LEAD_S = 0.1  # the common start is this far ahead, so every worker has the order by then
COUNT_PERIOD_S = 0.01  # how often a worker publishes its live counts


class WorkerError(MeasurementError):
    """A load worker process failed or died (exit 1): the level it was sending cannot be
    measured. What was measured before it is kept (the callers say where)."""


def available_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


# -- the worker process -------------------------------------------------------------------------
def _worker_main(conn: Connection, index: int, counts: Any) -> None:
    """Entry point of one worker process: serve the parent's orders until told to close."""
    # Ctrl-C, and a closed terminal's SIGHUP or a SIGTERM sent to the whole process group, are
    # the parent's to handle: it ends the window cleanly and closes the workers (a worker whose
    # parent is gone sees EOF on its pipe and ends).
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    raise_fd_limit()  # a worker's sockets count against its own open-file limit
    asyncio.run(_Worker(conn, index, counts).serve())


class _Worker:
    def __init__(self, conn: Connection, index: int, counts: Any) -> None:
        self.conn = conn
        self.index = index
        self.counts = counts
        self.client: GrpcInferClient | HttpInferClient | None = None
        self.run: LoadRun | None = None
        self.sent_upto = 0  # records already handed to the parent

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        orders: asyncio.Queue[Any] = asyncio.Queue()

        def readable() -> None:
            try:
                orders.put_nowait(self.conn.recv())
            except EOFError:  # the parent is gone
                orders.put_nowait(("close",))
                loop.remove_reader(self.conn.fileno())

        loop.add_reader(self.conn.fileno(), readable)
        publisher = asyncio.ensure_future(self._publish())
        try:
            while True:
                order = await orders.get()
                try:
                    reply = await self._handle(order)
                except Exception:  # noqa: BLE001 - the parent raises it, with the worker's traceback
                    reply = ("error", traceback.format_exc())
                if order[0] == "close":
                    break
                if reply is not None:
                    self.conn.send(reply)
        finally:
            publisher.cancel()
            if self.client is not None:
                await self.client.close()

    async def _publish(self) -> None:
        i = 2 * self.index
        while True:
            run = self.run
            self.counts[i] = run.finished if run else 0
            self.counts[i + 1] = run.inflight if run else 0
            await asyncio.sleep(COUNT_PERIOD_S)

    async def _handle(self, order: tuple[Any, ...]) -> Any:
        kind = order[0]
        if kind == "client":
            _, protocol, url, model, tensors, timeout_s, max_connections = order
            if self.client is not None:
                await self.client.close()
            self.client = make_client(protocol, url, model, tensors, timeout_s, max_connections)
            return ("ok", self.client.connection_cap)
        if kind == "trim":
            if isinstance(self.client, HttpInferClient):
                self.client.close_idle()
            return None
        if kind == "start":
            _, load, workers, at, horizon, max_inflight = order
            assert self.client is not None
            self.run = LoadRun(
                self.client.infer,
                load,
                max_duration_s=horizon,
                max_inflight=max_inflight,
                share=(self.index, workers),
                slots=self.client.connection_cap,
            )
            self.sent_upto = 0
            self.run.start(at)
            return None  # no reply: the start must not wait on a round trip
        if kind == "observe":
            assert self.run is not None
            pending, records = self.run.pending(), self._new_records()
            return ("records", pending, records, self.run.inflight_limit)
        if kind == "stop":
            assert self.run is not None
            await self.run.stop(order[1])
            records, limit = self._new_records(), self.run.inflight_limit
            self.run = None
            return ("records", np.empty((0, 2)), records, limit)
        if kind == "close":
            return None
        raise ValueError(f"unknown order {kind!r}")

    def _new_records(self) -> Records:
        assert self.run is not None
        records = self.run.recorder.snapshot(self.sent_upto)
        self.sent_upto += len(records)
        return records


# -- the parent's side --------------------------------------------------------------------------
class WorkerPool:
    """Worker processes, started once and reused for every level."""

    def __init__(self, size: int) -> None:
        ctx = mp.get_context("spawn")
        self.size = size
        self.counts = ctx.RawArray("q", 2 * size)  # per worker: finished, in flight
        self._conns: list[Connection] = []
        self._procs: list[Any] = []
        self._ps: list[psutil.Process] = []
        for i in range(size):
            parent, child = ctx.Pipe()
            proc = ctx.Process(
                target=_worker_main, args=(child, i, self.counts), daemon=True, name=f"tritune-load-{i}"
            )
            proc.start()
            child.close()
            self._conns.append(parent)
            self._procs.append(proc)
            self._ps.append(psutil.Process(proc.pid))
        self._client: tuple[Any, ...] | None = None
        self.caps: list[int | None] = [None] * size  # each worker's client: its requests in flight at most

    def send(self, index: int, order: tuple[Any, ...]) -> None:
        """Send an order to one worker."""
        try:
            self._conns[index].send(order)
        except (BrokenPipeError, OSError):
            raise WorkerError(f"load worker {index} {self.exit_text(index)}") from None

    def receive(self, index: int, timeout_s: float = 120.0) -> Any:
        """The reply of one worker (raises WorkerError on an error reply or a dead worker)."""
        conn = self._conns[index]
        if not conn.poll(timeout_s):
            raise WorkerError(f"load worker {index} did not answer in {timeout_s:g} s")
        try:
            reply = conn.recv()
        except (EOFError, OSError):
            raise WorkerError(f"load worker {index} {self.exit_text(index)}") from None
        if reply[0] == "error":
            # The worker's traceback is for a bug report; the user gets its last line.
            last = [line for line in str(reply[1]).splitlines() if line.strip()][-1:] or ["(no message)"]
            raise WorkerError(f"load worker {index} failed: {last[0].strip()}")
        return reply

    def exit_text(self, index: int) -> str:
        """How worker `index` ended, in words (a pipe broke: it died, or is dying)."""
        proc = self._procs[index]
        proc.join(timeout=1.0)  # its exit code is known only once it is reaped
        code = proc.exitcode
        if code is None:
            return f"(process {proc.pid}) stopped answering"
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            return f"(process {proc.pid}) was killed by {name}"
        return f"(process {proc.pid}) exited with code {code}"

    def use_client(
        self,
        protocol: str,
        url: str,
        model: str,
        tensors: Tensors | RequestSet,
        timeout_s: float,
        max_connections: int | None = None,
    ) -> None:
        """Have every worker (re)build its inference client, when it changed; each may open
        `max_connections` (default: its share of this process's connection budget)."""
        if max_connections is None:
            max_connections = connection_budget(self.size)
        key = (protocol, url, model, id(tensors), timeout_s, max_connections)
        if key == self._client:
            return
        for i in range(self.size):
            self.send(i, ("client", protocol, url, model, tensors, timeout_s, max_connections))
        for i in range(self.size):
            self.caps[i] = self.receive(i)[1]
        self._client = key

    def trim(self) -> None:
        """Have every worker close its idle connections (a level is sent from elsewhere)."""
        if self._client is not None:
            for i in range(self.size):
                self.send(i, ("trim",))

    def cpu(self, indices: Sequence[int]) -> CpuSample:
        """CPU seconds so far of the given workers, and of each one's event-loop (main) thread."""
        total, loops = 0.0, []
        for i in indices:
            proc = self._ps[i]
            try:
                times = proc.cpu_times()
                total += times.user + times.system
                main = [t for t in proc.threads() if t.id == proc.pid]
                loops.append(main[0].user_time + main[0].system_time if main else times.user + times.system)
            except psutil.Error:
                loops.append(math.nan)
        return CpuSample(total, tuple(loops), now())

    def close(self) -> None:
        """Stop every worker."""
        for i in range(self.size):
            try:
                self._conns[i].send(("close",))
            except (BrokenPipeError, OSError):
                pass
        for proc in self._procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=5)
        for conn in self._conns:
            conn.close()


class PoolRun:
    """One load level offered by several workers; the same interface as LoadRun."""

    def __init__(
        self, pool: WorkerPool, load: LoadSpec, workers: int, max_duration_s: float, max_inflight: int
    ) -> None:
        self.pool = pool
        self.load = load
        self.indices = list(range(workers))
        self.max_duration_s = max_duration_s
        self.max_inflight = max(1, math.ceil(max_inflight / workers))
        self._closed_limit = _pool_limit(load, [pool.caps[i] for i in self.indices])
        self._limits: dict[int, int | None] = {}  # each worker's last reported inflight_limit
        self.started_at = math.nan
        self._parts: list[list[Records]] = [[] for _ in self.indices]

    @property
    def workers(self) -> int:
        """Processes offering this load."""
        return len(self.indices)

    def start(self, at: float | None = None) -> None:
        """Order every worker to begin at one common moment."""
        self.started_at = (now() + START_LEAD_S) if at is None else at
        for i in self.indices:
            self.pool.counts[2 * i] = self.pool.counts[2 * i + 1] = 0
            self.pool.send(
                i,
                (
                    "start",
                    self.load,
                    len(self.indices),
                    self.started_at,
                    self.max_duration_s,
                    self.max_inflight,
                ),
            )

    @property
    def finished(self) -> int:
        """Requests ended so far, all workers (as last published, at most 10 ms old)."""
        return sum(self.pool.counts[2 * i] for i in self.indices)

    @property
    def inflight(self) -> int:
        """Requests in flight, all workers (as last published)."""
        return sum(self.pool.counts[2 * i + 1] for i in self.indices)

    def _collect(self, order: tuple[Any, ...]) -> np.ndarray:
        for i in self.indices:
            self.pool.send(i, order)
        pending = []
        for i in self.indices:
            _, waiting, records, self._limits[i] = self.pool.receive(i)
            pending.append(waiting)
            if len(records):
                self._parts[i].append(records)
        return np.concatenate(pending) if pending else np.empty((0, 2))

    @property
    def inflight_limit(self) -> int | None:
        """The workers' connections when they capped the requests in flight (as LoadRun's:
        all workers' connections together), else None."""
        if self.load.closed_loop:
            return self._closed_limit
        if not any(limit is not None for limit in self._limits.values()):
            return None
        return sum(cap or 0 for cap in (self.pool.caps[i] for i in self.indices))

    def _merged(self) -> Records:
        return Records.merge([part for parts in self._parts for part in parts])

    def observe(self) -> tuple[np.ndarray, Records]:
        """The requests in flight ((scheduled, sent) rows) and the merged records so far."""
        pending = self._collect(("observe",))
        return pending, self._merged()

    def snapshot(self) -> Records:
        """The merged records so far."""
        return self.observe()[1]

    def cpu(self) -> CpuSample:
        """CPU used so far by this run's workers."""
        return self.pool.cpu(self.indices)

    async def stop(self, drain_s: float) -> Records:
        """Stop every worker, wait for their in-flight requests (up to `drain_s`), merge all."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._collect, ("stop", drain_s))
        return self._merged()


def _pool_limit(load: LoadSpec, caps: Sequence[int | None]) -> int | None:
    """The most requests a closed loop split over workers with these caps can keep in flight,
    when that is fewer than it asks for (None: it can keep them all)."""
    if not load.closed_loop:
        return None
    shares = split_concurrency(int(load.level), len(caps))
    kept = [share if cap is None else min(share, cap) for share, cap in zip(shares, caps)]
    return sum(kept) if sum(kept) < sum(shares) else None


class LoadGenerator:
    """Offers load levels with one client in this process, or split over worker processes.

    `workers` is a number, or None for automatic: per level, as many as the load asked for needs
    (analyzer.load.split.auto_workers), at most one per core, or per two cores when the server
    runs on this machine (`local_server`). One worker runs in this process.

    `connections` caps the sockets this generator opens, all its processes together (default:
    the connection budget, analyzer.limits.connection_budget); several generators in one
    process (several models on one server) share the budget this way.
    """

    def __init__(
        self,
        protocol: str,
        url: str,
        model: str,
        tensors: Tensors | RequestSet,
        *,
        timeout_s: float = 30.0,
        workers: int | None = None,
        local_server: bool = False,
        connections: int | None = None,
    ) -> None:
        self.protocol, self.url, self.model = protocol, url, model
        self.connections = connections
        self.tensors = tensors
        self.timeout_s = timeout_s
        self.workers = workers
        self.local_server = local_server
        self.cores = available_cores()
        self._client: GrpcInferClient | HttpInferClient | None = None
        self._pool: WorkerPool | None = None

    @classmethod
    def in_process(cls, client: GrpcInferClient | HttpInferClient) -> LoadGenerator:
        """A generator that sends every level through this one client, in this process (the
        caller owns the client and closes it)."""
        gen = cls("", "", "", [], workers=1)
        gen._client = client
        return gen

    @property
    def client(self) -> GrpcInferClient | HttpInferClient:
        """The in-process client (made in the running event loop on first use)."""
        if self._client is None:
            budget = self.connections if self.connections is not None else connection_budget()
            self._client = make_client(
                self.protocol, self.url, self.model, self.tensors, self.timeout_s, max_connections=budget
            )
        return self._client

    def workers_for(self, load: LoadSpec) -> int:
        """How many workers offer `load`."""
        wanted = (
            self.workers if self.workers is not None else auto_workers(load, self.cores, self.local_server)
        )
        return active_workers(load, wanted)

    def run(self, load: LoadSpec, *, max_duration_s: float, max_inflight: int = 4096) -> LoadRun | PoolRun:
        """A run of one level, not yet started."""
        n = self.workers_for(load)
        # The side that sends this level gets the connections; the other's idle ones close.
        if n == 1:
            if self._pool is not None:
                self._pool.trim()
            client = self.client
            return LoadRun(
                client.infer,
                load,
                max_duration_s=max_duration_s,
                max_inflight=max_inflight,
                slots=client.connection_cap,
            )
        if isinstance(self._client, HttpInferClient):
            self._client.close_idle()
        if self._pool is None or self._pool.size < n:
            if self._pool is not None:
                self._pool.close()
            self._pool = WorkerPool(max(n, self.workers or 0))
        share = None if self.connections is None else max(1, self.connections // self._pool.size)
        self._pool.use_client(self.protocol, self.url, self.model, self.tensors, self.timeout_s, share)
        return PoolRun(self._pool, load, n, max_duration_s, max_inflight)

    async def close(self) -> None:
        """Close the in-process client and stop the workers."""
        if self._client is not None:
            await self._client.close()
            self._client = None
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await asyncio.get_running_loop().run_in_executor(None, pool.close)
