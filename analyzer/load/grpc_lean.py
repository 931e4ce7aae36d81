"""A lean gRPC client for one unary method: prebuilt HTTP/2 frames over an asyncio connection.

Why not grpc.aio or h2: the load generator shares the CPUs with the server it measures, so each
microsecond of client CPU per request is taken from the server. Measured on this project's
2-core machines (identity model, 8 in flight, `benchmarks/loadgen_vs_perf_analyzer.py`'s
client-CPU step): tritonclient's aio client 295-308 us per request, grpc.aio sending prebuilt
request bytes 258-316 us, the h2 library 358-417 us, and the lean HTTP/1.1 client 86-99 us.

Everything that is the same for every request is encoded once: the serialized
ModelInferRequest (built from tritonclient's service definitions), its 5-byte gRPC message
prefix and the HPACK header block (both from analyzer.load.grpc_frames, the wire format). Per
request the client patches a stream id into two frame headers. Per response it decodes header
blocks with `hpack` (the server's dynamic table must be followed) and reads only `grpc-status`
and `grpc-message`; the response message itself is never parsed. This module is the
connection: flow control, SETTINGS, PING, GOAWAY and RST_STREAM are handled as RFC 9113
requires, and a pool opens another connection when the server's MAX_CONCURRENT_STREAMS is
reached.
"""

from __future__ import annotations

import asyncio
import struct
from typing import Any, cast

import hpack

from analyzer.load.grpc_frames import (
    ACK,
    CANCEL,
    CONTINUATION,
    DATA,
    END_HEADERS,
    END_STREAM,
    GOAWAY,
    HEADERS,
    MAX_WINDOW,
    PING,
    PREFACE,
    RST_STREAM,
    SETTINGS,
    SETTINGS_INITIAL_WINDOW_SIZE,
    SETTINGS_MAX_CONCURRENT_STREAMS,
    SETTINGS_MAX_FRAME_SIZE,
    STATUS_NAMES,
    WINDOW_UPDATE,
    GrpcStatusError,
    frame,
    header_block,
    strip_headers,
)


class _Call:
    """One stream's state: its waiter, unsent request bytes and the window to send them."""

    __slots__ = ("message", "pending", "status", "timer", "waiter", "window")

    def __init__(self, waiter: asyncio.Future[None], pending: memoryview, window: int) -> None:
        self.waiter = waiter
        self.pending = pending
        self.window = window
        self.status: int | None = None
        self.message = ""
        self.timer: asyncio.TimerHandle | None = None


