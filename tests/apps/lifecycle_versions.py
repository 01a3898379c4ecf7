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
