"""Running a coroutine on uvloop when it is installed (server, worker, tests), the standard loop otherwise."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run`, on uvloop. (uvicorn's `loop="uvloop"` only applies inside `uvicorn.run`.)"""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(coroutine)