class H2Connection(asyncio.Protocol):
    """One HTTP/2 connection carrying many concurrent unary calls of one method."""

    def __init__(self, headers: bytes) -> None:
        self.headers = headers
        self.transport: asyncio.Transport | None = None
        self.decoder = hpack.Decoder()
        self.calls: dict[int, _Call] = {}
        self.next_stream = 1
        self.closed = False
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # Peer settings (RFC defaults until its SETTINGS frame arrives).
        self.max_streams = 2**31
        self.max_frame = 16384
        self.initial_window = 65535
        self.send_window = 65535  # connection-level window for what we send
        self.received = 0  # bytes received since our last connection WINDOW_UPDATE
        self._buffer = b""
        self._block: list[bytes] = []  # a header block still waiting for its CONTINUATION frames
        self._block_stream = 0
        self._block_end = False
        self._blocked: list[int] = []  # streams with request bytes waiting for window

    # -- asyncio.Protocol ------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # create_connection: a stream transport
        # Let the server send without ever waiting on us: the largest stream window, and the
        # connection window raised to match (replenished in _on_data).
        settings = struct.pack(">HI", SETTINGS_INITIAL_WINDOW_SIZE, MAX_WINDOW)
        self.transport.write(
            PREFACE
            + frame(SETTINGS, 0, 0, settings)
            + frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", MAX_WINDOW - 65535))
        )

    def data_received(self, data: bytes) -> None:
        buf = self._buffer + data if self._buffer else data
        pos, end = 0, len(buf)
        try:
            while end - pos >= 9:
                length = int.from_bytes(buf[pos : pos + 3], "big")
                if end - pos < 9 + length:
                    break
                kind, flags = buf[pos + 3], buf[pos + 4]
                stream = int.from_bytes(buf[pos + 5 : pos + 9], "big") & 0x7FFFFFFF
                payload = buf[pos + 9 : pos + 9 + length]
                pos += 9 + length
                self._on_frame(kind, flags, stream, payload)
        except Exception as exc:  # noqa: BLE001 - a protocol error ends the connection, never the loop
            self._fail_all(ConnectionError(f"bad HTTP/2 data from the server: {exc}"))
            self.close()
            return
        self._buffer = buf[pos:]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail_all(ConnectionResetError("connection closed by the server"))
        if not self.ready.done():
            self.ready.set_exception(ConnectionResetError("connection closed before its settings"))

    # -- frames ---------------------------------------------------------------------------------
    def _on_frame(self, kind: int, flags: int, stream: int, payload: bytes) -> None:
        if kind == DATA:
            self._on_data(stream, flags, len(payload))
        elif kind in (HEADERS, CONTINUATION):
            if kind == HEADERS:
                payload = strip_headers(flags, payload)
                self._block, self._block_stream, self._block_end = [payload], stream, bool(flags & END_STREAM)
            else:
                self._block.append(payload)
            if flags & END_HEADERS:
                self._on_header_block(self._block_stream, b"".join(self._block), self._block_end)
                self._block = []
        elif kind == SETTINGS:
            if not flags & ACK:
                self._on_settings(payload)
        elif kind == WINDOW_UPDATE:
            increment = int.from_bytes(payload[:4], "big") & 0x7FFFFFFF
            if stream == 0:
                self.send_window += increment
            elif stream in self.calls:
                self.calls[stream].window += increment
            self._pump()
        elif kind == PING:
            if not flags & ACK:
                self._write(frame(PING, ACK, 0, payload))
        elif kind == RST_STREAM:
            code = int.from_bytes(payload[:4], "big")
            self._finish(
                stream,
                GrpcStatusError(
                    "UNAVAILABLE" if code == 7 else "CANCELLED",
                    f"stream reset by the server (HTTP/2 error {code})",
                ),
            )
        elif kind == GOAWAY:
            last = int.from_bytes(payload[:4], "big") & 0x7FFFFFFF
            self.closed = True  # no new streams; those above `last` were never processed
            for sid in [s for s in self.calls if s > last]:
                self._finish(sid, ConnectionResetError("the server closed the connection (GOAWAY)"))
        # PRIORITY, PUSH_PROMISE (disabled by default for servers) and unknown frames: ignored.

    def _on_settings(self, payload: bytes) -> None:
        for i in range(0, len(payload) - 5, 6):
            key, value = struct.unpack_from(">HI", payload, i)
            if key == SETTINGS_MAX_CONCURRENT_STREAMS:
                self.max_streams = value
            elif key == SETTINGS_MAX_FRAME_SIZE:
                self.max_frame = value
            elif key == SETTINGS_INITIAL_WINDOW_SIZE:
                delta, self.initial_window = value - self.initial_window, value
                for call in self.calls.values():
                    call.window += delta
        self._write(frame(SETTINGS, ACK, 0))
        if not self.ready.done():
            self.ready.set_result(None)
        self._pump()

    def _on_data(self, stream: int, flags: int, length: int) -> None:
        self.received += length
        if self.received > MAX_WINDOW // 2:
            self._write(frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", self.received)))
            self.received = 0
        if flags & END_STREAM:
            self._finish(stream, GrpcStatusError("INTERNAL", "the response ended without grpc-status"))

    def _on_header_block(self, stream: int, block: bytes, end: bool) -> None:
        fields = self.decoder.decode(block, raw=True)  # always decoded: keeps the table in step
        call = self.calls.get(stream)
        if call is None:
            return
        for name, value in fields:
            if name == b"grpc-status":
                call.status = int(value)
            elif name == b"grpc-message":
                call.message = value.decode("utf-8", "replace")
        if end:
            if call.status == 0:
                self._finish(stream, None)
            else:
                code = (
                    STATUS_NAMES.get(call.status, str(call.status)) if call.status is not None else "UNKNOWN"
                )
                self._finish(stream, GrpcStatusError(code, call.message or "no grpc-status in the response"))

    # -- calls ----------------------------------------------------------------------------------
    @property
    def available(self) -> bool:
        """Whether the connection may open another stream now."""
        return not self.closed and len(self.calls) < self.max_streams and self.next_stream < 2**30

    def call(self, body: bytes, timeout_s: float | None) -> asyncio.Future[None]:
        """Start one call sending `body` (a framed gRPC message); the future ends with the call
        (an exception on any failure)."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        stream, self.next_stream = self.next_stream, self.next_stream + 2
        call = _Call(waiter, memoryview(body), self.initial_window)
        self.calls[stream] = call
        if timeout_s is not None:
            call.timer = loop.call_later(timeout_s, self._expire, stream)
        size = len(body)
        if size <= self.max_frame and size <= call.window and size <= self.send_window:
            # The usual case: the whole request fits the windows; one write, two frames.
            call.window -= size
            self.send_window -= size
            call.pending = memoryview(b"")
            self._write(
                frame(HEADERS, END_HEADERS, stream, self.headers) + frame(DATA, END_STREAM, stream, body)
            )
        else:
            self._write(frame(HEADERS, END_HEADERS, stream, self.headers))
            self._blocked.append(stream)
            self._pump()
        return waiter

    def _pump(self) -> None:
        """Send queued request bytes as far as the flow-control windows allow."""
        still: list[int] = []
        for stream in self._blocked:
            call = self.calls.get(stream)
            if call is None:
                continue
            while len(call.pending) and call.window > 0 and self.send_window > 0:
                n = min(len(call.pending), call.window, self.send_window, self.max_frame)
                chunk, call.pending = call.pending[:n], call.pending[n:]
                call.window -= n
                self.send_window -= n
                self._write(frame(DATA, 0 if len(call.pending) else END_STREAM, stream, bytes(chunk)))
            if len(call.pending):
                still.append(stream)
        self._blocked = still

    def _expire(self, stream: int) -> None:
        if stream in self.calls:
            self._write(frame(RST_STREAM, 0, stream, struct.pack(">I", CANCEL)))
            self._finish(stream, asyncio.TimeoutError())

    def _finish(self, stream: int, error: BaseException | None) -> None:
        call = self.calls.pop(stream, None)
        if call is None:
            return
        if call.timer is not None:
            call.timer.cancel()
        if not call.waiter.done():
            if error is None:
                call.waiter.set_result(None)
            else:
                call.waiter.set_exception(error)

    def cancel(self, waiter: asyncio.Future[Any]) -> None:
        """Forget a call whose caller went away (cancelled): reset its stream."""
        for stream, call in list(self.calls.items()):
            if call.waiter is waiter:
                self._write(frame(RST_STREAM, 0, stream, struct.pack(">I", CANCEL)))
                self._finish(stream, None)

    def _fail_all(self, exc: BaseException) -> None:
        for stream in list(self.calls):
            self._finish(stream, exc)

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def close(self) -> None:
        """Close the connection; calls still open fail."""
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class LeanGrpcChannel:
    """Unary calls of one method with prebuilt requests, over a pool of HTTP/2 connections."""

    def __init__(self, host: str, port: int, path: str, timeout_s: float | None) -> None:
        self.host, self.port = host, port
        self.timeout_s = timeout_s
        self._headers = header_block(path, f"{host}:{port}", timeout_s)
        self._conns: list[H2Connection] = []
        self._connecting: asyncio.Future[H2Connection] | None = None

    async def _connection(self) -> H2Connection:
        for conn in self._conns:
            if conn.available:
                return conn
        self._conns = [c for c in self._conns if not c.closed or c.calls]
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(self._connect())
        connecting = self._connecting
        try:
            return await asyncio.shield(connecting)
        finally:
            if self._connecting is connecting and connecting.done():
                self._connecting = None

    async def _connect(self) -> H2Connection:
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(lambda: H2Connection(self._headers), self.host, self.port)
        await conn.ready  # the server's SETTINGS: its stream limit and windows
        self._conns.append(conn)
        return conn

    async def call(self, body: bytes) -> None:
        """One call sending `body` (from grpc_message); raises GrpcStatusError,
        asyncio.TimeoutError or a connection error."""
        conn = await self._connection()
        waiter = conn.call(body, self.timeout_s)
        try:
            await waiter
        except asyncio.CancelledError:
            conn.cancel(waiter)
            raise

    async def close(self) -> None:
        """Close every connection."""
        for conn in self._conns:
            conn.close()
        self._conns = []
