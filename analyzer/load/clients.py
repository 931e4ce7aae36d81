"""Inference clients for the load generator: one request's round trip, as cheaply as possible.

gRPC sends a ModelInferRequest serialized once, over prebuilt HTTP/2 frames (grpc_lean, with the
wire format in grpc_frames). HTTP uses a lean keep-alive HTTP/1.1 client: the request body is
built once by tritonclient (`generate_request_body`, binary tensor extension) and responses are
parsed by httptools. The reason is measured, not taste: on this project's 2-core machines the
client shares the CPUs with the server, and per request tritonclient's aiohttp-based client
spent ~360-410 us of CPU and gRPC ~300-430 us, against ~50-120 us here (numbers in the README);
a heavy client steals the CPU the server is being measured with.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import quote

import httptools
import numpy as np

from analyzer.limits import connection_budget
from analyzer.load.inputs import TensorSpec

Tensors = list[tuple[TensorSpec, np.ndarray]]


@dataclass(frozen=True)
class RequestSet:
    """The requests a client sends, each built once: in turn (`cycle`) or drawn at random
    (`sample`, seeded). Each request's TensorSpecs carry its own concrete shapes."""

    requests: tuple[Tensors, ...]
    order: str = "cycle"
    seed: int = 0


def as_request_set(tensors: Tensors | RequestSet) -> RequestSet:
    """A request set from one request's tensors (or the set itself)."""
    return tensors if isinstance(tensors, RequestSet) else RequestSet((list(tensors),))


def picker(items: Sequence[Any], order: str, seed: int) -> Callable[[], Any]:
    """The next item to send each call: the only one, the next in turn, or a random one."""
    if len(items) == 1:
        only = items[0]
        return lambda: only
    if order == "sample":
        rng = random.Random(seed)
        return lambda: items[rng.randrange(len(items))]
    return itertools.cycle(items).__next__


