"""Framing of the replica protocol."""

from __future__ import annotations

import pytest

from fnserve.runtime.protocol import FrameReader, Kind, ProtocolError, encode


def test_frames_survive_arbitrary_splits() -> None:
    stream = encode(Kind.CALL, 1, 0, b"{}", {}, {}) + encode(Kind.RESULT, 1, b'"ok"') + encode(Kind.PING, 9)
    for split in range(1, len(stream)):
        reader = FrameReader()
        messages = reader.feed(stream[:split]) + reader.feed(stream[split:])
        assert [m[0] for m in messages] == [Kind.CALL, Kind.RESULT, Kind.PING]
        assert messages[1] == [Kind.RESULT, 1, b'"ok"']


def test_oversized_frame_is_refused() -> None:
    with pytest.raises(ProtocolError, match="exceeds"):
        FrameReader().feed(b"\xff\xff\xff\xff")


def test_large_frames_arrive_whole_however_the_reads_fall() -> None:
    """A frame over LARGE_FRAME_BYTES is kept as its reads and parsed once whole; the small ones around it too."""
    image = bytes(range(256)) * 4096  # 1 MiB
    stream = encode(Kind.RESULT, 1, b'"a"') + encode(Kind.MEDIA, 2, image, "image/png", 200, []) + encode(Kind.END, 3)
    for read_size in (1, 3, 4096, 65536, 65537, len(stream) - 1, len(stream)):
        reader = FrameReader()
        pieces = [stream[i : i + read_size] for i in range(0, len(stream), read_size)] if read_size > 1 else None
        if pieces is None:  # a byte at a time is slow for 1 MiB: only around the frames' edges
            edge = len(encode(Kind.RESULT, 1, b'"a"'))
            pieces = [stream[i : i + 1] for i in range(edge + 8)] + [stream[edge + 8 :]]
        messages = [message for piece in pieces for message in reader.feed(piece)]
        assert [m[0] for m in messages] == [Kind.RESULT, Kind.MEDIA, Kind.END], read_size
        assert messages[1][2] == image
        assert reader.feed(b"") == []


def test_a_header_split_before_its_frame_waits_for_the_whole_frame() -> None:
    frame = encode(Kind.CHUNK, 7, b"x" * 100_000)
    reader = FrameReader()
    assert reader.feed(frame[:2]) == []
    assert reader.feed(frame[2:50]) == []
    assert reader.feed(frame[50:-1]) == []
    assert reader.feed(frame[-1:]) == [[Kind.CHUNK, 7, b"x" * 100_000]]


def test_kinds_are_distinct() -> None:
    assert len({kind.value for kind in Kind}) == len(Kind)


def test_websocket_messages_keep_text_apart_from_bytes() -> None:
    """A WebSocket message is text or binary, and stays what it was across the protocol."""
    reader = FrameReader()

    messages = reader.feed(encode(Kind.WS_MESSAGE, 3, "héllo") + encode(Kind.WS_MESSAGE, 3, b"h\xc3\xa9llo"))

    assert messages == [[Kind.WS_MESSAGE, 3, "héllo"], [Kind.WS_MESSAGE, 3, b"h\xc3\xa9llo"]]


def test_an_http_head_carries_bytes_headers() -> None:
    head = {"method": "GET", "path": "/api/x", "root_path": "/api", "query_string": b"a=1", "headers": [[b"a", b"b"]]}

    [message] = FrameReader().feed(encode(Kind.HTTP, 1, head, b"", False))

    assert message == [Kind.HTTP, 1, head, b"", False]
