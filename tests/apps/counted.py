"""Counts the calls that reach its replica, so a test can show that refused requests never did."""

import fnserve as fs


@fs.service(name="counted", auth=False)
def counted() -> dict[str, list[int]]:
    return {"calls": []}


@counted.endpoint("/add")
def add(x: int, items: list[int], calls: list[int], scale: float = 1.0) -> float:
    """Add x to the items' sum."""
    calls.append(1)
    return (x + sum(items)) * scale


@counted.endpoint("/touch")
def touch(calls: list[int]) -> int:
    """A call that needs no arguments."""
    calls.append(1)
    return len(calls)


@counted.endpoint("/calls", method="GET")
def call_count(calls: list[int]) -> int:
    return len(calls)
