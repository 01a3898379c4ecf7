"""Records how many of its calls ran at once, so a test can see the gateway's concurrency limit."""

import threading
import time
from typing import Any

import fnserve as fs


@fs.service(name="concurrency", auth=False)
def concurrency() -> dict[str, Any]:
    return {"counts": {"now": 0, "peak": 0}, "lock": threading.Lock()}


@concurrency.endpoint("/work")
def work(seconds: float, counts: dict[str, int], lock: Any) -> int:
    with lock:
        counts["now"] += 1
        counts["peak"] = max(counts["peak"], counts["now"])
    time.sleep(seconds)
    with lock:
        counts["now"] -= 1
    return 1


@concurrency.endpoint("/peak")
def peak(counts: dict[str, int], lock: Any) -> int:
    """The most calls that ran at once since the last read; resets it."""
    with lock:
        value, counts["peak"] = counts["peak"], 0
    return value
