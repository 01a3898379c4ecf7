"""Endpoints that take as long as they are told to."""

import asyncio
import time

import fnserve as fs


@fs.service(name="slow", auth=False)
def slow() -> dict[str, object]:
    return {}


@slow.endpoint("/sleep")
def sleep(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@slow.endpoint("/asleep")
async def asleep(seconds: float) -> float:
    await asyncio.sleep(seconds)
    return seconds


@slow.endpoint("/cancellable")
async def cancellable(seconds: float, marker: str) -> float:
    """Sleep; if cancelled first, write `marker` so a test can see the cancel reached the replica."""
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        with open(marker, "w") as handle:
            handle.write("cancelled")
        raise
    return seconds
