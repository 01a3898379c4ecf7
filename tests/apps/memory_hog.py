"""Services with a memory limit that go over it: one in an endpoint, one in its initializer."""

import os
import time

import fnserve as fs


@fs.service(name="memory_hog", resources=fs.Resources(memory="200MB"), auth=False)
def memory_hog() -> dict[str, list[bytes]]:
    return {"held": []}


@memory_hog.endpoint("/hog")
def hog(mb: int, held: list[bytes]) -> str:
    """Hold `mb` megabytes (written, so resident), then wait to be stopped."""
    held.append(b"x" * (mb * 1_000_000))
    time.sleep(20)
    return "still running"


@memory_hog.endpoint("/pid", method="GET")
def pid() -> int:
    return os.getpid()


@fs.service(name="memory_hog_init", resources=fs.Resources(memory="200MB"), auth=False)
def memory_hog_init() -> dict[str, bytes]:
    """Loads a "model" of 400 MB, twice its limit, and takes its time about it."""
    model = b"x" * 400_000_000
    time.sleep(20)
    return {"model": model}


@memory_hog_init.endpoint("/size", method="GET")
def size(model: bytes) -> int:
    return len(model)
