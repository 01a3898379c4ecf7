"""A service whose initializer blocks until a file exists, so a test decides when it becomes ACTIVE."""

import time
from pathlib import Path

import fnserve as fs


@fs.service(name="gated_init", auth=False)
def gated_init(gate: str) -> dict[str, str]:
    """Wait (bounded, 20 s) for the file `gate` to exist, then start."""
    deadline = time.monotonic() + 20
    while not Path(gate).exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    return {"gate": gate}


@gated_init.endpoint("/hello", method="GET")
def hello() -> str:
    return "started"
