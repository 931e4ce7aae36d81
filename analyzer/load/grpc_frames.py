"""The HTTP/2 and gRPC wire format behind the lean gRPC client (analyzer.load.grpc_lean).

Pure: frame types and flags (RFC 9113), the frame layout, the request's HPACK header block,
the gRPC message prefix and the canonical status names. Everything here that is the same for
every request is encoded once: the header block uses literal, never-indexed fields, so it needs
no encoder state and is valid on any stream of any connection.
"""

from __future__ import annotations

import struct

import hpack

# Frame types and flags (RFC 9113 section 6).
DATA, HEADERS, RST_STREAM, SETTINGS, PUSH_PROMISE = 0, 1, 3, 4, 5
PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = 6, 7, 8, 9
END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY = 0x1, 0x1, 0x4, 0x8, 0x20
SETTINGS_MAX_CONCURRENT_STREAMS, SETTINGS_INITIAL_WINDOW_SIZE, SETTINGS_MAX_FRAME_SIZE = 0x3, 0x4, 0x5
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
MAX_WINDOW = 2**31 - 1
CANCEL = 0x8

# grpc-status codes -> names (the gRPC spec's canonical codes, as grpc.StatusCode names them).
STATUS_NAMES = {
    0: "OK",
    1: "CANCELLED",
    2: "UNKNOWN",
    3: "INVALID_ARGUMENT",
    4: "DEADLINE_EXCEEDED",
    5: "NOT_FOUND",
    6: "ALREADY_EXISTS",
    7: "PERMISSION_DENIED",
    8: "RESOURCE_EXHAUSTED",
    9: "FAILED_PRECONDITION",
    10: "ABORTED",
    11: "OUT_OF_RANGE",
    12: "UNIMPLEMENTED",
    13: "INTERNAL",
    14: "UNAVAILABLE",
    15: "DATA_LOSS",
    16: "UNAUTHENTICATED",
}


class GrpcStatusError(Exception):
    """A call ended with a non-OK grpc-status (or the stream was reset)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    """One HTTP/2 frame."""
    return struct.pack(">I", len(payload))[1:] + bytes((kind, flags)) + struct.pack(">I", stream) + payload


def header_block(path: str, authority: str, timeout_s: float | None) -> bytes:
    """The request's HPACK header block, stateless (no dynamic-table entries), so one encoding
    serves every stream of every connection."""
    fields = [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", path),
        (":authority", authority),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ]
    if timeout_s is not None:
        # The server gives up at the same deadline as the client (gRPC's TimeoutValue: <= 8 digits).
        fields.append(("grpc-timeout", f"{max(1, min(int(timeout_s * 1000), 99_999_999))}m"))
    encoder = hpack.Encoder()
    return encoder.encode([hpack.NeverIndexedHeaderTuple(k, v) for k, v in fields], huffman=False)


def grpc_message(body: bytes) -> bytes:
    """A length-prefixed, uncompressed gRPC message."""
    return b"\x00" + struct.pack(">I", len(body)) + body


def strip_headers(flags: int, payload: bytes) -> bytes:
    """A HEADERS frame's header block fragment, without padding and priority fields."""
    start, end = 0, len(payload)
    if flags & PADDED:
        start, end = 1, end - payload[0]
    if flags & PRIORITY:
        start += 5
    return payload[start:end]
