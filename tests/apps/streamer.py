"""Streams whose pace a test controls through files: a chunk, then a wait for a go-ahead file."""

import time
from collections.abc import Iterator
from pathlib import Path

import fnserve as fs


@fs.service(name="streamer", auth=False)
def streamer() -> dict[str, str]:
    return {}


@streamer.endpoint("/gated", streaming=True)
def gated(release: str, marker: str) -> Iterator[str]:
    """Yield 'first', wait (bounded) until the file `release` exists, yield 'second'. Writes `marker` when
    the generator is closed early, so a test can see the disconnect reached it."""
    try:
        yield "first"
        deadline = time.monotonic() + 10
        while not Path(release).exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        yield "second"
    except GeneratorExit:
        Path(marker).write_text("closed")
        raise


@streamer.endpoint("/fails", streaming=True)
def fails() -> Iterator[str]:
    yield "before"
    raise ValueError("mid-stream")


@streamer.endpoint("/lines", streaming=True)
async def lines(count: int = 3):  # type: ignore[no-untyped-def]
    for index in range(count):
        yield {"index": index}


@streamer.endpoint("/chunks", streaming=True)
def chunks(texts: list[str]) -> Iterator[str]:
    """Yield each text as one chunk, as it is."""
    yield from texts


@streamer.endpoint("/octets", streaming=True)
def octets(hex_chunks: list[str]) -> Iterator[bytes]:
    """Yield each hex string's bytes as one chunk (bytes that need not be UTF-8)."""
    for hex_chunk in hex_chunks:
        yield bytes.fromhex(hex_chunk)
