"""Two versions of one service name, `lifecycle_versions`, that answer differently: deploying the second
replaces the first."""

import os

import fnserve as fs


@fs.service(name="lifecycle_versions", auth=False)
def version_one() -> dict[str, int]:
    return {"pid": os.getpid()}


@version_one.endpoint("/version", method="GET")
def version_one_answer(pid: int) -> dict[str, int]:
    return {"version": 1, "pid": pid}


@fs.service(name="lifecycle_versions", auth=False)
def version_two() -> dict[str, int]:
    return {"pid": os.getpid()}


@version_two.endpoint("/version", method="GET")
def version_two_answer(pid: int) -> dict[str, int]:
    return {"version": 2, "pid": pid}


@fs.service(name="lifecycle_versions", route_prefix="/moved_versions", auth=False)
def version_moved() -> dict[str, int]:
    """A version under another route prefix (it answers 3)."""
    return {"pid": os.getpid()}


@version_moved.endpoint("/version", method="GET")
def version_moved_answer(pid: int) -> dict[str, int]:
    return {"version": 3, "pid": pid}


@fs.service(name="prefix_taker", route_prefix="/lifecycle_versions", auth=False)
def prefix_taker() -> dict[str, str]:
    """Another service, which takes the route prefix of `lifecycle_versions` once that one is torn down."""
    return {}


@prefix_taker.endpoint("/version", method="GET")
def prefix_taker_answer() -> str:
    return "taken"
