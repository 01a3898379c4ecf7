"""SSE framing of stream chunks (`fnserve.sse`): every chunk survives, for our reader byte for byte and for any
reader that follows the spec up to the line endings SSE cannot carry."""

from __future__ import annotations

import re

import pytest

from fnserve.sse import EventReader, encode_error, encode_event

CHUNKS = [
    "",
    "\n",
    "\n\n",
    "a",
    "a\n",
    "\na",
    "a\nb\n\nc",
    "\r\n",
    "line one\r\nline two\r\n",
    "\r",
    "a\rb",
    "a\r\n\nb\r",
    " leading space",
    "data: looks like a field",
    ": looks like a comment",
    "héllo wörld ✓ 🦀",
    "unicode line breaks: \u2028 \u2029 \x85 \x0b \x0c \x1c",
    '{"index":0}\n',
]


def spec_events(stream: str) -> list[str]:
    """The data of each event, as the WHATWG spec's parser (what browsers' EventSource run) dispatches it."""
    events, data = [], ""
    for line in re.split(r"\r\n|\r|\n", stream):
        if not line:
            if data:
                events.append(data.removesuffix("\n"))
            data = ""
            continue
        name, _, value = line.partition(":")
        if name == "data":
            data += value.removeprefix(" ") + "\n"
    return events


def read(stream: bytes, piece_bytes: int) -> list[tuple[str, str]]:
    reader = EventReader()
    events = []
    for start in range(0, len(stream), piece_bytes):
        events.extend(reader.feed(stream[start : start + piece_bytes]))
    return events


@pytest.mark.parametrize("piece_bytes", [1, 2, 7, 1 << 20], ids=["by-byte", "by-2", "by-7", "whole"])
def test_every_chunk_reads_back_exactly_however_the_bytes_arrive(piece_bytes: int) -> None:
    stream = b"".join(encode_event(chunk.encode()) for chunk in CHUNKS)

    assert read(stream, piece_bytes) == [("message", chunk) for chunk in CHUNKS]


def test_a_spec_reader_gets_every_chunk_with_its_line_endings_as_lf() -> None:
    stream = b"".join(encode_event(chunk.encode()) for chunk in CHUNKS).decode()

    assert spec_events(stream) == [re.sub(r"\r\n|\r", "\n", chunk) for chunk in CHUNKS]


@pytest.mark.parametrize(
    ("chunk", "framed"),
    [
        ("", b"data: \n\n"),
        ("\n", b"data: \ndata: \n\n"),
        ("a\nb", b"data: a\ndata: b\n\n"),
        ("a\r\nb", b'data: a\ndata: b\nfnserve-chunk: "a\\r\\nb"\n\n'),
    ],
    ids=["empty", "newline", "two-lines", "crlf"],
)
def test_a_chunk_is_one_data_line_per_line(chunk: str, framed: bytes) -> None:
    assert encode_event(chunk.encode()) == framed


def test_bytes_that_are_not_utf8_read_back_as_replacement_characters() -> None:
    assert read(encode_event(b"ok \xff\r\n"), 1) == [("message", "ok \ufffd\r\n")]
    assert read(encode_event(b"ok \xff"), 1) == [("message", "ok \ufffd")]


def test_an_error_event_follows_the_chunks_and_an_unfinished_event_is_dropped() -> None:
    stream = encode_event(b"before") + encode_error(b'{"error":{}}') + b"data: cut off"

    assert read(stream, 3) == [("message", "before"), ("error", '{"error":{}}')]


def test_comments_unknown_fields_and_crlf_line_endings_are_read_as_the_spec_says() -> None:
    stream = b": a comment\r\nretry: 10\r\nid: 1\r\nevent:\r\ndata:no space\r\ndata:  two spaces\r\n\r\n\r\n"

    assert read(stream, 1) == [("message", "no space\n two spaces")]
