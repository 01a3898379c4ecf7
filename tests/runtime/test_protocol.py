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