class ServerRequestError(Exception):
    """The server answered a request with an error status."""

    def __init__(self, status: int | str, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self._status = status

    def status(self) -> str:
        """The status code, like tritonclient's InferenceServerException.status()."""
        return str(self._status)


def _grpc_method(name: str) -> str:
    """The gRPC path of one GRPCInferenceService method, from the service definitions that
    tritonclient ships (never a hand-copied .proto)."""
    from tritonclient.grpc import service_pb2

    method = service_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"].methods_by_name[name]
    return f"/{method.containing_service.full_name}/{method.name}"


def infer_request_bytes(model: str, tensors: Tensors) -> bytes:
    """One serialized ModelInferRequest carrying `tensors` as raw contents (built once, sent
    as bytes for every request)."""
    from tritonclient.grpc import service_pb2
    from tritonclient.utils import serialize_byte_tensor

    request = service_pb2.ModelInferRequest(model_name=model)
    for spec, data in tensors:
        tensor = request.inputs.add()
        tensor.name = spec.name
        tensor.datatype = spec.datatype
        tensor.shape.extend(spec.shape)
        if spec.datatype == "BYTES":
            # As tritonclient's InferInput does: the serialized tensor is one bytes item.
            raw = serialize_byte_tensor(np.asarray(data, dtype=np.object_))
            request.raw_input_contents.append(raw.item() if raw is not None and raw.size > 0 else b"")
        else:
            request.raw_input_contents.append(np.ascontiguousarray(data).tobytes())
    return request.SerializeToString()


class GrpcInferClient:
    """Requests over gRPC through the lean HTTP/2 client (analyzer.load.grpc_lean): each request
    is serialized once and sent as bytes; only the call's grpc-status is read back."""

    def __init__(self, url: str, model: str, tensors: Tensors | RequestSet, timeout_s: float) -> None:
        from analyzer.load.grpc_frames import grpc_message
        from analyzer.load.grpc_lean import LeanGrpcChannel

        host, _, port = url.rpartition(":")
        self.model = model
        self.timeout_s = timeout_s
        requests = as_request_set(tensors)
        self._channel = LeanGrpcChannel(host.strip("[]"), int(port), _grpc_method("ModelInfer"), timeout_s)
        self._next = picker(
            [grpc_message(infer_request_bytes(model, t)) for t in requests.requests],
            requests.order,
            requests.seed,
        )

    @property
    def connection_cap(self) -> None:
        """No cap on requests in flight: HTTP/2 carries many on each connection."""
        return None

    async def infer(self) -> None:
        """One request; raises on any failure."""
        from analyzer.load.grpc_frames import GrpcStatusError

        try:
            await self._channel.call(self._next())
        except GrpcStatusError as exc:
            raise ServerRequestError(exc.code, exc.message) from None

    async def close(self) -> None:
        """Close the connections."""
        await self._channel.close()


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection carrying one request at a time."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.body: list[bytes] = []
        self.closed = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # create_connection: a stream transport

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ConnectionError(f"bad HTTP response: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(ConnectionResetError("connection closed by the server"))

    # httptools callbacks
    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        waiter, self.waiter = self.waiter, None
        status = self.parser.get_status_code()
        body = b"".join(self.body) if status != 200 else b""
        self.body = []
        if waiter is not None and not waiter.done():
            waiter.set_result((status, body))

    def _fail(self, exc: Exception) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class HttpInferClient:
    """Requests over HTTP/1.1 keep-alive connections: a pool of at most `max_connections`
    (default: this process's connection budget, analyzer.limits), one request per connection at
    a time. A request that finds every connection busy at the cap waits for the next one to be
    free (in order) instead of opening another socket; idle connections unused for
    IDLE_CLOSE_S are closed, so a pool that grew for a high level shrinks at a lower one."""

    IDLE_CLOSE_S = 2.0  # an idle connection unused this long is closed (checked as requests end)

    def __init__(
        self,
        url: str,
        model: str,
        tensors: Tensors | RequestSet,
        timeout_s: float,
        max_connections: int | None = None,
    ) -> None:
        host, _, port = url.rpartition(":")
        self.host, self.port = host.strip("[]"), int(port)
        self.timeout_s = timeout_s
        self.max_connections = max(1, max_connections if max_connections is not None else connection_budget())
        requests = as_request_set(tensors)
        self._next = picker(
            [_http_request(url, model, t) for t in requests.requests], requests.order, requests.seed
        )
        # Idle connections, most recently used last (taken from that end, so the ones at the
        # other end are the least recently used: the first to close).
        self._idle: collections.deque[tuple[float, _Connection]] = collections.deque()
        self._all: set[_Connection] = set()
        self._opening = 0  # connections being opened (they count towards the cap)
        self._waiters: collections.deque[asyncio.Future[_Connection | None]] = collections.deque()
        self._swept = 0.0
        self.opened = 0  # connections opened so far

    @property
    def connection_cap(self) -> int:
        """The most requests this client can have in flight: one per connection."""
        return self.max_connections

    @property
    def connections(self) -> int:
        """Connections open now (busy and idle)."""
        return len(self._all)

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        self._opening += 1
        try:
            _, conn = await loop.create_connection(_Connection, self.host, self.port)
        finally:
            self._opening -= 1
        self.opened += 1
        self._all.add(conn)
        return conn

    async def _acquire(self) -> _Connection:
        """An idle connection, a new one while under the cap, or the next one released."""
        while self._idle:
            _, candidate = self._idle.pop()
            if not candidate.closed:
                return candidate
            self._all.discard(candidate)
        if len(self._all) + self._opening < self.max_connections:
            try:
                return await self._connect()
            except BaseException:
                self._wake_one()  # a slot is free after all: the next waiter may open it
                raise
        waiter: asyncio.Future[_Connection | None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            conn = await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self._release(waiter.result())  # handed over as we were cancelled: pass it on
            raise
        # None: a connection was dropped, so there is room to open one.
        return conn if conn is not None else await self._acquire()

    def _release(self, conn: _Connection | None) -> None:
        """Hand a connection back (None: one was dropped, making room for a new one)."""
        if conn is not None and conn.closed:  # the server closed it: its slot is free
            self._all.discard(conn)
            conn = None
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        if conn is not None:
            now = asyncio.get_running_loop().time()
            self._idle.append((now, conn))
            if now - self._swept >= self.IDLE_CLOSE_S / 2:
                self._swept = now
                self.close_idle(older_than_s=self.IDLE_CLOSE_S)

    def _wake_one(self) -> None:
        self._release(None)

    def close_idle(self, keep: int = 0, older_than_s: float | None = None) -> int:
        """Close idle connections, least recently used first: all but `keep`, or (with
        `older_than_s`) only those unused that long. Returns how many were closed."""
        now = asyncio.get_running_loop().time() if older_than_s is not None else 0.0
        closed = 0
        while len(self._idle) > keep:
            used, conn = self._idle[0]
            if older_than_s is not None and now - used < older_than_s:
                break
            self._idle.popleft()
            conn.close()
            self._all.discard(conn)
            closed += 1
        return closed

    async def infer(self) -> None:
        """One request; raises on any failure (timeouts as asyncio.TimeoutError)."""
        conn = await self._acquire()
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[tuple[int, bytes]] = loop.create_future()
        conn.waiter = waiter
        assert conn.transport is not None
        conn.transport.write(self._next())
        timer = loop.call_later(self.timeout_s, _expire, waiter)
        try:
            status, body = await waiter
        except BaseException:
            # Timed out, cancelled or broken: the connection's state is unknown, never reuse it.
            conn.close()
            self._all.discard(conn)
            self._wake_one()
            raise
        finally:
            timer.cancel()
        self._release(conn)
        if status != 200:
            raise ServerRequestError(status, _error_text(body))

    async def close(self) -> None:
        """Close every connection."""
        for conn in list(self._all):
            conn.close()
        self._all.clear()
        self._idle.clear()
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(ConnectionError("the client was closed"))
        self._waiters.clear()


def _http_request(url: str, model: str, tensors: Tensors) -> bytes:
    """One whole HTTP/1.1 inference request (head and binary-tensor body), built once."""
    import tritonclient.http as httpmod

    inputs = []
    for spec, data in tensors:
        tensor = httpmod.InferInput(spec.name, list(spec.shape), spec.datatype)
        tensor.set_data_from_numpy(data, binary_data=True)
        inputs.append(tensor)
    body, json_size = httpmod.InferenceServerClient.generate_request_body(inputs)
    head = [
        f"POST /v2/models/{quote(model)}/infer HTTP/1.1",
        f"Host: {url}",
        "Content-Type: application/octet-stream",
        f"Content-Length: {len(body)}",
    ]
    if json_size is not None:
        head.append(f"Inference-Header-Content-Length: {json_size}")
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


def _expire(waiter: asyncio.Future[Any]) -> None:
    if not waiter.done():
        waiter.set_exception(asyncio.TimeoutError())


def _error_text(body: bytes) -> str:
    try:
        return str(json.loads(body).get("error", body[:200]))
    except (ValueError, AttributeError):
        return body[:200].decode("utf-8", "replace")


def make_client(
    protocol: str,
    url: str,
    model: str,
    tensors: Tensors | RequestSet,
    timeout_s: float = 30.0,
    max_connections: int | None = None,
) -> GrpcInferClient | HttpInferClient:
    """The inference client for `protocol` ("grpc" or "http"); `max_connections` caps an HTTP
    client's sockets (default: this process's connection budget, analyzer.limits)."""
    if protocol == "grpc":
        return GrpcInferClient(url, model, tensors, timeout_s)
    if protocol == "http":
        return HttpInferClient(url, model, tensors, timeout_s, max_connections)
    raise ValueError(f"unknown protocol {protocol!r}")
