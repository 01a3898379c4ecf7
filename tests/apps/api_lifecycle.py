"""Three versions of the function `api_lifecycle` that say which one answered, for the `/v1` lifecycle tests.

Each has `/version` (which version and replica answered); the first two also have `/block`, a call that
stays in flight until a file appears (for graceful undeploys).
"""

import os
import time
from pathlib import Path

import fnserve as fs


def _block(started: str, release: str, limit_s: float) -> str:
    Path(started).write_text(str(os.getpid()))
    deadline = time.monotonic() + limit_s
    while not Path(release).exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    return "released"


@fs.service(name="api_lifecycle", auth=False)
def api_version_one() -> dict[str, int]:
    """The first version."""
    return {"pid": os.getpid()}


@api_version_one.endpoint("/version", method="GET")
def version_one_answer(pid: int) -> dict[str, int]:
    return {"version": 1, "pid": pid}


@api_version_one.endpoint("/block")
def version_one_block(started: str, release: str, limit_s: float = 10.0) -> str:
    """Write this replica's pid to `started`, then wait (bounded) until the file `release` exists."""
    return _block(started, release, limit_s)


@fs.service(name="api_lifecycle", auth=False)
def api_version_two() -> dict[str, int]:
    """The second version."""
    return {"pid": os.getpid()}


@api_version_two.endpoint("/version", method="GET")
def version_two_answer(pid: int) -> dict[str, int]:
    return {"version": 2, "pid": pid}


@api_version_two.endpoint("/block")
def version_two_block(started: str, release: str, limit_s: float = 10.0) -> str:
    """Write this replica's pid to `started`, then wait (bounded) until the file `release` exists."""
    return _block(started, release, limit_s)


@fs.service(name="api_lifecycle", auth=False)
def api_version_three() -> dict[str, int]:
    """The third version."""
    return {"pid": os.getpid()}


@api_version_three.endpoint("/version", method="GET")
def version_three_answer(pid: int) -> dict[str, int]:
    return {"version": 3, "pid": pid}
