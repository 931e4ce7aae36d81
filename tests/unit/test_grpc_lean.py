"""The lean gRPC client's pure parts: the stateless header block and frame layout."""

from __future__ import annotations

import hpack

from analyzer.load.grpc_frames import DATA, END_STREAM, frame, grpc_message, header_block


def test_header_block_is_stateless_and_complete() -> None:
    block = header_block("/inference.GRPCInferenceService/ModelInfer", "127.0.0.1:8001", 2.5)
    # Decoded twice by one decoder: a block that relied on (or added to) the dynamic table
    # would decode differently the second time.
    decoder = hpack.Decoder()
    first, second = decoder.decode(block), decoder.decode(block)
    assert first == second
    fields = dict(first)
    assert fields[":path"] == "/inference.GRPCInferenceService/ModelInfer"
    assert fields[":method"] == "POST" and fields["te"] == "trailers"
    assert fields["content-type"] == "application/grpc"
    assert fields["grpc-timeout"] == "2500m"
    assert len(decoder.header_table.dynamic_entries) == 0


def test_frame_and_message_layout() -> None:
    body = grpc_message(b"abc")
    assert body == b"\x00\x00\x00\x00\x03abc"
    f = frame(DATA, END_STREAM, 5, body)
    assert f[:3] == (8).to_bytes(3, "big") and f[3] == DATA and f[4] == END_STREAM
    assert int.from_bytes(f[5:9], "big") == 5 and f[9:] == body
