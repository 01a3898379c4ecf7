"""Graphs for deploy tests: Ray Serve's `.bind()` form (a pipeline handed two bound models as handles), a cycle,
and a graph that names a service nobody deployed."""

from __future__ import annotations

from typing import Any

import fnserve as fs


@fs.service(name="doubler")
class Doubler:
    def __init__(self, factor: int = 2) -> None:
        self.factor = factor

    @fs.endpoint("/apply")
    def apply(self, x: int) -> int:
        return x * self.factor


@fs.service(name="adder")
class Adder:
    def __init__(self, amount: int) -> None:
        self.amount = amount

    @fs.endpoint("/apply")
    async def apply(self, x: int) -> int:
        return x + self.amount


@fs.service(name="pipeline")
class Pipeline:
    """Its bound arguments arrive as handles on the services deployed for them."""

    def __init__(self, first: Any, second: Any, label: str = "result") -> None:
        self.first = first
        self.second = second
        self.label = label

    @fs.endpoint("/compute")
    async def compute(self, x: int) -> dict[str, Any]:
        y = await self.first.apply(x=x)
        return {self.label: await self.second.apply(x=y), "handles": [repr(self.first), repr(self.second)]}


# mypy does not apply class decorators, so it sees the classes, not the services they became.
app = Pipeline.bind(Doubler.bind(factor=3), Adder.bind(amount=1), label="out")  # type: ignore[attr-defined]


@fs.service(name="cycle-a", uses=["cycle-b"])
def cycle_a() -> dict[str, Any]:
    return {}


@cycle_a.endpoint("/ping-b")
def ping_b() -> str:
    return "a"


@fs.service(name="cycle-b", uses=[cycle_a])
def cycle_b() -> dict[str, Any]:
    return {}


@cycle_b.endpoint("/ping-a")
def ping_a() -> str:
    return "b"


@fs.service(name="leaf")
def leaf() -> dict[str, Any]:
    return {}


@leaf.endpoint("/hello")
def hello() -> str:
    return "leaf"


@fs.service(name="needs-missing", uses=[leaf, "not-deployed"])
def needs_missing() -> dict[str, Any]:
    return {}


@needs_missing.endpoint("/hello")
def hello_missing() -> str:
    return "never"
