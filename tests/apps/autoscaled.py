"""Services for autoscaling and backpressure tests: one that scales from zero to three replicas, one with a
one-call replica and a one-call waiting line, and one endpoint with its own request timeout."""

from __future__ import annotations

import asyncio
import os
import time

import fnserve as fs


@fs.service(
    autoscaling=fs.Autoscaling(
        min_replicas=0, max_replicas=3, target_ongoing_requests=1, upscale_delay_s=0, downscale_delay_s=0.5
    ),
    max_ongoing_requests=1,
)
def elastic() -> dict[str, str]:
    return {}


@elastic.endpoint("/work")
def work(seconds: float = 0.0) -> int:
    time.sleep(seconds)
    return os.getpid()


@fs.service(max_ongoing_requests=1, max_queued_requests=1)
def narrow() -> dict[str, str]:
    return {}


@narrow.endpoint("/work")
def narrow_work(seconds: float = 0.0) -> float:
    time.sleep(seconds)
    return seconds


@narrow.endpoint("/quick", request_timeout=0.3)
async def quick(seconds: float) -> float:
    await asyncio.sleep(seconds)
    return seconds
