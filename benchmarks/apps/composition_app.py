"""The handle benchmark's services: `bench-noop` answers at once; `bench-caller` calls it through a handle.

`/local` answers without calling anything (the caller's own cost), `/via` makes one handle call, so `/via − /local`
over HTTP is what one handle hop adds; `/loop` times `n` handle calls inside the replica and answers their
latencies in microseconds (the hop alone, no HTTP client in the way).
"""

from __future__ import annotations

import time
from typing import Any

import fnserve as fs


@fs.service(name="bench-noop", auth=False)
def bench_noop() -> dict[str, Any]:
    return {}


@bench_noop.endpoint("/noop")
async def noop() -> str:
    return "ok"


@fs.service(name="bench-caller", auth=False, uses=[bench_noop])
def bench_caller() -> dict[str, Any]:
    return {"target": fs.handle("bench-noop")}


@bench_caller.endpoint("/local")
async def local() -> str:
    return "ok"


@bench_caller.endpoint("/via")
async def via(target: Any) -> str:
    answer: str = await target.noop()
    return answer


@bench_caller.endpoint("/loop")
async def loop(n: int, target: Any) -> list[float]:
    latencies = []
    for _ in range(n):
        started = time.perf_counter()
        await target.noop()
        latencies.append((time.perf_counter() - started) * 1e6)
    return latencies
