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
