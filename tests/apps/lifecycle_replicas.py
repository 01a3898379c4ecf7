"""Two replicas that log each initializer run to a file, with a call that blocks until a file appears."""

import os
import time
from pathlib import Path
from typing import Any

import fnserve as fs

_INIT_RUNS: list[int] = []  # one entry per initializer run in this process


@fs.service(name="lifecycle_replicas", replicas=2, auth=False)
def lifecycle_replicas(init_log: str) -> dict[str, Any]:
    """Appends this replica's pid to `init_log` each time the initializer runs."""
    with open(init_log, "a") as log:
        log.write(f"{os.getpid()}\n")
    _INIT_RUNS.append(1)
    return {"pid": os.getpid(), "init_calls": _INIT_RUNS}


@lifecycle_replicas.endpoint("/whoami", method="GET")
def whoami(pid: int, init_calls: list[int]) -> dict[str, int]:
    """Which replica answered, and how many times its initializer ran."""
    return {"pid": pid, "init_calls": len(init_calls)}


@lifecycle_replicas.endpoint("/block")
def block(started: str, release: str, limit_s: float = 10.0) -> str:
    """Write this replica's pid to `started`, then wait (bounded) until the file `release` exists."""
    Path(started).write_text(str(os.getpid()))
    deadline = time.monotonic() + limit_s
    while not Path(release).exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    return "released"


@lifecycle_replicas.endpoint("/add")
def add(a: int, b: int) -> int:
    return a + b
