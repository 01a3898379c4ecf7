"""Streams that never block for long: 'first', then a tick every few milliseconds, so a cancel always lands
between two chunks. Each writes `marker` when it is stopped early, so a test can see a disconnect reached it."""

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import fnserve as fs


@fs.service(name="stream_ticker", auth=False)
def stream_ticker() -> dict[str, str]:
    return {}


@stream_ticker.endpoint("/ticks", streaming=True)
def ticks(marker: str, interval_s: float = 0.01, limit_s: float = 10.0) -> Iterator[str]:
    """A sync generator: 'first', then '.' every `interval_s` until `limit_s` has passed."""
    try:
        yield "first"
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            time.sleep(interval_s)
            yield "."
    except GeneratorExit:
        Path(marker).write_text("closed")
        raise


@stream_ticker.endpoint("/aticks", streaming=True)
async def aticks(marker: str, interval_s: float = 0.01, limit_s: float = 10.0) -> AsyncIterator[str]:
    """The async twin of /ticks; a cancel reaches it at its `await`, or at its `yield` as GeneratorExit."""
    try:
        yield "first"
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            await asyncio.sleep(interval_s)
            yield "."
    except (GeneratorExit, asyncio.CancelledError):
        Path(marker).write_text("closed")
        raise
