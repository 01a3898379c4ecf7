"""An autoscaled service (one replica, up to three, a target of two calls each) whose calls hold until a release
file exists: a test sees where each call runs while they are all in flight."""

from __future__ import annotations

import os
import time
from pathlib import Path

import fnserve as fs


@fs.service(
    autoscaling=fs.Autoscaling(
        min_replicas=1, max_replicas=3, target_ongoing_requests=2, upscale_delay_s=0, downscale_delay_s=120
    ),
    auth=False,
)
def spread() -> dict[str, str]:
    return {}


@spread.endpoint("/hold")
def hold(release: str) -> int:
    """Wait (bounded) until the file `release` exists; the replica's pid."""
    deadline = time.monotonic() + 25
    while not Path(release).exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    return os.getpid()
