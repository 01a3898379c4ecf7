"""Batched endpoints (`@fs.batch`): each records the size of every batch it ran, so a test can see batches form."""

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator
from typing import Any, cast

import fnserve as fs


class BatchedModel:
    def __init__(self) -> None:
        self.batch_sizes: dict[str, list[int]] = {}

    def ran(self, name: str, size: int) -> None:
        self.batch_sizes.setdefault(name, []).append(size)

    @fs.endpoint("/double")
    @fs.batch(max_batch_size=16, batch_wait_timeout_s=0.05)
    def double(self, x: list[int]) -> list[int]:
        """Doubles a number (sync, in a thread)."""
        self.ran("double", len(x))
        time.sleep(0.02)
        return [2 * value for value in x]

    @fs.batch(max_batch_size=8, batch_wait_timeout_s=0.05)  # the decorators in the other order
    @fs.endpoint("/scale")
    async def scale(self, x: list[float], by: list[float] = 3.0) -> list[float]:  # type: ignore[assignment]
        """Multiplies x by `by` (async, on the loop); each caller may give its own `by`."""
        self.ran("scale", len(x))
        await asyncio.sleep(0.02)
        return [value * factor for value, factor in zip(x, by, strict=True)]

    @fs.endpoint("/picky")
    @fs.batch(max_batch_size=16, batch_wait_timeout_s=0.05)
    def picky(self, x: list[int]) -> list[int | Exception]:
        """Refuses negative numbers, each on its own."""
        self.ran("picky", len(x))
        return [ValueError(f"{value} is negative") if value < 0 else value for value in x]

    @fs.endpoint("/explode")
    @fs.batch(max_batch_size=16, batch_wait_timeout_s=0.05)
    def explode(self, x: list[int]) -> list[int]:
        """Fails the whole batch when any item is 13."""
        self.ran("explode", len(x))
        if 13 in x:
            raise RuntimeError("unlucky batch")
        return x

    @fs.endpoint("/short")
    @fs.batch(max_batch_size=4, batch_wait_timeout_s=0.05)
    def short(self, x: list[int]) -> list[int]:
        """Returns one result too few."""
        return x[:-1]

    @fs.endpoint("/lone")
    @fs.batch(max_batch_size=64, batch_wait_timeout_s=0.3)
    async def lone(self, x: list[int]) -> list[int]:
        """Waits up to 0.3 s for company."""
        self.ran("lone", len(x))
        return x

    @fs.endpoint("/countdown", streaming=True)
    @fs.batch(max_batch_size=8, batch_wait_timeout_s=0.05)
    def countdown(self, n: list[int]) -> Iterator[list[Any]]:
        """Streams 0..n-1 to each caller, each stream ending after its own n steps."""
        self.ran("countdown", len(n))
        for step in range(max(n)):
            yield [step if step < count else StopIteration for count in n]

    @fs.endpoint("/letters", streaming=True)
    @fs.batch(max_batch_size=8, batch_wait_timeout_s=0.05)
    async def letters(self, word: list[str]) -> AsyncIterator[list[Any]]:
        """Streams each caller's word letter by letter; the generator ends with the longest word."""
        self.ran("letters", len(word))
        for index in range(max(len(w) for w in word)):
            await asyncio.sleep(0)
            yield [w[index] if index < len(w) else StopIteration for w in word]

    @fs.endpoint("/flaky", streaming=True)
    @fs.batch(max_batch_size=8, batch_wait_timeout_s=0.2)
    def flaky(self, n: list[int]) -> Iterator[list[Any]]:
        """Streams n to each caller, then fails the callers of odd n alone, then the whole stream when any n is 13."""
        self.ran("flaky", len(n))
        yield list(n)
        yield [ValueError(f"{value} is odd") if value % 2 else value for value in n]
        if 13 in n:
            raise RuntimeError("unlucky stream")
        yield [value + 1 for value in n]

    @fs.endpoint("/sizes")
    def sizes(self, name: str) -> list[int]:
        """The sizes of the batches `name` ran since the last read."""
        value, self.batch_sizes[name] = self.batch_sizes.get(name, []), []
        return value

    @fs.endpoint("/tune")
    def tune(self, max_batch_size: int, batch_wait_timeout_s: float) -> None:
        """Changes /double's batching live, in this replica."""
        double = cast(Any, self.double)
        double.set_max_batch_size(max_batch_size)
        double.set_batch_wait_timeout_s(batch_wait_timeout_s)


Batched = fs.service(name="batched", auth=False)(BatchedModel)


@fs.service(name="batched_fn", auth=False)
def batched_fn() -> dict[str, Any]:
    return {"offset": 100, "sizes": deque[int]()}


@batched_fn.endpoint("/add")
@fs.batch(max_batch_size=16, batch_wait_timeout_s=0.05)
def add(x: list[int], offset: int, sizes: deque[int]) -> list[int]:
    """Adds the initializer's offset to each caller's x: `offset` and `sizes` are no lists, so they are shared
    parameters, passed once from the initializer's dict."""
    sizes.append(len(x))
    time.sleep(0.02)
    return [value + offset for value in x]


@fs.batch(max_batch_size=16, batch_wait_timeout_s=0.05)  # above the endpoint decorator: the same endpoint
@batched_fn.endpoint("/concat")
async def concat(a: list[str], b: list[str], sizes: deque[int]) -> list[str]:
    sizes.append(len(a))
    return [left + right for left, right in zip(a, b, strict=True)]


@batched_fn.endpoint("/sizes")
def read_sizes(sizes: deque[int]) -> list[int]:
    value = list(sizes)
    sizes.clear()
    return value
